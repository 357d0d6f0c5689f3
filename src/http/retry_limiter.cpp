#include "detail/retry_limiter.hpp"

#include <algorithm>

namespace whisperer::http::detail {

namespace {

/// Whole seconds from now until `at`, rounded up, at least one.
std::chrono::seconds seconds_until(RetryLimiter::Clock::time_point at, RetryLimiter::Clock::time_point now)
{
    const auto wait = std::chrono::ceil<std::chrono::seconds>(at - now);
    return std::max(wait, std::chrono::seconds(1));
}

} // namespace

std::chrono::seconds RetryLimiter::admit(std::int64_t delivery_id, const std::string& owner, Clock::time_point now)
{
    std::lock_guard lock{mutex_};
    forget_old(now);
    if (auto last = last_retry_.find(delivery_id); last != last_retry_.end() && now < last->second + interval_)
        return seconds_until(last->second + interval_, now);
    OwnerWindow& window = owners_[owner];
    if (now >= window.started + window_)
        window = {now, 0};
    if (window.used >= per_owner_)
        return seconds_until(window.started + window_, now);
    ++window.used;
    last_retry_[delivery_id] = now;
    return std::chrono::seconds(0);
}

void RetryLimiter::give_back(std::int64_t delivery_id, const std::string& owner)
{
    std::lock_guard lock{mutex_};
    last_retry_.erase(delivery_id);
    if (auto window = owners_.find(owner); window != owners_.end() && window->second.used > 0)
        --window->second.used;
}

void RetryLimiter::forget_old(Clock::time_point now)
{
    // Amortised: a sweep runs only when the maps have doubled since the last one.
    if (last_retry_.size() + owners_.size() < forget_at_)
        return;
    std::erase_if(last_retry_, [&](const auto& entry) { return now >= entry.second + interval_; });
    std::erase_if(owners_, [&](const auto& entry) { return now >= entry.second.started + window_; });
    forget_at_ = std::max<std::size_t>(1024, 2 * (last_retry_.size() + owners_.size()));
}

} // namespace whisperer::http::detail
