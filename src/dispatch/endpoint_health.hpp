// Endpoint health: disabling hooks whose receivers are gone or keep failing.
#ifndef WHISPERER_SRC_DISPATCH_ENDPOINT_HEALTH_HPP
#define WHISPERER_SRC_DISPATCH_ENDPOINT_HEALTH_HPP

#include "dispatch/log_lines.hpp"
#include "dispatch/store_runner.hpp"

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <set>
#include <string>

namespace whisperer::dispatch {

/// Why a hook whose receiver answered 410 is disabled.
inline constexpr const char* gone_reason = "The receiver answered 410 Gone.";

/// Deactivates hooks, with a reason, and tells the host through `on_hook_disabled` (run on the
/// host's executor). Its store calls run on the store runner, or in the caller's thread for the
/// `_now` forms. Thread-safe.
class EndpointHealth {
public:
    EndpointHealth(SubscriptionStore& store, StoreRunner& runner, boost::asio::any_io_executor host,
                   const DispatcherOptions& options, Logger log);

    /// Deactivates `hook_id` with `reason` soon, if it is still active; its deliveries stay pending.
    void disable(std::int64_t hook_id, std::string reason);

    /// Soon disables each of `hooks` that has failed long and often enough. Call after their
    /// failed attempts are recorded (the store keeps the run of failures).
    void check(std::set<std::int64_t> hooks);

    /// `check`, in the caller's thread.
    void check_now(const std::set<std::int64_t>& hooks);

    /// `disable`, in the caller's thread.
    void disable_now(std::int64_t hook_id, const std::string& reason);

private:
    SubscriptionStore& store_;
    StoreRunner& runner_;
    boost::asio::any_io_executor host_;
    const DispatcherOptions& options_;
    Logger log_;
};

} // namespace whisperer::dispatch

#endif
