// Isolation: receivers that accept and never answer, or answer one byte per second, hold at most
// their origin's connections; deliveries to every other hook complete meanwhile.

#include "api_fixture.hpp"
#include "receiver.hpp"

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
