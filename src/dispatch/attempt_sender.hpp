// Sending: one attempt of a delivery, from its request to its `Attempt`.
#ifndef WHISPERER_SRC_DISPATCH_ATTEMPT_SENDER_HPP
#define WHISPERER_SRC_DISPATCH_ATTEMPT_SENDER_HPP

#include "detail/target_auth.hpp"

#include <whisperer/delivery.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/subscription_store.hpp>

#include <functional>
#include <memory>

namespace whisperer::dispatch {

/// Sends attempts: fetches the hook's target authentication, builds and signs the request, sends
/// it and reads the result into an `Attempt`. Knows nothing of what the result means.
/// Thread-safe; must outlive the attempts it started.
class AttemptSender {
public:
    using Done = std::function<void(Attempt, HttpResult)>;

    /// Sends one attempt of `delivery` with `http`; `done` runs on `http`'s executor.
    void send(std::shared_ptr<const ClaimedDelivery> delivery, HttpClient& http, AttemptTrigger trigger, Done done);

private:
    detail::TargetAuth auth_;
};

} // namespace whisperer::dispatch

#endif
