#ifndef WHISPERER_DELIVERY_HPP
#define WHISPERER_DELIVERY_HPP

#include <whisperer/hook.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// Why an attempt failed, as recorded in the delivery log (never a made-up HTTP 500).
enum class FailureClass {
    none,              ///< The attempt succeeded (2xx).
    http_status,       ///< The receiver answered with a non-2xx status (3xx included: never followed).
    timeout,           ///< Connect or total timeout.
    connection_refused,
    connection_reset,
    connection_closed, ///< The receiver closed the connection without a complete response.
    dns,               ///< The host name did not resolve.
    tls,               ///< TLS handshake or certificate verification failed.
    protocol,          ///< The receiver answered something that is not HTTP/1.1.
    blocked,           ///< Refused by the SSRF guard before connecting.
    io,                ///< Any other transport error.
};

std::string_view to_string(FailureClass c) noexcept;
/// Parses the spelling of `to_string`; `io` for anything unknown.
FailureClass failure_class_from_string(std::string_view s) noexcept;

/// Where a delivery stands.
enum class DeliveryState {
    pending,   ///< Waiting for its first attempt or its next retry.
    delivered, ///< A 2xx was received.
    failed,    ///< Out of attempts (or given up): visible, re-sendable.
};

std::string_view to_string(DeliveryState s) noexcept;
DeliveryState delivery_state_from_string(std::string_view s) noexcept;

/// What started an attempt.
enum class AttemptTrigger { scheduled, manual };

/// One POST to the receiver and what came of it.
struct Attempt {
    unsigned number = 0;                 ///< 1 for the first attempt.
    TimePoint started_at{};
    std::chrono::microseconds duration{0};
    int response_status = 0;             ///< 0 when no response arrived.
    std::string response_body;           ///< Capped at the dispatcher's response body limit.
    FailureClass failure = FailureClass::none;
    std::string error;                   ///< Human-readable detail of the failure.
    AttemptTrigger trigger = AttemptTrigger::scheduled;

    bool succeeded() const noexcept { return failure == FailureClass::none; }
};

/// One event sent to one hook, with its log (dj-whisperer's `WebhookEvent`).
struct Delivery {
    std::int64_t id = 0;
    std::string event_uuid;              ///< The envelope's uuid and the `webhook-id` header.
    std::int64_t hook_id = 0;
    std::string owner;                   ///< The hook's owner.
    std::string event_type;
    std::string request_body;            ///< The exact bytes sent.
    std::string object_ref;              ///< What the event was about (host-defined), may be empty.
    DeliveryState state = DeliveryState::pending;
    unsigned attempt_count = 0;
    int response_status = 0;             ///< Of the last attempt.
    std::string response_body;           ///< Of the last attempt, capped.
    std::chrono::microseconds response_time{0}; ///< Of the last attempt.
    FailureClass last_failure = FailureClass::none;
    std::string last_error;
    std::optional<TimePoint> next_attempt_at; ///< Set while pending.
    TimePoint created{};
    TimePoint modified{};
    std::vector<Attempt> attempts;       ///< Newest first; filled only when asked for.

    bool delivered() const noexcept { return state == DeliveryState::delivered; }
};

} // namespace whisperer

#endif
