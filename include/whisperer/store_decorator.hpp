#ifndef WHISPERER_STORE_DECORATOR_HPP
#define WHISPERER_STORE_DECORATOR_HPP

#include <whisperer/subscription_store.hpp>

namespace whisperer {

/// The operations of `SubscriptionStore`, as a `StoreDecorator` names them to `before`.
enum class StoreCall {
    create_hook,
    find_hook,
    update_hook,
    deactivate_hook,
    rotate_secret,
    list_hooks,
    active_hooks,
    subscriber_ids,
    enqueue_events,
    find_delivery,
    list_attempts,
    deliveries_of_event,
    list_deliveries,
    requeue,
    requeue_failed,
    claim_due,
    renew_leases,
    release_leases,
    record_attempts,
    next_due,
    list_outbox,
    add_token,
    find_token,
    list_tokens,
    revoke_token,
    record_token_use,
    delete_finished_before,
};

/// A store that forwards every call to another one (which must outlive it), calling `before`
/// first: derive from it to count, time or fail calls, and override only the calls that need
/// more (call the base's to forward). Thread-safe as the wrapped store is and `before` is.
class StoreDecorator : public SubscriptionStore {
public:
    explicit StoreDecorator(SubscriptionStore& inner) noexcept : inner_(&inner) {}

    /// The wrapped store.
    SubscriptionStore& inner() const noexcept { return *inner_; }

    Hook create_hook(const Hook& hook) override
    {
        before(StoreCall::create_hook);
        return inner_->create_hook(hook);
    }
    std::optional<Hook> find_hook(std::int64_t id) override
    {
        before(StoreCall::find_hook);
        return inner_->find_hook(id);
    }
    Hook update_hook(const Hook& hook) override
    {
        before(StoreCall::update_hook);
        return inner_->update_hook(hook);
    }
    bool deactivate_hook(std::int64_t id, const std::string& reason = {}) override
    {
        before(StoreCall::deactivate_hook);
        return inner_->deactivate_hook(id, reason);
    }
    Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) override
    {
        before(StoreCall::rotate_secret);
        return inner_->rotate_secret(id, rotation);
    }
    Page<Hook> list_hooks(const HookQuery& query) override
    {
        before(StoreCall::list_hooks);
        return inner_->list_hooks(query);
    }
    std::vector<Hook> active_hooks(const std::string& event_type, const boost::json::object& config_filter = {},
                                   const std::vector<std::string>& owners = {}) override
    {
        before(StoreCall::active_hooks);
        return inner_->active_hooks(event_type, config_filter, owners);
    }
    std::vector<std::int64_t> subscriber_ids(const std::string& event_type,
                                             const boost::json::object& config_filter = {},
                                             const std::vector<std::string>& owners = {}) override
    {
        before(StoreCall::subscriber_ids);
        return inner_->subscriber_ids(event_type, config_filter, owners);
    }
    std::string journal_prefix() const override { return inner_->journal_prefix(); }
    void checkpoint() override { inner_->checkpoint(); }

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override
    {
        before(StoreCall::enqueue_events);
        return inner_->enqueue_events(events);
    }
    std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts = false) override
    {
        before(StoreCall::find_delivery);
        return inner_->find_delivery(id, with_attempts);
    }
    AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) override
    {
        before(StoreCall::list_attempts);
        return inner_->list_attempts(delivery_id, query);
    }
    std::vector<Delivery> deliveries_of_event(const std::string& event_uuid) override
    {
        before(StoreCall::deliveries_of_event);
        return inner_->deliveries_of_event(event_uuid);
    }
    Page<Delivery> list_deliveries(const DeliveryQuery& query) override
    {
        before(StoreCall::list_deliveries);
        return inner_->list_deliveries(query);
    }
    bool requeue(std::int64_t delivery_id, TimePoint due) override
    {
        before(StoreCall::requeue);
        return inner_->requeue(delivery_id, due);
    }
    std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                               std::size_t limit = 10000) override
    {
        before(StoreCall::requeue_failed);
        return inner_->requeue_failed(hook_id, since, until, due, limit);
    }

    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override
    {
        before(StoreCall::claim_due);
        return inner_->claim_due(request);
    }
    void renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids, TimePoint until) override
    {
        before(StoreCall::renew_leases);
        inner_->renew_leases(worker, delivery_ids, until);
    }
    void release_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids) override
    {
        before(StoreCall::release_leases);
        inner_->release_leases(worker, delivery_ids);
    }
    void record_attempts(std::span<const AttemptRecord> records) override
    {
        before(StoreCall::record_attempts);
        inner_->record_attempts(records);
    }
    std::optional<TimePoint> next_due() override
    {
        before(StoreCall::next_due);
        return inner_->next_due();
    }
    Page<OutboxEntry> list_outbox(const OutboxQuery& query) override
    {
        before(StoreCall::list_outbox);
        return inner_->list_outbox(query);
    }

    std::int64_t add_token(const std::string& key_sha256, const ApiToken& token) override
    {
        before(StoreCall::add_token);
        return inner_->add_token(key_sha256, token);
    }
    std::optional<ApiToken> find_token(const std::string& key_sha256) override
    {
        before(StoreCall::find_token);
        return inner_->find_token(key_sha256);
    }
    std::vector<ApiToken> list_tokens() override
    {
        before(StoreCall::list_tokens);
        return inner_->list_tokens();
    }
    bool revoke_token(std::int64_t id) override
    {
        before(StoreCall::revoke_token);
        return inner_->revoke_token(id);
    }
    void record_token_use(std::int64_t id, TimePoint at) override
    {
        before(StoreCall::record_token_use);
        inner_->record_token_use(id, at);
    }

    std::size_t delete_finished_before(TimePoint before_time, std::size_t limit = 1000) override
    {
        before(StoreCall::delete_finished_before);
        return inner_->delete_finished_before(before_time, limit);
    }

protected:
    /// Runs before every forwarded call (not `journal_prefix` and `checkpoint`); a throw
    /// stops the call there. Does nothing by default.
    virtual void before(StoreCall /*call*/) {}

    /// Wraps `inner` from now on instead (no call may be running).
    void wrap(SubscriptionStore& inner) noexcept { inner_ = &inner; }

private:
    SubscriptionStore* inner_;
};

} // namespace whisperer

#endif
