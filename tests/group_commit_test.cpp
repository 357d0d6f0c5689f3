// GroupCommit: callers share transactions, and a transaction's size is bounded in events and in
// deliveries, so one event for many hooks does not hold the store's writer for long.

#include "catch.hpp"
#include "faulty_store.hpp"
#include "store_samples.hpp"

#include "detail/group_commit.hpp"

#include <whisperer/sqlite_store.hpp>

#include <functional>
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

TEST_CASE("the callers of a failed commit each get an exception of their own", "[group_commit]")
{
    // Callers on several threads rethrow what they get: one shared exception object would be
    // read by one while another's catch block ends.
    SqliteStore sqlite{":memory:"};
    FaultyStore store{sqlite};
    store.fail({StoreOp::enqueue});
    std::vector<std::function<void()>> leaders;
    GroupCommit commits{store, [&](std::function<void()> lead) { leaders.push_back(std::move(lead)); }};
    std::vector<std::exception_ptr> errors;
    for (int i = 0; i < 3; ++i)
        commits.commit_async(sample_event("package-created"),
                             [&](std::exception_ptr error, EnqueuedEvent, NewEvent) { errors.push_back(error); });
    REQUIRE(leaders.size() == 1);
    leaders.front()();
    REQUIRE(errors.size() == 3);
    for (std::size_t i = 0; i < errors.size(); ++i) {
        REQUIRE(errors[i]);
        CHECK_THROWS_AS(std::rethrow_exception(errors[i]), StoreError);
        for (std::size_t j = 0; j < i; ++j)
            CHECK(errors[i] != errors[j]);
    }
}
