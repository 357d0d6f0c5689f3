// Maintenance beside the pipeline: lease renewal, the store's housekeeping, retention.
#ifndef WHISPERER_SRC_DISPATCH_MAINTENANCE_HPP
#define WHISPERER_SRC_DISPATCH_MAINTENANCE_HPP

#include "dispatch/keep_alive.hpp"
#include "dispatch/log_lines.hpp"
#include "dispatch/store_runner.hpp"

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace whisperer::dispatch {

/// The dispatcher's periodic store work, each on a timer of its own: renewing the leases of the
/// deliveries in flight every `lease / 3`, the store's housekeeping (`checkpoint`) every 250 ms,
/// and deleting finished deliveries older than `retention` in bounded batches. The timers run on
/// the dispatcher's strand and the store calls on the store runner; `start` and `stop` must run
/// on the strand.
class Maintenance {
public:
    /// The deliveries in flight, whose leases to renew; called on the strand.
    using LeasesInFlight = std::function<std::vector<std::int64_t>()>;

    Maintenance(boost::asio::strand<boost::asio::any_io_executor> strand, StoreRunner& runner,
                SubscriptionStore& store, const DispatcherOptions& options, std::string worker, Logger log,
                KeepAlive keep_alive, LeasesInFlight leases);

    void start();
    void stop();

private:
    void renew();
    void housekeep();
    void sweep_retention(std::chrono::milliseconds wait);

    boost::asio::strand<boost::asio::any_io_executor> strand_;
    StoreRunner& runner_;
    SubscriptionStore& store_;
    const DispatcherOptions& options_;
    const std::string worker_;
    Logger log_;
    KeepAlive keep_alive_;
    LeasesInFlight leases_;
    bool running_ = false;
    boost::asio::steady_timer renew_timer_;
    boost::asio::steady_timer housekeeping_timer_;
    boost::asio::steady_timer retention_timer_;
    std::atomic<bool> housekeeping_queued_{false};
};

} // namespace whisperer::dispatch

#endif
