#include "dispatch/maintenance.hpp"

#include <boost/asio/post.hpp>

namespace whisperer::dispatch {

namespace {
/// How often the store's housekeeping (`SubscriptionStore::checkpoint`) runs while started.
constexpr std::chrono::milliseconds housekeeping_interval{250};
/// Finished deliveries deleted per store call.
constexpr std::size_t retention_batch = 1000;
} // namespace

Maintenance::Maintenance(boost::asio::strand<boost::asio::any_io_executor> strand, StoreRunner& runner,
                         SubscriptionStore& store, const DispatcherOptions& options, std::string worker, Logger log,
                         KeepAlive keep_alive, LeasesInFlight leases)
    : strand_(strand), runner_(runner), store_(store), options_(options), worker_(std::move(worker)),
      log_(std::move(log)), keep_alive_(std::move(keep_alive)), leases_(std::move(leases)), renew_timer_(strand),
      housekeeping_timer_(strand), retention_timer_(strand)
{
}

void Maintenance::start()
{
    running_ = true;
    renew();
    housekeep();
    sweep_retention(std::chrono::milliseconds(0));
}

void Maintenance::stop()
{
    running_ = false;
    renew_timer_.cancel();
    housekeeping_timer_.cancel();
    retention_timer_.cancel();
}

void Maintenance::renew()
{
    renew_timer_.expires_after(options_.lease / 3);
    renew_timer_.async_wait([this, life = keep_alive_()](boost::system::error_code ec) {
        if (ec || !running_)
            return;
        if (std::vector<std::int64_t> ids = leases_(); !ids.empty()) {
            runner_.post([this, ids = std::move(ids)] {
                try {
                    store_.renew_leases(worker_, ids, Clock::now() + options_.lease);
                } catch (const std::exception& e) {
                    log_(LogLevel::warning, std::string("could not renew leases: ") + e.what());
                }
            });
        }
        renew();
    });
}

void Maintenance::housekeep()
{
    housekeeping_timer_.expires_after(housekeeping_interval);
    housekeeping_timer_.async_wait([this, life = keep_alive_()](boost::system::error_code ec) {
        if (ec || !running_)
            return;
        // One job at a time: a slow one is not queued behind itself.
        if (!housekeeping_queued_.exchange(true))
            runner_.post([this] {
                try {
                    store_.checkpoint();
                } catch (const std::exception& e) {
                    log_(LogLevel::warning, std::string("store checkpoint failed: ") + e.what());
                }
                housekeeping_queued_ = false;
            });
        housekeep();
    });
}

void Maintenance::sweep_retention(std::chrono::milliseconds wait)
{
    if (options_.retention.count() <= 0)
        return;
    retention_timer_.expires_after(wait);
    retention_timer_.async_wait([this, life = keep_alive_()](boost::system::error_code ec) {
        if (ec || !running_)
            return;
        runner_.post([this, life] {
            std::size_t deleted = 0;
            try {
                deleted = store_.delete_finished_before(Clock::now() - options_.retention, retention_batch);
            } catch (const std::exception& e) {
                log_(LogLevel::warning, std::string("retention sweep failed: ") + e.what());
            }
            if (deleted > 0)
                log_(LogLevel::debug, "retention deleted " + std::to_string(deleted) + " old deliveries");
            // A full batch leaves more: the next follows soon, so that no store call is long.
            const std::chrono::milliseconds next = deleted == retention_batch ? std::chrono::milliseconds(10)
                                                                               : std::chrono::hours(1);
            boost::asio::post(strand_, [this, life, next] {
                if (running_)
                    sweep_retention(next);
            });
        });
    });
}

} // namespace whisperer::dispatch
