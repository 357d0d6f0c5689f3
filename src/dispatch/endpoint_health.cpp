#include "dispatch/endpoint_health.hpp"

#include <boost/asio/post.hpp>

namespace whisperer::dispatch {

EndpointHealth::EndpointHealth(SubscriptionStore& store, StoreRunner& runner, boost::asio::any_io_executor host,
                               const DispatcherOptions& options, Logger log)
    : store_(store), runner_(runner), host_(std::move(host)), options_(options), log_(std::move(log))
{
}

void EndpointHealth::disable(std::int64_t hook_id, std::string reason)
{
    runner_.post([this, hook_id, reason = std::move(reason)] { disable_now(hook_id, reason); });
}

void EndpointHealth::check(std::set<std::int64_t> hooks)
{
    if (options_.disable_after_failures == 0 || hooks.empty())
        return;
    runner_.post([this, hooks = std::move(hooks)] { check_now(hooks); });
}

void EndpointHealth::check_now(const std::set<std::int64_t>& hooks)
{
    if (options_.disable_after_failures == 0)
        return;
    const TimePoint now = Clock::now();
    for (std::int64_t id : hooks) {
        std::optional<Hook> hook;
        try {
            hook = store_.find_hook(id);
        } catch (const std::exception& e) {
            log_(LogLevel::warning, "could not check the health of hook " + std::to_string(id) + ": " + e.what());
            continue;
        }
        if (!hook || !hook->is_active || !hook->failing_since ||
            hook->failed_attempts < options_.disable_after_failures || now - *hook->failing_since < options_.disable_after)
            continue;
        const auto failing_for = std::chrono::duration_cast<std::chrono::seconds>(now - *hook->failing_since);
        disable_now(id, "No successful attempt for " + std::to_string(failing_for.count()) + " s and " +
                            std::to_string(hook->failed_attempts) + " failed attempts in a row.");
    }
}

void EndpointHealth::disable_now(std::int64_t hook_id, const std::string& reason)
{
    std::optional<Hook> hook;
    try {
        // Several failures may ask at once; the first one disables and reports.
        hook = store_.find_hook(hook_id);
        if (!hook || !hook->is_active || !store_.deactivate_hook(hook_id, reason))
            return;
        log_(LogLevel::warning, "hook " + std::to_string(hook_id) + " at " + origin_for_log(hook->target_url) +
                                    " disabled: " + reason);
        if (!options_.on_hook_disabled)
            return;
        hook = store_.find_hook(hook_id);
    } catch (const std::exception& e) {
        log_(LogLevel::error, "could not disable hook " + std::to_string(hook_id) + ": " + e.what());
        return;
    }
    if (!hook)
        return;
    boost::asio::post(host_, [notify = options_.on_hook_disabled, log = log_, hook = std::move(*hook), reason] {
        try {
            notify(hook, reason);
        } catch (const std::exception& e) {
            log(LogLevel::error, "on_hook_disabled for hook " + std::to_string(hook.id) + " threw: " + e.what());
        } catch (...) {
            log(LogLevel::error, "on_hook_disabled for hook " + std::to_string(hook.id) + " threw");
        }
    });
}

} // namespace whisperer::dispatch
