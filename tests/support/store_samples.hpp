#pragma once
// Sample hooks, events and attempt reports for the store tests, at fixed times so that no test
// depends on the clock.

#include <whisperer/subscription_store.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace whisperer::test {

/// The time every store test starts from: a whole second, so the stores keep it exactly.
inline const TimePoint t0{std::chrono::seconds{1'700'000'000}};

/// A fresh event uuid (32 lowercase hex digits), unique within the test run.
inline std::string next_uuid()
{
    static std::atomic<std::uint64_t> counter{0};
    char uuid[33];
    std::snprintf(uuid, sizeof uuid, "%016llx%016llx", 0x5eedULL,
                  static_cast<unsigned long long>(++counter));
    return uuid;
}

/// An active hook of `owner` for `event_type` with every field set to something recognisable.
inline Hook sample_hook(const std::string& owner, const std::string& target_url,
                        const std::string& event_type = "package-created",
                        boost::json::object config = {})
{
    Hook hook;
    hook.owner = owner;
    hook.target_url = target_url;
    hook.event_type = event_type;
    hook.secret_key = "secret-of-" + owner;
    hook.callback = "on_attempt";
    hook.retry_countdown_config = {{"choice", "exponential"}, {"kwargs", {{"base", 2}, {"limit", 60}}}};
    hook.additional_headers = {{"X-Tenant", owner}};
    hook.config = std::move(config);
    return hook;
}

/// A new event of `event_type`, created at t0 and due at `due`.
inline NewEvent sample_event(const std::string& event_type = "package-created", TimePoint due = t0)
{
    NewEvent event;
    event.uuid = next_uuid();
    event.event_type = event_type;
    event.body = R"({"event_type":")" + event_type + R"(","uuid":")" + event.uuid + R"(","data":{"id":7}})";
    event.object_ref = "package:7";
    event.created = t0;
    event.due = due;
    return event;
}

/// The report of attempt `number` on `delivery_id` by `worker`, answered with `status`.
inline AttemptRecord attempt_report(std::int64_t delivery_id, const std::string& worker, unsigned number,
                                    AttemptVerdict verdict, int status,
                                    std::optional<TimePoint> next_attempt_at = std::nullopt)
{
    AttemptRecord record;
    record.delivery_id = delivery_id;
    record.worker = worker;
    record.verdict = verdict;
    record.next_attempt_at = next_attempt_at;
    record.attempt.number = number;
    record.attempt.started_at = t0 + std::chrono::seconds{number};
    record.attempt.duration = std::chrono::microseconds{1500 * number};
    record.attempt.response_status = status;
    record.attempt.response_body = "answer " + std::to_string(number);
    record.attempt.failure = status >= 200 && status < 300 ? FailureClass::none : FailureClass::http_status;
    record.attempt.error = record.attempt.failure == FailureClass::none ? "" : "HTTP " + std::to_string(status);
    return record;
}

/// A claim by `worker` at `now` with a 10 s lease.
inline ClaimRequest claim_by(const std::string& worker, TimePoint now, std::size_t limit = 64)
{
    ClaimRequest request;
    request.worker = worker;
    request.now = now;
    request.lease = std::chrono::seconds{10};
    request.limit = limit;
    return request;
}

} // namespace whisperer::test
