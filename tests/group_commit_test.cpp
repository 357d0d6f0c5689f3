// GroupCommit: callers share transactions, and a transaction's size is bounded in events and in
// deliveries, so one event for many hooks does not hold the store's writer for long.

#include "catch.hpp"
#include "faulty_store.hpp"
#include "store_samples.hpp"

#include "detail/group_commit.hpp"

#include <whisperer/sqlite_store.hpp>
#include <whisperer/store_decorator.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using detail::GroupCommit;

namespace {

/// Queues `events` for one leader, runs it, and returns the batch sizes the store saw and how
/// many deliveries were written.
struct Outcome {
    std::vector<std::size_t> batches;
    std::size_t deliveries = 0;
    std::size_t completed = 0;
};

Outcome commit_all(std::vector<NewEvent> events, std::size_t max_batch, std::size_t max_deliveries)
{
    SqliteStore sqlite{":memory:"};
    std::vector<std::int64_t> hooks;
    for (int i = 0; i < 3; ++i)
        hooks.push_back(sqlite.create_hook(sample_hook("owner-" + std::to_string(i), "https://h.example/")).id);
    FaultyStore store{sqlite};
    std::vector<std::function<void()>> leaders;
    GroupCommit commits{store, [&](std::function<void()> lead) { leaders.push_back(std::move(lead)); },
                        max_batch, max_deliveries};
    Outcome outcome;
    for (NewEvent& event : events) {
        // Each event names how many of the three hooks it goes to by the size of its list.
        const std::size_t n = event.hook_ids ? event.hook_ids->size() : 0;
        if (event.hook_ids)
            event.hook_ids = std::vector<std::int64_t>(hooks.begin(), hooks.begin() + static_cast<std::ptrdiff_t>(n));
        commits.commit_async(std::move(event), [&](std::exception_ptr error, EnqueuedEvent enqueued, NewEvent) {
            CHECK_FALSE(error);
            outcome.deliveries += enqueued.delivery_ids.size();
            ++outcome.completed;
        });
    }
    REQUIRE(leaders.size() == 1); // Every event queued behind the first one's leader.
    leaders.front()();
    outcome.batches = store.enqueue_batches();
    return outcome;
}

NewEvent event_for(std::size_t hooks)
{
    NewEvent event = sample_event("package-created");
    event.hook_ids = std::vector<std::int64_t>(hooks, 0);
    return event;
}

} // namespace

TEST_CASE("queued events share transactions of at most max_batch events", "[group_commit]")
{
    std::vector<NewEvent> events;
    for (int i = 0; i < 10; ++i)
        events.push_back(event_for(1));
    const Outcome outcome = commit_all(std::move(events), 4, 4096);
    CHECK(outcome.batches == std::vector<std::size_t>{4, 4, 2});
    CHECK(outcome.completed == 10);
    CHECK(outcome.deliveries == 10);
}

TEST_CASE("a transaction holds at most max_batch_deliveries deliveries past its first event",
          "[group_commit]")
{
    auto batches_of = [](std::initializer_list<std::size_t> hooks_per_event, std::size_t max_deliveries) {
        std::vector<NewEvent> events;
        std::size_t deliveries = 0;
        for (std::size_t hooks : hooks_per_event) {
            events.push_back(event_for(hooks));
            deliveries += hooks;
        }
        const Outcome outcome = commit_all(std::move(events), 1024, max_deliveries);
        CHECK(outcome.completed == hooks_per_event.size());
        CHECK(outcome.deliveries == deliveries);
        return outcome.batches;
    };
    // 3 + 3 passes 4, 3 + 1 fits, 1 + 1 fits and 1 + 1 + 3 passes it.
    CHECK(batches_of({3, 3, 1, 3, 1, 1, 1, 3}, 4) == std::vector<std::size_t>{1, 2, 2, 2, 1});
    // An event above the bound is written alone rather than never.
    CHECK(batches_of({3, 1, 1, 1, 3}, 2) == std::vector<std::size_t>{1, 2, 1, 1});
}

TEST_CASE("an event whose hooks are chosen at the write counts as one delivery", "[group_commit]")
{
    std::vector<NewEvent> events;
    for (int i = 0; i < 5; ++i)
        events.push_back(sample_event("package-created")); // No hook_ids: every matching hook.
    const Outcome outcome = commit_all(std::move(events), 1024, 2);
    CHECK(outcome.batches == std::vector<std::size_t>{2, 2, 1});
    CHECK(outcome.completed == 5);
    CHECK(outcome.deliveries == 15); // Three active hooks of the event's type each.
}

namespace {

/// A store whose commits run side by side up to `concurrent`, each held until `release`; it
/// counts how many ran at once at most.
class GatedStore : public StoreDecorator {
public:
    GatedStore(SubscriptionStore& inner, std::size_t concurrent) : StoreDecorator(inner), concurrent_(concurrent) {}

    std::size_t concurrent_commits() const override { return concurrent_; }

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override
    {
        std::unique_lock lock(mutex_);
        most_ = std::max(most_, ++running_);
        changed_.notify_all();
        changed_.wait(lock, [&] { return released_; });
        --running_;
        return std::vector<EnqueuedEvent>(events.size());
    }

    /// Waits until `n` commits run at once; false after a second without.
    bool wait_running(std::size_t n)
    {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, std::chrono::seconds(1), [&] { return running_ == n; });
    }
    void release()
    {
        std::lock_guard lock(mutex_);
        released_ = true;
        changed_.notify_all();
    }
    std::size_t most() const
    {
        std::lock_guard lock(mutex_);
        return most_;
    }

private:
    const std::size_t concurrent_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t running_ = 0;
    std::size_t most_ = 0;
    bool released_ = false;
};

/// Three callers commit at once on `store`; returns how many commits ran side by side at most.
std::size_t most_side_by_side(std::size_t concurrent)
{
    SqliteStore sqlite{":memory:"};
    GatedStore store{sqlite, concurrent};
    GroupCommit commits{store, [](std::function<void()>) { FAIL("no async commit here"); }};
    std::vector<std::thread> callers;
    for (int i = 0; i < 3; ++i)
        callers.emplace_back([&] { commits.commit(sample_event("package-created")); });
    CHECK(store.wait_running(std::min<std::size_t>(concurrent, 3)));
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // Room for a commit too many.
    store.release();
    for (std::thread& t : callers)
        t.join();
    return store.most();
}

} // namespace

TEST_CASE("a store's concurrent_commits bounds the commits that run side by side", "[group_commit]")
{
    CHECK(most_side_by_side(1) == 1); // A single writer: callers wait for the next batch.
    CHECK(most_side_by_side(2) == 2); // The third caller waits for a leader.
}
