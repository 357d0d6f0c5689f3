// Store faults: a store that refuses writes (an injected fault, like a full disk) or a database
// file locked by another connection. deliver_event fails cleanly and writes nothing; the
// dispatcher keeps running, logs, backs off and resumes once the store works again.

#include "api_fixture.hpp"
#include "faulty_store.hpp"
#include "receiver.hpp"

#include <boost/asio/use_future.hpp>

#include <sqlite3.h>

#include <future>
#include <mutex>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

/// Collects the dispatcher's log lines.
struct LogLines {
    std::mutex mutex;
    std::vector<std::string> lines;

    LogHandler handler()
    {
        return [this](LogLevel, std::string_view line) {
            std::lock_guard lock{mutex};
            lines.emplace_back(line);
        };
    }

    bool contains(std::string_view text)
    {
        std::lock_guard lock{mutex};
        for (const std::string& line : lines)
            if (line.find(text) != std::string::npos)
                return true;
        return false;
    }
};

/// A real SQLite file behind a FaultyStore, a dispatcher on two threads and a receiver.
struct FaultFixture {
    TempDir dir;
    std::string path = dir.file("whisperer.db");
    SqliteStore real;
    FaultyStore store{real};
    Registry registry;
    LogLines log;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    Receiver receiver;
    std::optional<Dispatcher> dispatcher;

    explicit FaultFixture(SqliteOptions sqlite = {}, DispatcherOptions options = quick_dispatcher_options(),
                          Receiver::Handler reply = {})
        : real(path, sqlite), receiver(std::move(reply))
    {
        registry.register_json_event("package-created");
        Hook hook;
        hook.owner = "alice";
        hook.target_url = receiver.url("/hook");
        hook.event_type = "package-created";
        hook.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 0.01}}}};
        real.create_hook(hook);
        options.log = log.handler();
        dispatcher.emplace(io.get_executor(), registry, store, options);
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
        dispatcher->start();
    }

    ~FaultFixture()
    {
        store.heal();
        store.release_claims();
        dispatcher->stop(1s);
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }

    bool nothing_stored()
    {
        return real.list_deliveries({}).items.empty() && real.list_outbox({}).items.empty();
    }

    bool delivered(const std::string& uuid)
    {
        auto deliveries = real.deliveries_of_event(uuid);
        return !deliveries.empty() && deliveries.front().delivered();
    }
};

} // namespace

TEST_CASE("deliver_event fails with StoreError and writes nothing while the store refuses writes", "[faults]")
{
    FaultFixture f;
    f.store.fail({StoreOp::enqueue});
    CHECK_THROWS_AS(f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {}), StoreError);
    auto future = f.dispatcher->async_deliver_event(json::object{{"id", 2}}, "package-created", {},
                                                    boost::asio::use_future);
    try {
        future.get();
        FAIL("async_deliver_event succeeded on a failing store");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == make_error_code(errc::store_failure));
    }
    CHECK(f.nothing_stored());
    CHECK(f.receiver.count() == 0);

    f.store.heal();
    auto result = f.dispatcher->deliver_data(json::object{{"id", 3}}, "package-created", {});
    REQUIRE(eventually([&] { return f.delivered(result.event_uuid); }));
    CHECK(f.receiver.count() == 1);
}

TEST_CASE("the dispatcher logs and backs off while claims fail, and delivers once the store works", "[faults]")
{
    FaultFixture f;
    f.store.fail({StoreOp::claim});
    auto result = f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(eventually([&] { return f.log.contains("store failure") && f.store.refused() >= 2; }));
    CHECK(f.receiver.count() == 0);
    CHECK(f.real.deliveries_of_event(result.event_uuid).at(0).state == DeliveryState::pending);

    f.store.heal();
    REQUIRE(eventually([&] { return f.delivered(result.event_uuid); }));
    CHECK(f.receiver.count() == 1);
    // The dispatcher is still running: a new event goes out too.
    auto next = f.dispatcher->deliver_data(json::object{{"id", 2}}, "package-created", {});
    REQUIRE(eventually([&] { return f.delivered(next.event_uuid); }));
}

TEST_CASE("outcomes that cannot be recorded wait in memory and are recorded once the store works", "[faults]")
{
    FaultFixture f;
    f.store.fail({StoreOp::record});
    auto result = f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(f.receiver.wait_for(1));
    REQUIRE(eventually([&] { return f.log.contains("store failure") && f.store.refused() >= 2; }));
    // Not recorded yet: the delivery is still pending in the store, so a crash now would only
    // send it again.
    CHECK(f.real.deliveries_of_event(result.event_uuid).at(0).state == DeliveryState::pending);

    f.store.heal();
    REQUIRE(eventually([&] { return f.delivered(result.event_uuid); }));
    CHECK(f.receiver.count() == 1);
    CHECK(f.real.list_outbox({}).items.empty());
}

TEST_CASE("a claim that completes during a store pause does not cancel the pause's end", "[faults]")
{
    // The receiver holds its answer until the test has a claim waiting in the store.
    std::promise<void> answer;
    std::shared_future<void> answered = answer.get_future().share();
    auto options = quick_dispatcher_options();
    options.store_threads = 2; // The held claim on one, the failing record on the other.
    options.idle_poll = 50ms;  // Shorter than the 100 ms pause: the claim's wake-up comes first.
    FaultFixture f({}, options, [answered](const ReceivedRequest&) {
        answered.wait_for(10s);
        return Reply{};
    });
    auto result = f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(f.receiver.wait_for(1));

    // A claim runs while the outcome's record fails and the pause begins...
    f.store.hold_claims();
    f.store.fail({StoreOp::record});
    f.dispatcher->wake();
    REQUIRE(eventually([&] { return f.store.claims_held() >= 1; }));
    answer.set_value();
    REQUIRE(eventually([&] { return f.log.contains("store failure"); }));
    // ...and completes during it, with nothing claimed and nothing left in flight.
    f.store.heal();
    f.store.release_claims();

    // The pause still ends: the outcome is recorded and the dispatcher claims again.
    REQUIRE(eventually([&] { return f.delivered(result.event_uuid); }));
    auto next = f.dispatcher->deliver_data(json::object{{"id", 2}}, "package-created", {});
    REQUIRE(eventually([&] { return f.delivered(next.event_uuid); }));
}

TEST_CASE("a database locked by another connection fails deliver_event cleanly until it is released",
          "[faults]")
{
    FaultFixture f(SqliteOptions{.busy_timeout = 100ms});
    sqlite3* other = nullptr;
    REQUIRE(sqlite3_open(f.path.c_str(), &other) == SQLITE_OK);
    // The workers may hold a short transaction right now: wait for it rather than fail.
    sqlite3_busy_timeout(other, 10000);
    REQUIRE(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);

    try {
        f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
        FAIL("deliver_event succeeded on a locked database");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("locked") != std::string::npos);
    }
    // The workers' claims hit the lock too; they log and back off.
    REQUIRE(eventually([&] { return f.log.contains("store failure"); }));

    REQUIRE(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(other);
    CHECK(f.nothing_stored());
    auto result = f.dispatcher->deliver_data(json::object{{"id", 2}}, "package-created", {});
    REQUIRE(eventually([&] { return f.delivered(result.event_uuid); }));
    CHECK(f.receiver.count() == 1);
}
