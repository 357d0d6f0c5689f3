#include "dispatch/log_lines.hpp"

#include <whisperer/hook.hpp>

namespace whisperer::dispatch {

void Logger::operator()(LogLevel level, const std::string& message) const
{
    if (!handler_)
        return;
    try {
        handler_(level, message);
    } catch (...) {
    }
}

std::string origin_for_log(std::string_view url)
{
    std::string origin = target_origin(url);
    return origin.empty() ? std::string("(invalid URL)") : origin;
}

std::string describe_outcome(const ClaimedDelivery& delivery, const Attempt& attempt, const AttemptRecord& record,
                             TimePoint now)
{
    std::string line = "delivery " + std::to_string(delivery.delivery_id) + " (" + delivery.event_type + " " +
                       delivery.event_uuid + ") to hook " + std::to_string(delivery.hook.id) + " at " +
                       origin_for_log(delivery.hook.target_url) + ", attempt " + std::to_string(attempt.number) +
                       ": ";
    if (attempt.succeeded())
        line += "delivered, HTTP " + std::to_string(attempt.response_status);
    else
        line += std::string(to_string(attempt.failure)) + " (" + attempt.error + ")";
    line += " in " + std::to_string(attempt.duration.count() / 1000) + " ms";
    if (record.verdict == AttemptVerdict::retry)
        line += "; next attempt in " +
                std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*record.next_attempt_at - now).count()) +
                " s";
    else if (record.verdict == AttemptVerdict::failed)
        line += "; out of attempts, failed";
    return line;
}

} // namespace whisperer::dispatch
