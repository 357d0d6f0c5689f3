#include "dispatch/sync_delivery.hpp"

#include <boost/asio/io_context.hpp>

namespace whisperer::dispatch {

HttpClientOptions client_options(const DispatcherOptions& o)
{
    HttpClientOptions c;
    c.connect_timeout = o.connect_timeout;
    c.total_timeout = o.request_timeout;
    c.response_body_limit = o.response_body_limit;
    c.max_connections_per_origin = o.max_connections_per_origin;
    c.ca_file = o.ca_file;
    c.address_filter = address_filter_or_default(o.address_filter);
    return c;
}

SyncDelivery::SyncDelivery(SubscriptionStore& store, const DispatcherOptions& options, AttemptSender& sender,
                           const HookCallbacks& callbacks, EndpointHealth& health, Judge judge)
    : store_(store), options_(options), sender_(sender), callbacks_(callbacks), health_(health),
      judge_(std::move(judge))
{
}

std::chrono::milliseconds SyncDelivery::hold() const
{
    return options_.connect_timeout + options_.request_timeout + options_.lease;
}

std::shared_ptr<const ClaimedDelivery> SyncDelivery::load(std::int64_t delivery_id)
{
    auto delivery = store_.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    auto hook = store_.find_hook(delivery->hook_id);
    if (!hook)
        throw WebhookDoesNotExist("Webhook " + std::to_string(delivery->hook_id) + " does not exist.");
    auto claimed = std::make_shared<ClaimedDelivery>();
    claimed->delivery_id = delivery->id;
    claimed->event_uuid = delivery->event_uuid;
    claimed->event_type = delivery->event_type;
    claimed->body = std::move(delivery->request_body);
    claimed->attempt_count = delivery->attempt_count;
    claimed->hook = std::move(*hook);
    claimed->created = delivery->created;
    return claimed;
}

std::vector<HookResult> SyncDelivery::attempt_now(
    const std::vector<std::shared_ptr<const ClaimedDelivery>>& deliveries, AttemptTrigger trigger)
{
    boost::asio::io_context io;
    HttpClient http(io.get_executor(), client_options(options_));
    std::vector<HookResult> results(deliveries.size());
    std::vector<AttemptRecord> records(deliveries.size());
    std::set<std::int64_t> failed_hooks;
    std::vector<std::int64_t> gone;
    std::size_t remaining = deliveries.size();
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
        sender_.send(deliveries[i], http, trigger,
                     [this, i, &results, &records, &failed_hooks, &gone, &remaining, &io,
                      d = deliveries[i]](Attempt attempt, HttpResult result) {
                         results[i] = HookResult{d->hook.id, d->delivery_id, attempt};
                         callbacks_.run(d, attempt);
                         if (!attempt.succeeded())
                             failed_hooks.insert(d->hook.id);
                         Judged judged = judge_(*d, std::move(attempt), result);
                         if (judged.gone)
                             gone.push_back(d->hook.id);
                         records[i] = std::move(judged.record);
                         if (--remaining == 0)
                             io.stop(); // Idle keep-alive connections would keep io.run() going.
                     });
    }
    io.run();
    for (std::int64_t hook : gone)
        health_.disable_now(hook, gone_reason);
    store_.record_attempts(records);
    health_.check_now(failed_hooks);
    return results;
}

} // namespace whisperer::dispatch
