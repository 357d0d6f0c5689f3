#include <whisperer/http/authenticator.hpp>
#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <cctype>

namespace whisperer::http {

namespace {

constexpr std::size_t max_key_length = 256;

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// The key of `Token <key>` (scheme in any letter case), or empty.
std::string_view token_key(std::string_view authorization) noexcept
{
    constexpr std::string_view scheme = "token";
    authorization = trim(authorization);
    if (authorization.size() <= scheme.size() ||
        !std::equal(scheme.begin(), scheme.end(), authorization.begin(),
                    [](char a, char b) { return a == std::tolower(static_cast<unsigned char>(b)); }) ||
        (authorization[scheme.size()] != ' ' && authorization[scheme.size()] != '\t'))
        return {};
    std::string_view key = trim(authorization.substr(scheme.size()));
    if (key.size() > max_key_length || key.find_first_of(" \t") != std::string_view::npos)
        return {};
    return key;
}

} // namespace

std::optional<Principal> TokenAuthenticator::authenticate(const Request& request)
{
    auto header = request.find(boost::beast::http::field::authorization);
    if (header == request.end())
        return std::nullopt;
    std::string_view key = token_key(header->value());
    if (key.empty())
        return std::nullopt;
    // Looked up by hash: the store never sees the key, and equal hashes imply equal keys. Read
    // from the store on every request (one primary-key lookup), so that a revocation or a new
    // expiry written by any process is seen by the next request.
    auto token = store_.find_token(sha256_hex(key));
    if (!token)
        return std::nullopt;
    const TimePoint now = Clock::now();
    if (token->expired(now))
        return std::nullopt;
    if (!token->last_used || now - *token->last_used >= last_used_resolution) {
        try {
            store_.record_token_use(token->id, now);
        } catch (const StoreError&) {
            // Only the token's last-used time is lost; the request it authenticates goes on.
        }
    }
    return Principal{token->owner, token->admin, token->publisher};
}

} // namespace whisperer::http
