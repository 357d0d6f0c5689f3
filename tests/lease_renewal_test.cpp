// Lease renewal end to end: two dispatchers on one SQLite file, a receiver slower than the lease.

#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "temp_dir.hpp"

#include <whisperer/whisperer.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace whisperer;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

constexpr auto lease = 300ms;

/// A dispatcher with its own store connection and threads on a shared SQLite file, as a second
/// process would have.
struct Node {
    SqliteStore store;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    Dispatcher dispatcher;

    Node(const std::string& db, const Registry& registry)
        : store(db), dispatcher(io.get_executor(), registry, store, options())
    {
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }

    ~Node()
    {
        dispatcher.stop();
        work.reset();
        for (auto& t : threads)
            t.join();
    }

    static DispatcherOptions options()
    {
        DispatcherOptions o;
        o.lease = lease;
        o.idle_poll = 50ms; // Looks for rows whose lease ran out many times while a request is held.
        o.request_timeout = 30s;
        o.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).as_filter();
        return o;
    }
};

} // namespace

TEST_CASE("a request held longer than three leases is renewed and never sent twice by a second dispatcher",
          "[lease]")
{
    test::TempDir dir;
    const std::string db = dir.file("whisperer.db");
    Registry registry;
    registry.register_json_event("thing.happened");
    test::Receiver receiver([](const test::ReceivedRequest&) {
        return test::Reply{.status = 200, .delay = 3 * lease + 100ms};
    });
    {
        SqliteStore setup(db);
        for (const char* path : {"/a", "/b"}) {
            Hook hook;
            hook.owner = "alice";
            hook.target_url = receiver.url(path);
            hook.event_type = "thing.happened";
            hook.secret_key = "<secret>";
            hook.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 60}}}};
            validate_hook(hook, {.registry = &registry});
            setup.create_hook(hook);
        }
    }
    Node first(db, registry);
    Node second(db, registry);
    first.dispatcher.start();
    second.dispatcher.start();

    // More deliveries per dispatcher than it has connections to the receiver's origin (8), so
    // some wait for a connection while others are answered.
    std::vector<std::string> uuids;
    for (int i = 0; i < 12; ++i) {
        Node& node = i % 2 == 0 ? first : second;
        uuids.push_back(node.dispatcher.deliver_event(json::value{{"n", i}}, "thing.happened").event_uuid);
    }
    REQUIRE(first.dispatcher.wait_stored());
    REQUIRE(second.dispatcher.wait_stored());
    const auto all_delivered = [&] {
        for (const std::string& uuid : uuids)
            for (const Delivery& d : first.store.deliveries_of_event(uuid))
                if (d.state != DeliveryState::delivered)
                    return false;
        return true;
    };
    REQUIRE(test::eventually(all_delivered, 60s));
    first.dispatcher.stop();
    second.dispatcher.stop();

    std::map<std::pair<std::string, std::string>, int> requests; // (path, webhook-id) -> count
    for (const test::ReceivedRequest& r : receiver.requests())
        ++requests[{r.target, r.header("webhook-id")}];
    CHECK(requests.size() == uuids.size() * 2);
    for (const auto& [key, count] : requests) {
        INFO(key.first << " " << key.second);
        CHECK(count == 1);
    }
    for (const std::string& uuid : uuids)
        for (const Delivery& d : first.store.deliveries_of_event(uuid))
            CHECK(d.attempt_count == 1);
}
