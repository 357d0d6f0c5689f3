// The PostgreSQL schema: created once by racing processes, refused when foreign or newer, and its
// SQL deliver_event committed and rolled back with the host's own transaction.

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include <whisperer/envelope.hpp>
#include <whisperer/error.hpp>

#include "catch.hpp"
#include "postgres_server.hpp"

#include <boost/json.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace whisperer::detail;
using whisperer::test::postgres_uri;
using whisperer::test::unique_postgres_schema;

namespace {

std::int64_t count_of(PostgresSession& session, const std::string& sql)
{
    return session.query(sql).integer(0, 0);
}

} // namespace

TEST_CASE("several processes opening a new database at once create the schema once", "[postgres][schema]")
{
    const std::string schema = unique_postgres_schema();
    constexpr int openers = 6;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < openers; ++i)
        threads.emplace_back([&] {
            try {
                PostgresConnection conn{postgres_uri()};
                open_postgres_schema(conn.get(), schema);
            } catch (const std::exception& e) {
                UNSCOPED_INFO(e.what());
                ++failures;
            }
        });
    for (auto& t : threads)
        t.join();
    CHECK(failures == 0);

    PostgresConnection conn{postgres_uri()};
    auto session = conn.session();
    const std::string quoted = quote_postgres_identifier(schema);
    CHECK(count_of(session, "SELECT version FROM " + quoted + ".schema_version") ==
          static_cast<std::int64_t>(postgres_migrations().size()));
    CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".schema_version") == 1);
    CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".generations") == 2);
    // Opening a current schema again changes nothing.
    open_postgres_schema(conn.get(), schema);
    CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".generations") == 2);
}

TEST_CASE("a schema of version 1 is migrated forward on open and keeps its rows", "[postgres][schema]")
{
    const std::string schema = unique_postgres_schema();
    const std::string quoted = quote_postgres_identifier(schema);
    PostgresConnection conn{postgres_uri()};
    auto session = conn.session();
    // What a whisperer that knew version 1 only left behind, with a hook in it.
    session.query("CREATE SCHEMA " + quoted);
    session.query("CREATE TABLE " + quoted + ".schema_version (version integer NOT NULL)");
    session.query("INSERT INTO " + quoted + ".schema_version (version) VALUES (1)");
    for (const char* step : postgres_migrations().front())
        session.query(in_postgres_schema(step, quoted));
    session.query("INSERT INTO " + quoted + ".hooks (owner, target_url, event_type, is_active, secret_key, "
                  "callback, retry_countdown_config, additional_headers, config, created, modified, "
                  "disabled_reason) VALUES ('alice', 'https://a.example/', 'package-created', true, 'secret', '', "
                  "'{}', '{}', '{}', 0, 0, '')");

    open_postgres_schema(conn.get(), schema);
    CHECK(count_of(session, "SELECT version FROM " + quoted + ".schema_version") ==
          static_cast<std::int64_t>(postgres_migrations().size()));
    CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".hooks") == 1);
    // Version 2's trigger function: silent in a transaction that notifies after its commit.
    session.query("LISTEN " + quote_postgres_identifier(schema + ".due"));
    session.transaction([&] {
        session.query("SET LOCAL whisperer.notify_after_commit = on");
        session.query("SELECT " + quoted + ".deliver_event('package-created', '{}'::json)");
    });
    session.query("SELECT " + quoted + ".deliver_event('package-created', '{}'::json)");
    PQconsumeInput(conn.get());
    int notified = 0;
    while (PGnotify* n = PQnotifies(conn.get())) {
        ++notified;
        PQfreemem(n);
    }
    CHECK(notified == 1);
}

