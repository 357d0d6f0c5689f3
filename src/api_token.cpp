#include <whisperer/api_token.hpp>
#include <whisperer/subscription_store.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/signature.hpp>

#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace whisperer {

namespace {

/// `token_key_prefix` and 40 lowercase hex digits (160 bits) from OpenSSL's CSPRNG.
std::string new_key()
{
    unsigned char bytes[20];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string key(token_key_prefix);
    for (unsigned char b : bytes) {
        key += hex[b >> 4];
        key += hex[b & 0x0f];
    }
    return key;
}

} // namespace

IssuedToken issue_token(SubscriptionStore& store, ApiToken grant)
{
    if (grant.owner.empty())
        throw ValidationError("owner", "owner is required.");
    // An owner that no hook could have is refused now rather than at the token's first hook.
    if (const std::size_t limit = HookRules{}.max_name_length; grant.owner.size() > limit)
        throw ValidationError("owner", "owner may have at most " + std::to_string(limit) + " characters.");
    if (std::any_of(grant.owner.begin(), grant.owner.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        throw ValidationError("owner", "owner may not contain control characters.");
    IssuedToken issued{std::move(grant), new_key()};
    issued.token.created = Clock::now();
    issued.token.last_used.reset();
    issued.token.id = store.add_token(sha256_hex(issued.key), issued.token);
    return issued;
}

std::string issue_token(SubscriptionStore& store, std::string owner, bool admin, bool publisher)
{
    return issue_token(store, ApiToken{.owner = std::move(owner), .admin = admin, .publisher = publisher}).key;
}

std::chrono::seconds parse_token_lifetime(std::string_view text)
{
    auto refuse = [&](std::string_view why) {
        return ValidationError("expires_in", "\"" + std::string(text.substr(0, 32)) + "\" " + std::string(why));
    };
    constexpr std::string_view format =
        "is not a lifetime: use a whole number and a unit s, m, h, d or w (e.g. 45m, 12h, 30d).";
    if (text.size() < 2)
        throw refuse(format);
    std::int64_t unit = 0;
    switch (text.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default: throw refuse(format);
    }
    const std::string_view number = text.substr(0, text.size() - 1);
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
    // from_chars takes a minus sign; a lifetime has none, nor a plus.
    if (number.front() < '0' || number.front() > '9' || end != number.data() + number.size())
        throw refuse(format);
    if (ec == std::errc::result_out_of_range || (ec == std::errc() && n > max_token_lifetime.count() / unit))
        throw refuse("is longer than the longest lifetime, " + std::to_string(max_token_lifetime.count() / 86400) +
                     "d.");
    if (ec != std::errc())
        throw refuse(format);
    if (n == 0)
        throw refuse("is no lifetime: a token lives at least one second.");
    return std::chrono::seconds{n * unit};
}

} // namespace whisperer
