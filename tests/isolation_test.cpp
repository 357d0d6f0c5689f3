// Isolation: receivers that accept and never answer, or answer one byte per second, hold at most
// their origin's connections; deliveries to every other hook complete meanwhile.

#include "api_fixture.hpp"
#include "eventually.hpp"
#include "faulty_store.hpp"
#include "receiver.hpp"

#include <optional>
#include <thread>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;

TEST_CASE("a stalled and a trickling receiver do not slow the deliveries to other hooks", "[isolation]")
{
    constexpr int events = 20;
    constexpr std::size_t per_origin = 2;
    auto options = quick_dispatcher_options();
    options.request_timeout = 60s; // Longer than the test: the stalled requests stay outstanding.
    options.lease = 3s;
    options.max_connections_per_origin = per_origin;
    options.max_in_flight = 32;
    // Every hook is alice's: without her owner quota (half the slots, which her two slow hooks
    // would fill), the hook quotas alone keep her other hooks going.
    options.max_in_flight_per_owner = options.max_in_flight;
    ApiFixture api(options);

    Receiver stalled([](const ReceivedRequest&) { return Reply{.action = Reply::Action::stall}; });
    Receiver trickling(
        [](const ReceivedRequest&) { return Reply{.action = Reply::Action::trickle, .body = "ok", .delay = 1s}; });
    Receiver healthy;
    const std::int64_t stalled_hook = api.create_hook(api.alice, stalled.url("/stalled"));
    const std::int64_t trickling_hook = api.create_hook(api.alice, trickling.url("/trickling"));
    for (const char* path : {"/a", "/b", "/c"})
        api.create_hook(api.alice, healthy.url(path));
    api.dispatcher->start();

    std::vector<std::string> uuids;
    for (int i = 0; i < events; ++i)
        uuids.push_back(api.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {}).event_uuid);

    auto deliveries_to = [&](std::int64_t hook_id) {
        DeliveryQuery query;
        query.hook_id = hook_id;
        query.limit = 1000;
        return api.store.list_deliveries(query).items;
    };
    auto delivered_to_others = [&] {
        std::size_t n = 0;
        for (const std::string& uuid : uuids)
            for (const Delivery& d : api.store.deliveries_of_event(uuid))
                if (d.hook_id != stalled_hook && d.hook_id != trickling_hook && d.delivered())
                    ++n;
        return n;
    };
    REQUIRE(eventually([&] { return delivered_to_others() == 3 * events; }, 30s));
    CHECK(healthy.count() == 3 * events);

    // Meanwhile the slow receivers hold requests that have not been answered, on no more
    // connections than their origin's cap.
    CHECK(stalled.count() >= 1);
    CHECK(stalled.connections_accepted() <= per_origin);
    CHECK(trickling.count() >= 1);
    CHECK(trickling.connections_accepted() <= per_origin);
    CHECK(api.dispatcher->counters().in_flight >= 2);
    for (std::int64_t hook : {stalled_hook, trickling_hook}) {
        const auto slow = deliveries_to(hook);
        CHECK(slow.size() == static_cast<std::size_t>(events));
        for (const Delivery& d : slow) {
            CHECK(d.state == DeliveryState::pending);
            CHECK(d.attempt_count == 0);
        }
    }
}

TEST_CASE("a stalled hook with a backlog holds its quota of the slots in flight and no more", "[isolation]")
{
    auto options = quick_dispatcher_options();
    options.request_timeout = 60s; // Longer than the test: the stalled requests stay outstanding.
    options.lease = 3s;
    options.max_connections_per_origin = 1;
    options.max_in_flight = 16; // A hook's quota: a quarter of it, 4.
    constexpr std::size_t quota = 4;
    ApiFixture api(options);
    Receiver stalled([](const ReceivedRequest&) { return Reply{.action = Reply::Action::stall}; });
    Receiver healthy;
    api.create_hook(api.alice, stalled.url("/stalled"));
    api.dispatcher->start();

    // More events than there are slots, all for the stalled hook.
    for (int i = 0; i < 40; ++i)
        api.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {});
    auto leased_by = [&](const std::string& owner) {
        OutboxQuery query;
        query.owner = owner;
        query.limit = 1000;
        std::size_t n = 0;
        for (const OutboxEntry& entry : api.store.list_outbox(query).items)
            if (entry.lease_expires)
                ++n;
        return n;
    };
    REQUIRE(eventually([&] { return leased_by("alice") == quota; }, 30s));

    // A hook created now gets its deliveries through the slots the stalled one leaves.
    api.create_hook(api.bob, healthy.url("/healthy"));
    for (int i = 0; i < 10; ++i)
        api.dispatcher->deliver_data(json::object{{"n", 100 + i}}, "package-created", {});
    REQUIRE(eventually([&] { return healthy.count() == 10; }, 30s));
    CHECK(leased_by("alice") == quota);
    CHECK(stalled.connections_accepted() <= 1);
}

