// Synchronous delivery: attempts made in the caller's thread, for sync calls and manual retries.
#ifndef WHISPERER_SRC_DISPATCH_SYNC_DELIVERY_HPP
#define WHISPERER_SRC_DISPATCH_SYNC_DELIVERY_HPP

#include "dispatch/attempt_sender.hpp"
#include "dispatch/endpoint_health.hpp"
#include "dispatch/hook_callbacks.hpp"

#include <whisperer/dispatcher.hpp>

#include <functional>
#include <memory>
#include <vector>

namespace whisperer::dispatch {

/// Options of the dispatcher's delivery client.
HttpClientOptions client_options(const DispatcherOptions& o);

/// Sends deliveries in the caller's thread, on a private `io_context`, and records their
/// outcomes there: the caller asked to wait. The deliveries were first made due only after
/// `hold()`, so that the workers leave them alone meanwhile. Thread-safe.
class SyncDelivery {
public:
    /// An attempt's record to write (the verdict, counted and logged), and whether the receiver
    /// is gone (410).
    struct Judged {
        AttemptRecord record;
        bool gone = false;
    };
    using Judge = std::function<Judged(const ClaimedDelivery&, Attempt, const HttpResult&)>;

    SyncDelivery(SubscriptionStore& store, const DispatcherOptions& options, AttemptSender& sender,
                 const HookCallbacks& callbacks, EndpointHealth& health, Judge judge);

    /// How long a delivery attempted in the caller's thread is kept from the workers.
    std::chrono::milliseconds hold() const;

    /// The stored delivery `delivery_id` with its hook, ready to send; throws
    /// `WebhookEventDoesNotExist` or `WebhookDoesNotExist`.
    std::shared_ptr<const ClaimedDelivery> load(std::int64_t delivery_id);

    /// Attempts every delivery at once, records the outcomes, and returns them.
    std::vector<HookResult> attempt_now(const std::vector<std::shared_ptr<const ClaimedDelivery>>& deliveries,
                                        AttemptTrigger trigger);

private:
    SubscriptionStore& store_;
    const DispatcherOptions& options_;
    AttemptSender& sender_;
    const HookCallbacks& callbacks_;
    EndpointHealth& health_;
    Judge judge_;
};

} // namespace whisperer::dispatch

#endif
