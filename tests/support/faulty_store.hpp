#pragma once
// A SubscriptionStore decorator for fault injection: forwards every call to a real store, and
// throws StoreError from the chosen operations while they are set to fail.

#include <whisperer/error.hpp>
#include <whisperer/store_decorator.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <vector>

namespace whisperer::test {

/// The operations a `FaultyStore` can make fail.
enum class StoreOp : std::uint32_t {
    hooks = 1u << 0,           ///< create, find, update, deactivate, rotate_secret, list, active_hooks, subscriber_ids
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
class FaultyStore final : public StoreDecorator {
public:
    explicit FaultyStore(SubscriptionStore& store) : StoreDecorator(store) {}

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

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override
    {
        before(StoreCall::enqueue_events);
        {
            std::lock_guard lock(batches_mutex_);
            batches_.push_back(events.size());
        }
        return inner().enqueue_events(events);
    }
    /// How many events each `enqueue_events` call passed on, in order.
    std::vector<std::size_t> enqueue_batches() const
    {
        std::lock_guard lock(batches_mutex_);
        return batches_;
    }

    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override
    {
        {
            std::unique_lock lock(hold_mutex_);
            if (holding_) {
                ++claims_held_;
                hold_released_.wait(lock, [this] { return !holding_; });
            }
        }
        auto claimed = StoreDecorator::claim_due(request);
        ++claims_;
        if (claimed.empty())
            ++empty_claims_;
        return claimed;
    }
    /// From now on, `claim_due` waits (before it reads anything) until `release_claims`.
    void hold_claims()
    {
        std::lock_guard lock(hold_mutex_);
        holding_ = true;
    }
    void release_claims()
    {
        {
            std::lock_guard lock(hold_mutex_);
            holding_ = false;
        }
        hold_released_.notify_all();
    }
    /// How many claims have waited in `hold_claims` so far.
    std::size_t claims_held() const
    {
        std::lock_guard lock(hold_mutex_);
        return claims_held_;
    }

    /// Claims made so far, and of those the ones that found nothing.
    std::size_t claims() const { return claims_; }
    std::size_t empty_claims() const { return empty_claims_; }

    /// Not offered unless `offer_journal()` was called: `deliver_event` then commits each event
    /// before it returns, so a refused enqueue fails the call itself.
    std::string journal_prefix() const override { return journal_ ? inner().journal_prefix() : std::string{}; }
    /// From now on, offers the wrapped store's journal (for a dispatcher not yet constructed).
    void offer_journal() { journal_ = true; }

protected:
    void before(StoreCall call) override
    {
        if ((failing_.load() & static_cast<std::uint32_t>(group_of(call))) != 0) {
            ++refused_;
            throw StoreError("injected store fault: disk I/O error (database or disk is full)");
        }
    }

private:
    static StoreOp group_of(StoreCall call)
    {
        switch (call) {
        case StoreCall::enqueue_events: return StoreOp::enqueue;
        case StoreCall::find_delivery:
        case StoreCall::list_attempts:
        case StoreCall::deliveries_of_event:
        case StoreCall::list_deliveries:
        case StoreCall::list_outbox: return StoreOp::read_deliveries;
        case StoreCall::requeue:
        case StoreCall::requeue_failed: return StoreOp::requeue;
        case StoreCall::claim_due:
        case StoreCall::next_due: return StoreOp::claim;
        case StoreCall::renew_leases:
        case StoreCall::release_leases: return StoreOp::leases;
        case StoreCall::record_attempts: return StoreOp::record;
        case StoreCall::add_token:
        case StoreCall::find_token:
        case StoreCall::list_tokens:
        case StoreCall::revoke_token:
        case StoreCall::record_token_use: return StoreOp::tokens;
        case StoreCall::delete_finished_before: return StoreOp::retention;
        default: return StoreOp::hooks;
        }
    }

    std::atomic<std::uint32_t> failing_{0};
    std::atomic<std::size_t> refused_{0};
    std::atomic<std::size_t> claims_{0};
    bool journal_ = false;
    std::atomic<std::size_t> empty_claims_{0};
    mutable std::mutex hold_mutex_;
    std::condition_variable hold_released_;
    bool holding_ = false;
    std::size_t claims_held_ = 0;
    mutable std::mutex batches_mutex_;
    std::vector<std::size_t> batches_;
};

} // namespace whisperer::test
