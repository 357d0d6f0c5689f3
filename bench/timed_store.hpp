// A store that forwards to another and times the calls the dispatcher makes on its hot path.
#ifndef WHISPERER_BENCH_TIMED_STORE_HPP
#define WHISPERER_BENCH_TIMED_STORE_HPP

#include <whisperer/subscription_store.hpp>

#include <boost/json/object.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <mutex>
#include <type_traits>
#include <vector>

namespace whisperer::bench {

/// Forwards every call to `inner`; for the outbox and enqueue calls it also counts calls, rows
/// and the time each call took (waiting for the store's lock included), keeping every duration
/// for its percentiles. Thread-safe.
class TimedStore final : public SubscriptionStore {
public:
    explicit TimedStore(SubscriptionStore& inner) : inner_(inner) {}

    /// `{operation: {calls, rows, mean_us, p50_us, p99_us, max_us, busy_s}}` for every timed
    /// operation called (percentiles nearest-rank).
    boost::json::object stats() const
    {
        std::lock_guard lock(mutex_);
        boost::json::object out;
        for (std::size_t i = 0; i < names_.size(); ++i) {
            const Stat& s = stats_[i];
            if (s.calls == 0)
                continue;
            std::vector<double> sorted = s.samples_us;
            std::sort(sorted.begin(), sorted.end());
            auto rank = [&](double p) {
                auto at = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
                return sorted[std::clamp<std::size_t>(at, 1, sorted.size()) - 1];
            };
            out[names_[i]] = {{"calls", s.calls},
                              {"rows", s.rows},
                              {"mean_us", s.total_us / static_cast<double>(s.calls)},
                              {"p50_us", rank(0.50)},
                              {"p99_us", rank(0.99)},
                              {"max_us", s.max_us},
                              {"busy_s", s.total_us / 1e6}};
        }
        return out;
    }

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override
    {
        return timed(enqueue, events.size(), [&] { return inner_.enqueue_events(events); });
    }
    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override
    {
        Timer t(*this, claim);
        auto claimed = inner_.claim_due(request);
        t.rows = claimed.size();
        return claimed;
    }
    void record_attempts(std::span<const AttemptRecord> records) override
    {
        timed(record, records.size(), [&] { inner_.record_attempts(records); });
    }
    std::optional<TimePoint> next_due() override
    {
        return timed(next, 1, [&] { return inner_.next_due(); });
    }
    void renew_leases(const std::string& worker, std::span<const std::int64_t> ids, TimePoint until) override
    {
        timed(renew, ids.size(), [&] { inner_.renew_leases(worker, ids, until); });
    }

    Hook create_hook(const Hook& hook) override { return inner_.create_hook(hook); }
    std::optional<Hook> find_hook(std::int64_t id) override { return inner_.find_hook(id); }
    Hook update_hook(const Hook& hook) override { return inner_.update_hook(hook); }
    bool deactivate_hook(std::int64_t id, const std::string& reason) override
    {
        return inner_.deactivate_hook(id, reason);
    }
    Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) override
    {
        return inner_.rotate_secret(id, rotation);
    }
    Page<Hook> list_hooks(const HookQuery& query) override { return inner_.list_hooks(query); }
    std::vector<std::int64_t> subscriber_ids(const std::string& type, const boost::json::object& filter,
                                             const std::vector<std::string>& owners) override
    {
        return inner_.subscriber_ids(type, filter, owners); // In the host's thread: not timed, no shared lock.
    }
    std::string journal_prefix() const override { return inner_.journal_prefix(); }
    void checkpoint() override { inner_.checkpoint(); } // Off every caller's path: not timed.
    std::vector<Hook> active_hooks(const std::string& type, const boost::json::object& filter,
                                   const std::vector<std::string>& owners) override
    {
        return inner_.active_hooks(type, filter, owners);
    }
    std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts) override
    {
        return inner_.find_delivery(id, with_attempts);
    }
    AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) override
    {
        return inner_.list_attempts(delivery_id, query);
    }
    std::vector<Delivery> deliveries_of_event(const std::string& uuid) override
    {
        return inner_.deliveries_of_event(uuid);
    }
    Page<Delivery> list_deliveries(const DeliveryQuery& query) override { return inner_.list_deliveries(query); }
    bool requeue(std::int64_t id, TimePoint due) override { return inner_.requeue(id, due); }
    std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                               std::size_t limit) override
    {
        return inner_.requeue_failed(hook_id, since, until, due, limit);
    }
    void release_leases(const std::string& worker, std::span<const std::int64_t> ids) override
    {
        inner_.release_leases(worker, ids);
    }
    Page<OutboxEntry> list_outbox(const OutboxQuery& query) override { return inner_.list_outbox(query); }
    std::int64_t add_token(const std::string& key, const ApiToken& token) override
    {
        return inner_.add_token(key, token);
    }
    std::optional<ApiToken> find_token(const std::string& key) override { return inner_.find_token(key); }
    std::vector<ApiToken> list_tokens() override { return inner_.list_tokens(); }
    bool revoke_token(std::int64_t id) override { return inner_.revoke_token(id); }
    void record_token_use(std::int64_t id, TimePoint at) override { inner_.record_token_use(id, at); }
    std::size_t delete_finished_before(TimePoint before, std::size_t limit) override
    {
        return inner_.delete_finished_before(before, limit);
    }

private:
    enum Operation { enqueue, claim, record, next, renew, operation_count };
    struct Stat {
        std::uint64_t calls = 0, rows = 0;
        double total_us = 0, max_us = 0;
        std::vector<double> samples_us;
    };
    struct Timer {
        Timer(TimedStore& store, Operation op) : store_(store), op_(op) {}
        ~Timer()
        {
            const double us =
                std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - started_).count();
            std::lock_guard lock(store_.mutex_);
            Stat& s = store_.stats_[op_];
            ++s.calls;
            s.rows += rows;
            s.total_us += us;
            s.max_us = std::max(s.max_us, us);
            s.samples_us.push_back(us);
        }
        TimedStore& store_;
        Operation op_;
        std::size_t rows = 0;
        std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
    };
    template <class F>
    std::invoke_result_t<F&> timed(Operation op, std::size_t rows, F f)
    {
        Timer t(*this, op);
        t.rows = rows;
        return f();
    }

    static constexpr std::array<const char*, operation_count> names_{"enqueue_events", "claim_due",
                                                                     "record_attempts", "next_due", "renew_leases"};
    SubscriptionStore& inner_;
    mutable std::mutex mutex_;
    std::array<Stat, operation_count> stats_{};
};

} // namespace whisperer::bench

#endif
