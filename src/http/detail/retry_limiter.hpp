// How often manual retries may run: per delivery and per owner, in this process's memory.
#ifndef WHISPERER_SRC_HTTP_DETAIL_RETRY_LIMITER_HPP
#define WHISPERER_SRC_HTTP_DETAIL_RETRY_LIMITER_HPP

#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace whisperer::http::detail {

/// Admits a manual retry of one delivery at most once per `interval`, and an owner's retries
/// at most `per_owner` per `window` (all its deliveries together). Each manual retry stores an
/// attempt with up to the store's response body limit, so without this one subscriber could
/// grow the database and the server's work as fast as it can send requests.
///
/// State is per process; it holds one entry per delivery retried within `interval` and per
/// owner that retried within `window`, and forgets older ones as it goes. Thread-safe.
class RetryLimiter {
public:
    using Clock = std::chrono::steady_clock;

    RetryLimiter(std::chrono::seconds interval, std::size_t per_owner, std::chrono::seconds window)
        : interval_(interval), per_owner_(per_owner), window_(window) {}

    /// Zero when the retry may run now (and it is counted); otherwise how long to wait before
    /// one may, at least one second.
    std::chrono::seconds admit(std::int64_t delivery_id, const std::string& owner, Clock::time_point now = Clock::now());

    /// Gives back an admission whose retry did not run (refused by the dispatcher's checks).
    void give_back(std::int64_t delivery_id, const std::string& owner);

private:
    struct OwnerWindow {
        Clock::time_point started{};
        std::size_t used = 0;
    };

    void forget_old(Clock::time_point now);

    std::chrono::seconds interval_;
    std::size_t per_owner_;
    std::chrono::seconds window_;
    std::mutex mutex_;
    std::unordered_map<std::int64_t, Clock::time_point> last_retry_;
    std::unordered_map<std::string, OwnerWindow> owners_;
    std::size_t forget_at_ = 1024;
};

} // namespace whisperer::http::detail

#endif
