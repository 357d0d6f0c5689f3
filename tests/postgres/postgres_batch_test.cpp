// Batches: many statements in one round trip, all or nothing.

#include "postgres/postgres_batch.hpp"
#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include <whisperer/error.hpp>

#include "catch.hpp"
#include "postgres_server.hpp"

#include <string>

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
