#ifndef WHISPERER_API_TOKEN_HPP
#define WHISPERER_API_TOKEN_HPP

#include <whisperer/api_token_record.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace whisperer {

class SubscriptionStore;

/// How every key `issue_token` makes begins, so that secret scanners recognise a leaked one.
/// Keys issued before it (40 hex digits without it) keep working.
inline constexpr std::string_view token_key_prefix = "wsp_";

/// The longest lifetime `parse_token_lifetime` accepts: ten years.
inline constexpr std::chrono::seconds max_token_lifetime{std::chrono::days{3650}};

/// A token just issued: the token as stored (with its id), and its key, shown to the user once.
struct IssuedToken {
    ApiToken token;
    std::string key;
};

/// Issues a REST API token with the owner, rights and expiry of `grant` (its `id`, `created`
/// and `last_used` are set here) and returns its key, which is shown to the user once.
///
/// The key is `token_key_prefix` and 40 lowercase hex digits from OpenSSL's CSPRNG; only its
/// `sha256_hex` is stored (`SubscriptionStore::add_token`), so a lost key cannot be recovered,
/// only replaced. Clients send it as `Authorization: Token <key>`. Throws `ValidationError`
/// when the owner is empty (every token, admin or not, acts for an owner), longer than
/// `HookRules::max_name_length` allows by default (255) or holds a control character,
/// `StoreError` when the store cannot
/// write, and `std::runtime_error` when the random generator fails. Thread-safe as the store is.
IssuedToken issue_token(SubscriptionStore& store, ApiToken grant);

/// `issue_token` for a token that never expires; returns only the key.
std::string issue_token(SubscriptionStore& store, std::string owner, bool admin = false, bool publisher = false);

/// Reads a token lifetime: a whole number and a unit, `s`, `m`, `h`, `d` or `w` (`45m`, `12h`,
/// `30d`). Throws `ValidationError` (field `expires_in`) for anything else, zero, or more than
/// `max_token_lifetime`.
std::chrono::seconds parse_token_lifetime(std::string_view text);

} // namespace whisperer

#endif
