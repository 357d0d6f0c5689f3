#include "token_commands.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/subscription_store.hpp>

#include <cstdio>
#include <ctime>
#include <string>

namespace whisperer::server {

namespace {

/// `2026-01-31T12:00:00Z`, or `never`.
std::string utc_or_never(const std::optional<TimePoint>& t)
{
    if (!t)
        return "never";
    const std::time_t seconds = Clock::to_time_t(*t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string rights_of(const ApiToken& token)
{
    if (token.admin && token.publisher)
        return "admin,publisher";
    if (token.admin)
        return "admin";
    return token.publisher ? "publisher" : "-";
}

/// The owner on one line of the list: control characters (tokens added by other means may hold
/// some) shown as '?'.
std::string printable(std::string text)
{
    for (char& c : text)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            c = '?';
    return text;
}

int create(const TokenOptions& options, SubscriptionStore& store, std::ostream& out, std::ostream& err)
{
    ApiToken grant{.owner = options.owner, .admin = options.admin, .publisher = options.publisher};
    if (options.expires_in)
        grant.expires = Clock::now() + *options.expires_in;
    const IssuedToken issued = issue_token(store, std::move(grant));
    out << issued.key << std::endl;
    err << "Token " << issued.token.id << " for \"" << options.owner << "\"" << (options.admin ? " (admin)" : "")
        << (options.publisher ? " (publisher)" : "") << " created, expires "
        << utc_or_never(issued.token.expires)
        << ". It is shown only this once; send it as \"Authorization: Token <token>\".\n";
    return 0;
}

int list(SubscriptionStore& store, std::ostream& out)
{
    for (const ApiToken& token : store.list_tokens())
        out << token.id << '\t' << printable(token.owner) << '\t' << rights_of(token) << '\t'
            << utc_or_never(token.created) << '\t' << utc_or_never(token.expires) << '\t'
            << utc_or_never(token.last_used) << '\n';
    out.flush();
    return 0;
}

int revoke(const TokenOptions& options, SubscriptionStore& store, std::ostream& err)
{
    if (!store.revoke_token(options.id)) {
        err << "whisperer-server: there is no token " << options.id << " (see \"token list\")\n";
        return 1;
    }
    err << "Token " << options.id << " revoked: every server on this database refuses it from its next request.\n";
    return 0;
}

} // namespace

int run_token_command(const TokenOptions& options, SubscriptionStore& store, std::ostream& out, std::ostream& err)
{
    switch (options.action) {
    case TokenOptions::Action::create: return create(options, store, out, err);
    case TokenOptions::Action::list: return list(store, out);
    case TokenOptions::Action::revoke: return revoke(options, store, err);
    }
    return 2;
}

} // namespace whisperer::server
