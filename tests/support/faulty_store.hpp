#pragma once
// A SubscriptionStore decorator for fault injection: forwards every call to a real store, and
// throws StoreError from the chosen operations while they are set to fail.

#include <whisperer/error.hpp>
#include <whisperer/subscription_store.hpp>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <vector>

namespace whisperer::test {

/// The operations a `FaultyStore` can make fail.
enum class StoreOp : std::uint32_t {
    hooks = 1u << 0,           ///< create, find, update, deactivate, rotate_secret, list, active_hooks
    enqueue = 1u << 1,         ///< enqueue_events
    read_deliveries = 1u << 2, ///< find_delivery, list_attempts, deliveries_of_event, list_deliveries, list_outbox
    requeue = 1u << 3,         ///< requeue, requeue_failed
    claim = 1u << 4,           ///< claim_due, next_due
    leases = 1u << 5,          ///< renew_leases, release_leases
    record = 1u << 6,          ///< record_attempts
    tokens = 1u << 7,          ///< add_token, find_token, list_tokens, revoke_token, record_token_use
    retention = 1u << 8,       ///< delete_finished_before
};

/// Thread-safe when the wrapped store is; `fail` and `heal` may be called from any thread.
class FaultyStore final : public SubscriptionStore {
public:
    explicit FaultyStore(SubscriptionStore& store) : store_(store) {}

    /// From now on, `ops` throw StoreError (as a full disk would make them) until healed.
    void fail(std::initializer_list<StoreOp> ops)
    {
        std::uint32_t mask = 0;
        for (StoreOp op : ops)
            mask |= static_cast<std::uint32_t>(op);
        failing_ = mask;
    }
    void heal() { failing_ = 0; }
    /// How many calls were refused so far.
    std::size_t refused() const { return refused_; }

    Hook create_hook(const Hook& hook) override { check(StoreOp::hooks); return store_.create_hook(hook); }
    std::optional<Hook> find_hook(std::int64_t id) override { check(StoreOp::hooks); return store_.find_hook(id); }
    Hook update_hook(const Hook& hook) override { check(StoreOp::hooks); return store_.update_hook(hook); }
    bool deactivate_hook(std::int64_t id, const std::string& reason = {}) override
    {
        check(StoreOp::hooks);
        return store_.deactivate_hook(id, reason);
    }
    Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) override
    {
        check(StoreOp::hooks);
        return store_.rotate_secret(id, rotation);
    }
    Page<Hook> list_hooks(const HookQuery& query) override { check(StoreOp::hooks); return store_.list_hooks(query); }
    std::vector<Hook> active_hooks(const std::string& event_type, const boost::json::object& filter = {},
                                   const std::vector<std::string>& owners = {}) override
    {
        check(StoreOp::hooks);
        return store_.active_hooks(event_type, filter, owners);
    }

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override
    {
        check(StoreOp::enqueue);
        {
            std::lock_guard lock(batches_mutex_);
            batches_.push_back(events.size());
        }
        return store_.enqueue_events(events);
    }
    /// How many events each `enqueue_events` call passed on, in order.
    std::vector<std::size_t> enqueue_batches() const
    {
        std::lock_guard lock(batches_mutex_);
        return batches_;
    }
    std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts = false) override
    {
        check(StoreOp::read_deliveries);
        return store_.find_delivery(id, with_attempts);
    }
    AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) override
    {
        check(StoreOp::read_deliveries);
        return store_.list_attempts(delivery_id, query);
    }
    std::vector<Delivery> deliveries_of_event(const std::string& event_uuid) override
    {
        check(StoreOp::read_deliveries);
        return store_.deliveries_of_event(event_uuid);
    }
    Page<Delivery> list_deliveries(const DeliveryQuery& query) override
    {
        check(StoreOp::read_deliveries);
        return store_.list_deliveries(query);
    }
    bool requeue(std::int64_t delivery_id, TimePoint due) override
    {
        check(StoreOp::requeue);
        return store_.requeue(delivery_id, due);
    }
    std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                               std::size_t limit = 10000) override
    {
        check(StoreOp::requeue);
        return store_.requeue_failed(hook_id, since, until, due, limit);
    }

    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override
    {
        check(StoreOp::claim);
        auto claimed = store_.claim_due(request);
        ++claims_;
        if (claimed.empty())
            ++empty_claims_;
        return claimed;
    }
    /// Claims made so far, and of those the ones that found nothing.
    std::size_t claims() const { return claims_; }
    std::size_t empty_claims() const { return empty_claims_; }
    void renew_leases(const std::string& worker, std::span<const std::int64_t> ids, TimePoint until) override
    {
        check(StoreOp::leases);
        store_.renew_leases(worker, ids, until);
    }
    void release_leases(const std::string& worker, std::span<const std::int64_t> ids) override
    {
        check(StoreOp::leases);
        store_.release_leases(worker, ids);
    }
    void record_attempts(std::span<const AttemptRecord> records) override
    {
        check(StoreOp::record);
        store_.record_attempts(records);
    }
    std::optional<TimePoint> next_due() override { check(StoreOp::claim); return store_.next_due(); }
    void checkpoint() override { store_.checkpoint(); }
    /// Not offered unless `offer_journal()` was called: `deliver_event` then commits each event
    /// before it returns, so a refused enqueue fails the call itself.
    std::string journal_prefix() const override { return journal_ ? store_.journal_prefix() : std::string{}; }
    std::vector<std::int64_t> subscriber_ids(const std::string& event_type,
                                             const boost::json::object& config_filter = {},
                                             const std::vector<std::string>& owners = {}) override
    {
        check(StoreOp::hooks);
        return store_.subscriber_ids(event_type, config_filter, owners);
    }
    /// From now on, offers the wrapped store's journal (for a dispatcher not yet constructed).
    void offer_journal() { journal_ = true; }
    Page<OutboxEntry> list_outbox(const OutboxQuery& query) override
    {
        check(StoreOp::read_deliveries);
        return store_.list_outbox(query);
    }

    std::int64_t add_token(const std::string& key_sha256, const ApiToken& token) override
    {
        check(StoreOp::tokens);
        return store_.add_token(key_sha256, token);
    }
    std::optional<ApiToken> find_token(const std::string& key_sha256) override
    {
        check(StoreOp::tokens);
        return store_.find_token(key_sha256);
    }
    std::vector<ApiToken> list_tokens() override
    {
        check(StoreOp::tokens);
        return store_.list_tokens();
    }
    bool revoke_token(std::int64_t id) override
    {
        check(StoreOp::tokens);
        return store_.revoke_token(id);
    }
    void record_token_use(std::int64_t id, TimePoint at) override
    {
        check(StoreOp::tokens);
        store_.record_token_use(id, at);
    }

    std::size_t delete_finished_before(TimePoint before, std::size_t limit = 1000) override
    {
        check(StoreOp::retention);
        return store_.delete_finished_before(before, limit);
    }

private:
    void check(StoreOp op)
    {
        if ((failing_.load() & static_cast<std::uint32_t>(op)) != 0) {
            ++refused_;
            throw StoreError("injected store fault: disk I/O error (database or disk is full)");
        }
    }

    SubscriptionStore& store_;
    std::atomic<std::uint32_t> failing_{0};
    std::atomic<std::size_t> refused_{0};
    std::atomic<std::size_t> claims_{0};
    bool journal_ = false;
    std::atomic<std::size_t> empty_claims_{0};
    mutable std::mutex batches_mutex_;
    std::vector<std::size_t> batches_;
};

} // namespace whisperer::test
