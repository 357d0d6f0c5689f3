// A store that forwards to another and times the calls the dispatcher makes on its hot path.
#ifndef WHISPERER_BENCH_TIMED_STORE_HPP
#define WHISPERER_BENCH_TIMED_STORE_HPP

#include <whisperer/store_decorator.hpp>

#include <boost/json/object.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <mutex>
#include <type_traits>
#include <vector>

namespace whisperer::bench {

/// Forwards every call to `inner` (`subscriber_ids`, in the host's thread, untimed); for the outbox and enqueue calls it also counts calls, rows
/// and the time each call took (waiting for the store's lock included), keeping every duration
/// for its percentiles. Thread-safe.
class TimedStore final : public StoreDecorator {
public:
    explicit TimedStore(SubscriptionStore& inner) : StoreDecorator(inner) {}

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
        return timed(enqueue, events.size(), [&] { return inner().enqueue_events(events); });
    }
    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override
    {
        Timer t(*this, claim);
        auto claimed = inner().claim_due(request);
        t.rows = claimed.size();
        return claimed;
    }
    void record_attempts(std::span<const AttemptRecord> records) override
    {
        timed(record, records.size(), [&] { inner().record_attempts(records); });
    }
    std::optional<TimePoint> next_due() override
    {
        return timed(next, 1, [&] { return inner().next_due(); });
    }
    void renew_leases(const std::string& worker, std::span<const std::int64_t> ids, TimePoint until) override
    {
        timed(renew, ids.size(), [&] { inner().renew_leases(worker, ids, until); });
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
    mutable std::mutex mutex_;
    std::array<Stat, operation_count> stats_{};
};

} // namespace whisperer::bench

#endif
