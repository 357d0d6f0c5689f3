#ifndef WHISPERER_SRC_DETAIL_DELIVERY_REQUEST_HPP
#define WHISPERER_SRC_DETAIL_DELIVERY_REQUEST_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace whisperer::detail {

/// Builds the POST of one attempt, headers in this order: Content-Type, X-Whisperer-Event,
/// webhook-id, webhook-timestamp, the signatures when the hook has a secret
/// (X-Whisperer-Signature, webhook-signature; one per secret that `signing_secrets` gives at
/// `unix_timestamp`, space-separated), Authorization when given, then the hook's
/// additional headers (reserved names among them are skipped, whatever the store holds).
HttpRequest make_delivery_request(const ClaimedDelivery& delivery, std::int64_t unix_timestamp,
                                  const std::string& authorization);

/// The Authorization value of `config.auth` of type basic, or empty.
std::string basic_authorization(const boost::json::object& config);

/// The attempt a client result amounts to: 2xx succeeds; any other status is an
/// `http_status` failure; transport failures keep their class.
Attempt to_attempt(const HttpResult& result, unsigned number, TimePoint started, AttemptTrigger trigger);

/// The wait a 429 or 503 asks for with `Retry-After` (seconds or an HTTP date), clamped to
/// [0, max]; nullopt when the status is another or the header is absent or unparsable.
std::optional<std::chrono::seconds> retry_after(const HttpResult& result, TimePoint now, std::chrono::seconds max);

} // namespace whisperer::detail

#endif
