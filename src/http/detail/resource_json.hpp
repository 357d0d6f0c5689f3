// The JSON shapes of the REST API's resources, in both directions.
#ifndef WHISPERER_SRC_HTTP_DETAIL_RESOURCE_JSON_HPP
#define WHISPERER_SRC_HTTP_DETAIL_RESOURCE_JSON_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace whisperer::http::detail {

/// ISO 8601 in UTC with microseconds: `2024-05-01T12:00:00.000000Z`.
std::string format_time(TimePoint t);

/// Parses `YYYY-MM-DD` (midnight UTC) or `YYYY-MM-DDTHH:MM:SS[.frac][Z|+HH:MM|-HH:MM]`
/// (no offset means UTC); nullopt when malformed. A date beyond the range of `TimePoint` (about
/// the years 1678 to 2261 with libstdc++) reads as its first or last instant.
std::optional<TimePoint> parse_time(std::string_view text);

/// A hook as every response shows it, built from `masked_hook`: the secret and the retired
/// secrets (with their expiry) masked, `config.auth.password` and every header value shown as
/// "****". The only JSON form of a hook the router sends.
boost::json::object hook_json(const Hook& hook);

/// A delivery; its attempts (newest first) under "attempts" when `with_attempts`.
boost::json::object delivery_json(const Delivery& delivery, bool with_attempts);

boost::json::object attempt_json(const Attempt& attempt);

boost::json::object outbox_json(const OutboxEntry& entry);

/// How a request body changes a hook.
enum class HookWrite {
    create,  ///< POST: target_url, event_type and retry_countdown_config are required.
    replace, ///< PUT: the same fields are required; absent optional fields keep their values.
    partial, ///< PATCH: every field is optional.
};

/// Copies the writable fields of `body` into `hook`. Throws `ValidationError` naming the field
/// when a field has the wrong JSON type or a required one is missing; the values themselves are
/// checked by `validate_hook` afterwards. Read-only and unknown fields are ignored. Masked
/// credentials (a read sent back) keep the stored values (`keep_masked_credentials`); a null or
/// empty `secret_key` is refused when the hook has a secret (every hook signs).
void apply_hook_fields(Hook& hook, const boost::json::object& body, HookWrite mode);

} // namespace whisperer::http::detail

#endif
