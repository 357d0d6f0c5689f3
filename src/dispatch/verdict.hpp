// The verdict: what an attempt's result means for its delivery.
#ifndef WHISPERER_SRC_DISPATCH_VERDICT_HPP
#define WHISPERER_SRC_DISPATCH_VERDICT_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace whisperer {
class CountdownRegistry;
}

namespace whisperer::dispatch {

/// The options a verdict depends on.
struct VerdictOptions {
    unsigned max_attempts = 18;
    std::chrono::seconds max_retry_after{24 * 3600};
    const CountdownRegistry* countdowns = nullptr; ///< Parses hooks' countdowns; must not be null.
};

/// What to do after one attempt.
struct Verdict {
    AttemptVerdict verdict = AttemptVerdict::failed;
    std::optional<TimePoint> next_attempt_at; ///< For `retry`.
    bool gone = false;                        ///< The receiver answered 410 Gone: disable the hook.
    /// Why the hook's countdown could not be used (a retry then waits 60 s); empty when it could.
    std::string countdown_error;
};

/// The verdict on `attempt` (with its HTTP `result`) of a delivery to `hook`, at `now`: delivered
/// on success; failed once `max_attempts` are used; otherwise a retry after the hook's
/// countdown for the failures so far, or later when a 429 or 503 asks so with `Retry-After`
/// (up to `max_retry_after`). Pure.
Verdict decide(const Attempt& attempt, const HttpResult& result, const Hook& hook, const VerdictOptions& options,
               TimePoint now);

} // namespace whisperer::dispatch

#endif
