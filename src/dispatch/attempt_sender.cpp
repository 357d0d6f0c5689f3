#include "dispatch/attempt_sender.hpp"

#include "detail/delivery_request.hpp"

namespace whisperer::dispatch {

void AttemptSender::send(std::shared_ptr<const ClaimedDelivery> delivery, HttpClient& http, AttemptTrigger trigger,
                         Done done)
{
    auth_.async_authorization(delivery->hook, http, [this, delivery, &http, trigger, done = std::move(done)](
                                                        std::string authorization, std::string error) mutable {
        const TimePoint started = Clock::now();
        const unsigned number = delivery->attempt_count + 1;
        if (!error.empty()) {
            Attempt attempt;
            attempt.number = number;
            attempt.started_at = started;
            attempt.trigger = trigger;
            attempt.failure = FailureClass::io;
            attempt.error = std::move(error);
            done(std::move(attempt), HttpResult{});
            return;
        }
        const auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(started.time_since_epoch()).count();
        HttpRequest request = detail::make_delivery_request(*delivery, unix_now, authorization);
        http.async_send(std::move(request), [this, delivery, number, started, trigger,
                                             done = std::move(done)](HttpResult result) {
            Attempt attempt = detail::to_attempt(result, number, started, trigger);
            if (result.status == 401)
                auth_.invalidate(delivery->hook);
            done(std::move(attempt), std::move(result));
        });
    });
}

} // namespace whisperer::dispatch