TEST_CASE("a schema with a newer version or another application's tables is refused unchanged", "[postgres][schema]")
{
    PostgresConnection conn{postgres_uri()};
    auto session = conn.session();

    SECTION("newer")
    {
        const std::string schema = unique_postgres_schema();
        open_postgres_schema(conn.get(), schema);
        const std::string quoted = quote_postgres_identifier(schema);
        session.query("UPDATE " + quoted + ".schema_version SET version = 99");
        REQUIRE_THROWS_WITH(open_postgres_schema(conn.get(), schema),
                            Catch::Contains("version 99") && Catch::Contains("upgrade whisperer"));
        CHECK(count_of(session, "SELECT version FROM " + quoted + ".schema_version") == 99);
    }
    SECTION("foreign")
    {
        const std::string schema = unique_postgres_schema();
        const std::string quoted = quote_postgres_identifier(schema);
        session.query("CREATE SCHEMA " + quoted);
        session.query("CREATE TABLE " + quoted + ".orders (id int)");
        REQUIRE_THROWS_AS(open_postgres_schema(conn.get(), schema), StoreError);
        CHECK(count_of(session, "SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema + "'") == 1);
    }
}

TEST_CASE("the SQL deliver_event commits and rolls back with the host's transaction", "[postgres][schema]")
{
    const std::string schema = unique_postgres_schema();
    PostgresConnection conn{postgres_uri()};
    open_postgres_schema(conn.get(), schema);
    auto session = conn.session();
    const std::string quoted = quote_postgres_identifier(schema);
    session.query("CREATE TABLE " + quoted + ".host_orders (id int PRIMARY KEY)");
    const std::string deliver = "SELECT " + quoted + ".deliver_event($1, $2::json)";

    SECTION("committed: the event, its body as C++ builds it, and a row waiting for fan-out")
    {
        // Key order, spacing and a non-ASCII character as the host wrote them.
        const std::string data = R"({"z": 1, "a": "caf\u00e9 \"x\"",  "n": [1,2]})";
        std::string uuid;
        session.transaction([&] {
            session.query("INSERT INTO " + quoted + ".host_orders VALUES (1)");
            uuid = std::string(session.query(deliver, {"order.created", data}).text(0, 0));
        });
        REQUIRE(is_event_uuid(uuid));
        CHECK(uuid[12] == '7');
        auto row = session.query("SELECT body, event_type FROM " + quoted + ".events WHERE uuid = $1", {uuid});
        REQUIRE(row.rows() == 1);
        CHECK(row.text(0, 0) ==
              R"({"event":{"type":"order.created","uuid":")" + uuid + R"("},"data":)" + data + "}");
        // The envelope the C++ side builds, for the same data, has the same shape.
        auto envelope = make_envelope("order.created", uuid, boost::json::parse(data));
        CHECK(boost::json::parse(row.text(0, 0)) == envelope);
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".event_inbox") == 1);
    }
    SECTION("rolled back: neither the host's row nor the event")
    {
        REQUIRE_THROWS(session.transaction([&] {
            session.query("INSERT INTO " + quoted + ".host_orders VALUES (2)");
            session.query(deliver, {"order.created", R"({"id": 2})"});
            session.query("INSERT INTO " + quoted + ".host_orders VALUES (2)"); // duplicate key
        }));
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".host_orders") == 0);
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".events") == 0);
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".event_inbox") == 0);
    }
    SECTION("an idempotency key returns the first event's uuid and creates nothing more")
    {
        const std::string keyed = "SELECT " + quoted + ".deliver_event($1, $2::json, $3)";
        const std::string first(session.query(keyed, {"order.created", "{}", "key-1"}).text(0, 0));
        const std::string second(session.query(keyed, {"order.created", "{}", "key-1"}).text(0, 0));
        CHECK(first == second);
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".events") == 1);
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".event_inbox") == 1);
    }
    SECTION("missing data or event type is refused")
    {
        CHECK_THROWS_WITH(session.query(deliver, {"order.created", std::nullopt}), Catch::Contains("needs data"));
        CHECK_THROWS_WITH(session.query(deliver, {"", "{}"}), Catch::Contains("needs an event type"));
        CHECK(count_of(session, "SELECT count(*) FROM " + quoted + ".events") == 0);
    }
}

TEST_CASE("a committed event notifies the dispatchers listening on the schema once per transaction",
          "[postgres][schema]")
{
    const std::string schema = unique_postgres_schema();
    PostgresConnection host{postgres_uri()};
    PostgresConnection listener{postgres_uri()};
    open_postgres_schema(host.get(), schema);
    const std::string quoted = quote_postgres_identifier(schema);
    const std::string channel = quote_postgres_identifier(schema + ".due");
    listener.session().query("LISTEN " + channel);

    auto session = host.session();
    session.transaction([&] {
        for (int i = 0; i < 5; ++i)
            session.query("SELECT " + quoted + ".deliver_event('order.created', '{}')");
    });
    // Notifications arrive with the next exchange on the listening connection.
    listener.session().query("SELECT 1");
    int notified = 0;
    while (PGnotify* n = PQnotifies(listener.get())) {
        CHECK(std::string(n->relname) == schema + ".due");
        ++notified;
        PQfreemem(n);
    }
    CHECK(notified == 1);
}

TEST_CASE("a connection string never shows its password", "[postgres]")
{
    CHECK(redact_postgres_conninfo("postgresql://app:s3cret@db.example:5432/app?sslmode=require") ==
          "postgresql://app:****@db.example:5432/app?sslmode=require");
    CHECK(redact_postgres_conninfo("postgres://app@db/app?password=s3cret&x=1") == "postgres://app@db/app?password=****&x=1");
    CHECK(redact_postgres_conninfo("host=db user=app password='s 3\\'cret' dbname=app") ==
          "host=db user=app password=**** dbname=app");
    CHECK(redact_postgres_conninfo("host=db password = s3cret") == "host=db password = ****");
    CHECK(redact_postgres_conninfo("postgresql:///app") == "postgresql:///app");

    const std::string uri = postgres_uri();
    const std::string wrong = uri.substr(0, uri.find(':', 13) + 1) + "not-the-password" + uri.substr(uri.find('@'));
    try {
        PostgresConnection conn{wrong};
        FAIL("a wrong password was accepted");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("not-the-password") == std::string::npos);
        CHECK(std::string(e.what()).find("password authentication failed") != std::string::npos);
    }
}