namespace {

/// A dispatcher on two threads over a SQLite file seen through a FaultyStore (which counts the
/// claims, and offers the file's journal), with a held (stalled or slow) receiver and a healthy
/// one, each behind its own hook.
struct HeldBackFixture {
    TempDir dir;
    SqliteStore real{dir.file("whisperer.db")};
    FaultyStore store{real};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    Receiver held;
    Receiver healthy;
    std::optional<Dispatcher> dispatcher;

    explicit HeldBackFixture(Receiver::Handler held_handler) : held(std::move(held_handler))
    {
        registry.register_json_event("package-created");
        for (const std::string& url : {held.url("/held"), healthy.url("/healthy")}) {
            Hook hook;
            hook.owner = "alice";
            hook.target_url = url;
            hook.event_type = "package-created";
            real.create_hook(hook);
        }
        auto options = quick_dispatcher_options();
        options.request_timeout = 60s; // Longer than the test: a stalled request stays outstanding.
        options.max_connections_per_origin = 1;
        options.max_in_flight = 16; // A hook's quota: a quarter of it, 4.
        store.offer_journal();      // New events are handed off, as with SQLite on its own.
        dispatcher.emplace(io.get_executor(), registry, store, options);
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
        dispatcher->start();
    }

    ~HeldBackFixture()
    {
        dispatcher->stop(1s);
        work.reset();
        io.stop();
        for (std::thread& t : threads)
            t.join();
    }

    void deliver(int n) { dispatcher->deliver_data(json::object{{"n", n}}, "package-created", {}); }
};

} // namespace

TEST_CASE("new events of a hook held at its quota make no claim each", "[isolation][dispatcher]")
{
    HeldBackFixture f([](const ReceivedRequest&) { return Reply{.action = Reply::Action::stall}; });
    // The stalled hook takes its quota (4) and keeps it; the healthy one gets every event.
    for (int i = 0; i < 4; ++i)
        f.deliver(i);
    REQUIRE(f.healthy.wait_for(4, 30s));
    REQUIRE(eventually([&] { return f.dispatcher->counters().in_flight == 4; }, 30s));

    // One event at a time: each is handed off to the healthy hook and leaves a row of the stalled
    // hook, which no claim could take while its quota is held.
    constexpr int events = 40;
    const std::size_t empty_before = f.store.empty_claims();
    const auto started = std::chrono::steady_clock::now();
    for (int i = 0; i < events; ++i) {
        f.deliver(100 + i);
        REQUIRE(f.healthy.wait_for(static_cast<std::size_t>(4 + i + 1), 30s));
    }
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    // What remains are the claims of the busy dispatcher's poll (every 100 ms, for rows of other
    // processes and retries falling due) and a few of the first events; one per event before.
    const std::size_t empty = f.store.empty_claims() - empty_before;
    INFO("empty claims: " << empty << " in " << elapsed.count() << " ms");
    CHECK(empty <= 5 + static_cast<std::size_t>(elapsed.count() / 100));
    CHECK(f.held.count() <= 4);
}

TEST_CASE("a hook held at its quota gets its waiting rows claimed as its own requests complete",
          "[isolation][dispatcher]")
{
    HeldBackFixture f([](const ReceivedRequest&) { return Reply{.body = "ok", .delay = 20ms}; });
    constexpr int events = 30;
    for (int i = 0; i < events; ++i)
        f.deliver(i);
    REQUIRE(f.healthy.wait_for(events, 30s));
    // The slow hook can hold 4 at a time: the rest waited in the outbox behind its quota.
    REQUIRE(f.held.wait_for(events, 30s));
    CHECK(f.held.count() == static_cast<std::size_t>(events));
    CHECK(eventually([&] { return f.dispatcher->counters().delivered == 2 * events; }, 30s));
}
