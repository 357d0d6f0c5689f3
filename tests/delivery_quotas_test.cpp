// Owner and origin quotas: one owner whose receivers stall, or one stalled receiver that many
// owners send to, holds at most its quota of the dispatcher's slots; the others' deliveries go
// out meanwhile.

#include "api_fixture.hpp"
#include "eventually.hpp"
#include "receiver.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/subscription_store.hpp>

#include <memory>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// 32 slots: a hook may hold 8, an owner 16, an origin 16; stalled requests outlast the test.
DispatcherOptions small_slots()
{
    auto options = quick_dispatcher_options();
    options.request_timeout = 60s;
    options.lease = 3s;
    options.max_connections_per_origin = 2;
    options.max_in_flight = 32;
    return options;
}

Reply stall(const ReceivedRequest&)
{
    return Reply{.action = Reply::Action::stall};
}

/// Deliveries of `owner`'s hooks leased now: those in flight.
std::size_t leased_by(SubscriptionStore& store, const std::string& owner)
{
    OutboxQuery query;
    query.owner = owner;
    query.limit = 1000;
    std::size_t n = 0;
    for (const OutboxEntry& entry : store.list_outbox(query).items)
        if (entry.lease_expires)
            ++n;
    return n;
}

} // namespace

TEST_CASE("many hooks of one owner to stalling receivers cannot starve another owner's hook",
          "[isolation][dispatcher][security]")
{
    ApiFixture api(small_slots());
    // Four stalling receivers: with their hook quotas alone, alice's hooks would take all 32 slots.
    std::vector<std::unique_ptr<Receiver>> stalled;
    for (int i = 0; i < 4; ++i) {
        stalled.push_back(std::make_unique<Receiver>(stall));
        api.create_hook(api.alice, stalled.back()->url("/stalled"));
    }
    api.dispatcher->start();
    for (int i = 0; i < 20; ++i)
        api.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {});
    // Alice holds her owner quota, half the slots, and no more.
    REQUIRE(eventually([&] { return leased_by(api.store, "alice") == 16; }, 30s));

    Receiver healthy;
    api.create_hook(api.bob, healthy.url("/healthy"));
    for (int i = 0; i < 5; ++i)
        api.dispatcher->deliver_data(json::object{{"n", 100 + i}}, "package-created", {});
    CHECK(healthy.wait_for(5, 30s));
    // Bob's deliveries arrived while alice's stalled requests were all still outstanding.
    CHECK(leased_by(api.store, "alice") == 16);
    CHECK(api.dispatcher->counters().in_flight >= 16);
}

TEST_CASE("one stalled receiver that many owners send to cannot starve another origin",
          "[isolation][dispatcher][security]")
{
    ApiFixture api(small_slots());
    const std::string carol = issue_token(api.store, "carol");
    const std::string dave = issue_token(api.store, "dave");
    // One stalled origin, two hooks of each of two owners: owner quotas (16 each) alone would
    // let them take all 32 slots.
    Receiver stalled(stall);
    for (const std::string* token : {&api.alice, &api.bob})
        for (const char* path : {"/a", "/b"})
            api.create_hook(*token, stalled.url(path));
    api.dispatcher->start();
    for (int i = 0; i < 20; ++i)
        api.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {});
    REQUIRE(eventually([&] { return leased_by(api.store, "alice") + leased_by(api.store, "bob") == 16; }, 30s));

    Receiver healthy;
    api.create_hook(carol, healthy.url("/healthy"));
    api.create_hook(dave, healthy.url("/other"));
    for (int i = 0; i < 5; ++i)
        api.dispatcher->deliver_data(json::object{{"n", 100 + i}}, "package-created", {});
    CHECK(healthy.wait_for(10, 30s));
    CHECK(leased_by(api.store, "alice") + leased_by(api.store, "bob") == 16);
}
