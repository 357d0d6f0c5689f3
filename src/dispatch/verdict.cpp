#include "dispatch/verdict.hpp"

#include "detail/delivery_request.hpp"

#include <whisperer/retry_countdown.hpp>

#include <algorithm>

namespace whisperer::dispatch {

Verdict decide(const Attempt& attempt, const HttpResult& result, const Hook& hook, const VerdictOptions& options,
               TimePoint now)
{
    using namespace std::chrono_literals;
    Verdict v;
    v.gone = result.status == 410;
    if (attempt.succeeded()) {
        v.verdict = AttemptVerdict::delivered;
        return v;
    }
    if (attempt.number >= options.max_attempts) {
        v.verdict = AttemptVerdict::failed;
        return v;
    }
    v.verdict = AttemptVerdict::retry;
    std::chrono::milliseconds wait = 60s;
    try {
        wait = options.countdowns->parse(hook.retry_countdown_config).delay(attempt.number);
    } catch (const std::exception& e) {
        v.countdown_error = e.what();
    }
    if (auto asked = detail::retry_after(result, now, options.max_retry_after))
        wait = std::max<std::chrono::milliseconds>(wait, *asked);
    v.next_attempt_at = now + wait;
    return v;
}

} // namespace whisperer::dispatch
