#ifndef WHISPERER_HOOK_HPP
#define WHISPERER_HOOK_HPP

#include <whisperer/address_policy.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

class Registry;
class CountdownRegistry;

using Clock = std::chrono::system_clock;
using TimePoint = Clock::time_point;

/// A hook secret that a rotation replaced: it keeps signing deliveries, next to the current
/// secret, until `expires` (see `<whisperer/secret_rotation.hpp>`).
struct RetiredSecret {
    std::string secret;
    TimePoint expires{};

    friend bool operator==(const RetiredSecret&, const RetiredSecret&) = default;
};

/// A subscription: deliver events of `event_type` to `target_url` (dj-whisperer's `Webhook`).
struct Hook {
    std::int64_t id = 0;                 ///< Assigned by the store.
    std::string owner;                   ///< The user the hook belongs to.
    std::string target_url;              ///< Absolute http or https URL that receives the POSTs.
    std::string event_type;              ///< A registered event type.
    bool is_active = true;               ///< DELETE through the API sets it false (soft delete).
    std::string secret_key;              ///< Signs every body when not empty.
    std::string callback;                ///< Name of a host callback run after every attempt; may be empty.
    boost::json::object retry_countdown_config; ///< `{"choice": ..., "kwargs": {...}}`.
    boost::json::object additional_headers;     ///< Extra request headers, name -> string value.
    boost::json::object config;          ///< `auth` settings and free keys that `config_filter` matches.
    TimePoint created{};                 ///< Set by the store.
    TimePoint modified{};                ///< Set by the store.
    std::string disabled_reason;         ///< Why whisperer deactivated it (empty when the owner did).
    std::optional<TimePoint> disabled_at;
    /// Endpoint health, kept by the store (writes of the hook ignore both): when the current run
    /// of failed attempts began (absent since the last success), and how many attempts it holds.
    /// Re-activating the hook clears both.
    std::optional<TimePoint> failing_since;
    unsigned failed_attempts = 0;
    /// Secrets that `SubscriptionStore::rotate_secret` replaced and that still sign until they
    /// expire, newest first. Reads leave out expired ones. Kept by the store: `create_hook` and
    /// `update_hook` ignore this field.
    std::vector<RetiredSecret> retired_secrets;
};

/// Everything a hook is checked against before the store sees it.
///
/// Lengths and sizes are in bytes (of UTF-8 text). Each limit is checked by `validate_hook`,
/// which throws `ValidationError` naming the field for the first one exceeded.
struct HookRules {
    const Registry* registry = nullptr;                ///< When set, event_type must be registered.
    const CountdownRegistry* countdowns = nullptr;     ///< When set, used to parse the countdown.
    const std::set<std::string, std::less<>>* callbacks = nullptr; ///< When set, callback must be in it.
    std::size_t max_url_length = 2048;                 ///< target_url and `config.auth.url`.
    std::size_t max_secret_length = 512;               ///< secret_key.
    std::size_t max_additional_headers = 32;           ///< Entries of additional_headers.
    std::size_t max_header_value_length = 4096;        ///< Each value of additional_headers.
    std::size_t max_header_name_length = 256;          ///< Each name of additional_headers.
    /// Every name and value of additional_headers together, so that the request stays within
    /// the header limits receivers commonly have.
    std::size_t max_additional_headers_size = 8 * 1024;
    std::size_t max_config_size = 16 * 1024;           ///< config, serialised as JSON.
    std::size_t max_config_depth = 32;                 ///< Nesting of config (config itself is level 1).
    std::size_t max_name_length = 255;                 ///< owner and callback.
    /// When set, a target_url (or `config.auth.url`) whose host is an IP literal, in any form,
    /// must pass it; host names are checked after resolution, at delivery.
    AddressFilter address_filter;
};

/// Throws `ValidationError` (field named) unless `hook` is acceptable: an absolute http(s)
/// target_url, a valid (and registered) event_type, a valid countdown config, additional headers
/// that are tokens with CR/LF-free string values and not reserved, a known callback, a valid
/// `config.auth`, an IP-literal host that `rules.address_filter` (when set) permits, every
/// length and size within the limits of `rules`, and no credential (secret, password, header
/// value) starting with `enc:`, the mark of a value sealed at rest. The built-in countdown choices are used when
/// `rules.countdowns` is null.
void validate_hook(const Hook& hook, const HookRules& rules = {});

/// Throws `ValidationError` (field "secret_key") when `secret` is longer than
/// `rules.max_secret_length`, holds control characters or starts with `enc:` (the mark of a value
/// sealed at rest). Empty is valid (no signature).
void validate_secret(std::string_view secret, const HookRules& rules = {});

/// The origin of a target URL, `scheme://host:port` with the port always written (the key of
/// connection pools and of the dispatcher's per-origin quota); empty unless `url` is an absolute
/// http or https URL with a host. Never contains the URL's user info, path or query.
std::string target_origin(std::string_view url);

/// True for headers that whisperer sets itself and subscribers may not override
/// (case-insensitive): Content-Type, X-Whisperer-*, webhook-*, User-Agent, Host, Content-Length,
/// Expect (the client sends bodies at once and never waits for 100 Continue), ...
bool is_reserved_header(std::string_view name) noexcept;

/// What a read shows for a credential other than the secret: `config.auth.password` and every
/// value of `additional_headers`.
inline constexpr std::string_view masked_credential = "****";

/// The hook as a read shows it (the REST API, logs, any page for people): `secret_key` and the
/// retired secrets masked by `mask_secret`, `config.auth.password` (either `auth_type`) and the
/// value of every entry of `additional_headers` replaced by `masked_credential` (the header names
/// stay); empty values stay empty. Build every outward view of a hook from this.
Hook masked_hook(const Hook& hook);

/// Undoes `masked_hook` for a write that sends a read back: each credential of `written` equal to
/// its masked form takes the value of the same credential in `stored` (the hook before the write),
/// so a client that reads, edits one field and writes back loses nothing; any other value
/// replaces it. Throws `ValidationError` naming the field when `written` holds
/// `masked_credential` for a password or header that `stored` does not have.
void keep_masked_credentials(Hook& written, const Hook& stored);

/// The secret as a read shows it: "****" followed by its last 4 characters, or only "****" when
/// it has 8 characters or fewer (so that little of it shows); empty stays empty.
std::string mask_secret(std::string_view secret);

} // namespace whisperer

#endif
