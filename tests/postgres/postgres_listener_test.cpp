// The listening connection: a committed event wakes it, and it comes back after the server
// restarts, waking its owner once more since notifications were lost meanwhile.

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_listener.hpp"
#include "postgres/postgres_schema.hpp"

#include "catch.hpp"
#include "postgres_server.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::detail;
using namespace std::chrono_literals;

namespace {

/// An io_context run by a thread of its own for the test's lifetime.
struct Runner {
    boost::asio::io_context ioc;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{ioc.get_executor()};
    std::thread thread{[this] { ioc.run(); }};
    ~Runner()
    {
        work.reset();
        ioc.stop();
        thread.join();
    }
};

template <class Predicate>
bool eventually(Predicate predicate, std::chrono::milliseconds limit = 15s)
{
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!predicate()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

struct Log {
    std::mutex mutex;
    std::vector<std::string> lines;
    LogHandler handler()
    {
        return [this](LogLevel, std::string_view line) {
            std::lock_guard lock(mutex);
            lines.emplace_back(line);
        };
    }
    std::string all()
    {
        std::lock_guard lock(mutex);
        std::string out;
        for (const auto& line : lines)
            out += line + "\n";
        return out;
    }
};

} // namespace

TEST_CASE("a committed event wakes a listening connection, a rolled back one does not", "[postgres][listener]")
{
    const std::string schema = whisperer::test::unique_postgres_schema();
    PostgresConnection host{whisperer::test::postgres_uri()};
    open_postgres_schema(host.get(), schema);

    Runner runner;
    std::atomic<int> wakes{0};
    PostgresListener listener{runner.ioc.get_executor(),
                              {.conninfo = whisperer::test::postgres_uri(), .channel = schema + ".due",
                               .on_wake = [&] { ++wakes; }}};
    listener.start();
    REQUIRE(eventually([&] { return listener.listening() && wakes == 1; }));

    auto session = host.session();
    const std::string deliver = "SELECT " + quote_postgres_identifier(schema) + ".deliver_event('order.created', '{}')";
    REQUIRE_THROWS(session.transaction([&] {
        session.query(deliver);
        throw std::runtime_error("the host changed its mind");
    }));
    session.query(deliver);
    REQUIRE(eventually([&] { return wakes >= 2; }));
    std::this_thread::sleep_for(200ms);
    CHECK(wakes == 2); // The rolled back transaction sent nothing.

    listener.stop();
    session.query(deliver);
    std::this_thread::sleep_for(200ms);
    CHECK(wakes == 2);
    CHECK_FALSE(listener.listening());
}

TEST_CASE("a listening connection comes back after the server restarts and wakes its owner", "[postgres][listener]")
{
    whisperer::test::PrivatePostgresServer server;
    PostgresConnection setup{server.uri()};
    open_postgres_schema(setup.get(), "whisperer");

    Runner runner;
    Log log;
    std::atomic<int> wakes{0};
    PostgresListener listener{runner.ioc.get_executor(),
                              {.conninfo = server.uri(), .channel = "whisperer.due", .on_wake = [&] { ++wakes; },
                               .log = log.handler(), .first_retry = 50ms, .last_retry = 500ms}};
    listener.start();
    REQUIRE(eventually([&] { return listener.listening() && wakes == 1; }));

    server.restart();
    // Back, and the owner is told to look for work it was not notified of.
    REQUIRE(eventually([&] { return listener.listening() && wakes >= 2; }));
    const int after_restart = wakes;
    PostgresConnection host{server.uri()};
    host.session().query("SELECT whisperer.deliver_event('order.created', '{}')");
    REQUIRE(eventually([&] { return wakes > after_restart; }));

    const std::string lines = log.all();
    INFO(lines);
    CHECK(lines.find("connecting again") != std::string::npos);
    CHECK(lines.find("listening again") != std::string::npos);
    CHECK(lines.find(server.uri().substr(server.uri().find(':', 13) + 1, 8)) == std::string::npos); // no password
}
