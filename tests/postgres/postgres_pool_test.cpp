// The connection pool: bounded, waiting with a limit, and healing after the server restarts.

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_pool.hpp"

#include <whisperer/error.hpp>

#include "catch.hpp"
#include "postgres_server.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace whisperer::detail;
using namespace std::chrono_literals;

TEST_CASE("a pool never opens more connections than its size and shares them among threads", "[postgres][pool]")
{
    PostgresPool pool{whisperer::test::postgres_uri(), 3,
                      [](PGconn* conn) { PostgresSession{conn}.query("SET application_name = 'whisperer-pool-test'"); }};
    std::atomic<std::size_t> most{0};
    std::atomic<int> done{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 5; ++i) {
                auto lease = pool.acquire(30s);
                std::size_t open = pool.open_connections();
                std::size_t seen = most;
                while (open > seen && !most.compare_exchange_weak(seen, open)) {
                }
                auto name = PostgresSession{lease.get()}.query("SELECT current_setting('application_name'), pg_sleep(0.01)");
                if (name.text(0, 0) == "whisperer-pool-test")
                    ++done;
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(done == 40);
    CHECK(most <= 3);
    CHECK(pool.open_connections() <= 3);
}

TEST_CASE("a pool whose connections are all taken fails an acquire after its wait", "[postgres][pool]")
{
    PostgresPool pool{whisperer::test::postgres_uri(), 1};
    auto held = pool.acquire(10s);
    REQUIRE_THROWS_WITH(pool.acquire(50ms), Catch::Contains("no connection of the pool's 1 was free within 50 ms"));
}

TEST_CASE("a connection given back in a transaction or broken is closed, not reused", "[postgres][pool]")
{
    whisperer::test::PrivatePostgresServer server;
    PostgresPool pool{server.uri(), 2};
    {
        auto lease = pool.acquire(10s);
        PostgresSession{lease.get()}.query("BEGIN");
    }
    CHECK(pool.open_connections() == 0);

    std::string first_pid;
    {
        auto a = pool.acquire(10s);
        auto b = pool.acquire(10s);
        first_pid = std::string(PostgresSession{a.get()}.query("SELECT pg_backend_pid()").text(0, 0));
    }
    CHECK(pool.open_connections() == 2);

    server.restart();
    // Each idle connection learns of the restart with its next statement, which fails...
    int failed = 0;
    for (int i = 0; i < 2; ++i) {
        auto lease = pool.acquire(10s);
        try {
            PostgresSession{lease.get()}.query("SELECT 1");
        } catch (const StoreError&) {
            ++failed;
        }
    }
    CHECK(failed >= 1);
    // ...and the pool then opens fresh ones.
    for (int i = 0; i < 3; ++i) {
        auto lease = pool.acquire(10s);
        CHECK(PostgresSession{lease.get()}.query("SELECT 1").integer(0, 0) == 1);
        CHECK(std::string(PostgresSession{lease.get()}.query("SELECT pg_backend_pid()").text(0, 0)) != first_pid);
    }
    CHECK(pool.open_connections() <= 2);
}

TEST_CASE("a pool that cannot connect says why without the password", "[postgres][pool]")
{
    const std::string uri = whisperer::test::postgres_uri();
    const std::string wrong = uri.substr(0, uri.find(':', 13) + 1) + "wrong-password" + uri.substr(uri.find('@'));
    PostgresPool pool{wrong, 2};
    try {
        pool.acquire(10s);
        FAIL("connected with a wrong password");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("wrong-password") == std::string::npos);
        CHECK(std::string(e.what()).find("****") != std::string::npos);
    }
    CHECK(pool.open_connections() == 0);
}
