// Batches: many statements in one round trip, all or nothing.

#include "postgres/postgres_batch.hpp"
#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include <whisperer/error.hpp>

#include "catch.hpp"
#include "postgres_server.hpp"

#include <string>
#include <thread>

using namespace whisperer;
using namespace whisperer::detail;
using namespace std::chrono_literals;

namespace {

struct Table {
    PostgresConnection conn{whisperer::test::postgres_uri()};
    std::string name = quote_postgres_identifier(whisperer::test::unique_postgres_schema());
    Table()
    {
        conn.session().query("CREATE SCHEMA " + name);
        conn.session().query("CREATE TABLE " + name + ".items (id int PRIMARY KEY, label text)");
    }
    std::int64_t rows() { return conn.session().query("SELECT count(*) FROM " + name + ".items").integer(0, 0); }
};

} // namespace

TEST_CASE("a batch runs its statements in order in one transaction and returns each result", "[postgres][batch]")
{
    Table table;
    PostgresBatch batch;
    for (int i = 1; i <= 100; ++i)
        batch.add("INSERT INTO " + table.name + ".items VALUES ($1, $2)", {std::to_string(i), "item " + std::to_string(i)});
    batch.add("SELECT count(*), max(label) FROM " + table.name + ".items");
    batch.add("SELECT label FROM " + table.name + ".items WHERE id = $1", {std::nullopt});

    auto results = batch.run(table.conn.get(), 10s);
    REQUIRE(results.size() == 102);
    CHECK(results[100].integer(0, 0) == 100);
    CHECK(results[100].text(0, 1) == "item 99");
    CHECK(results[101].rows() == 0);
    CHECK(PQtransactionStatus(table.conn.get()) == PQTRANS_IDLE);
    CHECK(PQpipelineStatus(table.conn.get()) == PQ_PIPELINE_OFF);
    // The connection works as before.
    CHECK(table.rows() == 100);
}

TEST_CASE("a failed statement rolls the whole batch back and names itself", "[postgres][batch]")
{
    Table table;
    PostgresBatch batch;
    batch.add("INSERT INTO " + table.name + ".items VALUES (1, 'one')");
    batch.add("INSERT INTO " + table.name + ".items VALUES (1, 'again')");
    batch.add("INSERT INTO " + table.name + ".items VALUES (3, 'three')");
    REQUIRE_THROWS_WITH(batch.run(table.conn.get(), 10s),
                        Catch::Contains("statement 2 of a batch failed") && Catch::Contains("23505"));
    CHECK(PQtransactionStatus(table.conn.get()) == PQTRANS_IDLE);
    CHECK(table.rows() == 0);
}

TEST_CASE("a batch outside a transaction keeps the statements before the one that failed", "[postgres][batch]")
{
    Table table;
    PostgresBatch batch;
    batch.add("INSERT INTO " + table.name + ".items VALUES (1, 'one')");
    batch.add("SELECT 1/0");
    batch.add("INSERT INTO " + table.name + ".items VALUES (3, 'three')");
    REQUIRE_THROWS_WITH(batch.run(table.conn.get(), 10s, false), Catch::Contains("statement 2"));
    // Outside a transaction block, a pipeline up to its sync is one implicit transaction.
    CHECK(table.rows() == 0);
}

TEST_CASE("a batch larger than the socket buffers neither blocks nor loses results", "[postgres][batch]")
{
    Table table;
    PostgresBatch batch;
    const std::string filler(2000, 'x');
    for (int i = 1; i <= 3000; ++i)
        batch.add("INSERT INTO " + table.name + ".items VALUES ($1, $2) RETURNING label",
                  {std::to_string(i), filler});
    auto results = batch.run(table.conn.get(), 60s);
    REQUIRE(results.size() == 3000);
    CHECK(results[2999].text(0, 0) == filler);
    CHECK(table.rows() == 3000);
}

TEST_CASE("a batch committed without a flush turns synchronous_commit off for its transaction alone",
          "[postgres][batch]")
{
    Table table;
    PostgresBatch unflushed;
    unflushed.commit_without_flush();
    unflushed.add("INSERT INTO " + table.name + ".items VALUES (1, 'one')");
    unflushed.add("SHOW synchronous_commit");
    auto results = unflushed.run(table.conn.get(), 10s);
    REQUIRE(results.size() == 2); // The setting's own statement is not among the results.
    CHECK(results[1].text(0, 0) == "off");
    CHECK(table.rows() == 1);

    PostgresBatch failing;
    failing.commit_without_flush();
    failing.add("INSERT INTO " + table.name + ".items VALUES (2, 'two')");
    failing.add("INSERT INTO " + table.name + ".items VALUES (1, 'again')");
    REQUIRE_THROWS_WITH(failing.run(table.conn.get(), 10s), Catch::Contains("statement 2 of a batch failed"));
    CHECK(table.rows() == 1);

    PostgresBatch flushed;
    flushed.add("SHOW synchronous_commit");
    CHECK(flushed.run(table.conn.get(), 10s).front().text(0, 0) == "on");
}

TEST_CASE("a batch notifies after its commit, and not when it fails", "[postgres][batch]")
{
    Table table;
    PostgresConnection listener{whisperer::test::postgres_uri()};
    listener.session().query("LISTEN \"batch.test\"");
    auto notified = [&] {
        std::this_thread::sleep_for(100ms);
        PQconsumeInput(listener.get());
        int count = 0;
        while (PGnotify* n = PQnotifies(listener.get())) {
            count += std::string(n->relname) == "batch.test";
            PQfreemem(n);
        }
        return count;
    };

    PostgresBatch batch;
    batch.notify_after_commit("batch.test");
    batch.add("INSERT INTO " + table.name + ".items VALUES (1, 'one')");
    batch.add("SELECT current_setting('whisperer.notify_after_commit')"); // What the schema's triggers read.
    auto results = batch.run(table.conn.get(), 10s);
    REQUIRE(results.size() == 2);
    CHECK(results[1].text(0, 0) == "on");
    CHECK(notified() == 1);
    CHECK(PQtransactionStatus(table.conn.get()) == PQTRANS_IDLE);

    PostgresBatch failing;
    failing.notify_after_commit("batch.test");
    failing.add("INSERT INTO " + table.name + ".items VALUES (1, 'again')");
    CHECK_THROWS_WITH(failing.run(table.conn.get(), 10s), Catch::Contains("statement 1 of a batch failed"));
    CHECK(notified() == 0);
    CHECK(table.rows() == 1);
}
