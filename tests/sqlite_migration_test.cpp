// SqliteStore opens files of older schema versions and migrates them forward.

#include <whisperer/sqlite_store.hpp>

#include "catch.hpp"
#include "sqlite_file.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>

#include <string>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

int user_version(const std::string& path)
{
    return static_cast<int>(query_int(path, "PRAGMA user_version").value_or(-1));
}

bool index_exists(const std::string& path, const std::string& name)
{
    return query_int(path, "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?", name).has_value();
}

} // namespace

TEST_CASE("a version 1 database file is migrated to endpoint health and keeps its hooks", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t hook_id = 0;
    std::int64_t delivery_id = 0;
    {
        SqliteStore store{path};
        hook_id = store.create_hook(sample_hook("alice", "https://a.example/")).id;
        NewEvent event = sample_event();
        delivery_id = store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0);
    }
    // What version 1 wrote: the hooks table without the health columns.
    // (and without what later versions added)
    exec_on_file(path, "ALTER TABLE hooks DROP COLUMN retired_secrets; DROP TABLE master_key;"
                       "DROP TRIGGER hooks_inserted; DROP TRIGGER hooks_deleted;"
                       "DROP TRIGGER hooks_resubscribed; DROP TABLE hooks_generation;"
                       "ALTER TABLE hooks DROP COLUMN failed_attempts;"
                       "ALTER TABLE hooks DROP COLUMN failing_since;"
                       "PRAGMA user_version = 1;");
    REQUIRE(user_version(path) == 1);

    SqliteStore store{path};
    CHECK(user_version(path) == SqliteStore::schema_version());
    CHECK(SqliteStore::schema_version() >= 2);
    const auto hook = store.find_hook(hook_id);
    REQUIRE(hook);
    CHECK(hook->owner == "alice");
    CHECK_FALSE(hook->failing_since);
    CHECK(hook->failed_attempts == 0);
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);
    store.record_attempts(std::vector{attempt_report(delivery_id, "w", 1, AttemptVerdict::retry, 500, t0 + 1h)});
    CHECK(store.find_hook(hook_id)->failed_attempts == 1);
}

TEST_CASE("a version 3 database file is migrated to secret rotation and keeps its secrets", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t hook_id = 0;
    {
        SqliteStore store{path};
        hook_id = store.create_hook(sample_hook("alice", "https://a.example/")).id;
    }
    // What version 3 wrote: no retired secrets, no master key table.
    exec_on_file(path, "ALTER TABLE hooks DROP COLUMN retired_secrets; DROP TABLE master_key;"
                       "PRAGMA user_version = 3;");
    REQUIRE(user_version(path) == 3);

    SqliteStore store{path};
    CHECK(user_version(path) == SqliteStore::schema_version());
    CHECK(SqliteStore::schema_version() >= 4);
    const auto hook = store.find_hook(hook_id);
    REQUIRE(hook);
    CHECK(hook->secret_key == "secret-of-alice");
    CHECK(hook->retired_secrets.empty());
    SecretRotation rotation;
    rotation.new_secret = "rotated";
    CHECK(store.rotate_secret(hook_id, rotation).retired_secrets.size() == 1);
    CHECK(store.find_hook(hook_id)->retired_secrets.at(0).secret == "secret-of-alice");
}

TEST_CASE("a version 4 database file is migrated to the per-hook outbox index and claims its rows",
          "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t delivery_id = 0;
    {
        SqliteStore store{path};
        store.create_hook(sample_hook("alice", "https://a.example/"));
        NewEvent event = sample_event();
        delivery_id = store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0);
    }
    // What version 4 had: the outbox indexed by due time only.
    exec_on_file(path, "DROP INDEX outbox_hook_due;"
                       "CREATE INDEX outbox_due ON outbox (due_at, lease_expires);"
                       "ALTER TABLE master_key DROP COLUMN sealing;"
                       "PRAGMA user_version = 4;");

    SqliteStore store{path};
    CHECK(user_version(path) == SqliteStore::schema_version());
    CHECK(SqliteStore::schema_version() >= 5);
    CHECK(index_exists(path, "outbox_hook_due"));
    CHECK_FALSE(index_exists(path, "outbox_due"));
    const auto claimed = store.claim_due(claim_by("w", t0));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].delivery_id == delivery_id);
}

TEST_CASE("a version 5 database file is migrated to hook indexes without the state, and its failed "
          "deliveries are still found",
          "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t hook_id = 0;
    std::vector<std::int64_t> delivery_ids;
    {
        SqliteStore store{path};
        hook_id = store.create_hook(sample_hook("alice", "https://a.example/")).id;
        std::vector<NewEvent> events{sample_event(), sample_event()};
        for (const EnqueuedEvent& enqueued : store.enqueue_events(events))
            delivery_ids.push_back(enqueued.delivery_ids.at(0));
        std::vector<AttemptRecord> failures;
        for (const ClaimedDelivery& claimed : store.claim_due(claim_by("w", t0)))
            failures.push_back(attempt_report(claimed.delivery_id, "w", 1, AttemptVerdict::failed, 500));
        REQUIRE(failures.size() == 2);
        store.record_attempts(failures);
    }
    // What version 5 had: one index of a hook's deliveries by state and creation.
    exec_on_file(path, "DROP INDEX deliveries_hook_id; DROP INDEX deliveries_hook_failed;"
                       "CREATE INDEX deliveries_hook ON deliveries (hook_id, state, created);"
                       "ALTER TABLE master_key DROP COLUMN sealing;"
                       "PRAGMA user_version = 5;");

    SqliteStore store{path};
    CHECK(user_version(path) == SqliteStore::schema_version());
    CHECK(SqliteStore::schema_version() >= 6);
    CHECK(index_exists(path, "deliveries_hook_id"));
    CHECK(index_exists(path, "deliveries_hook_failed"));
    CHECK_FALSE(index_exists(path, "deliveries_hook"));
    DeliveryQuery by_hook;
    by_hook.hook_id = hook_id;
    CHECK(store.list_deliveries(by_hook).items.size() == 2);
    CHECK(store.requeue_failed(hook_id, t0 - 1h, t0 + 1h, t0) == 2);
    CHECK(store.find_delivery(delivery_ids[0])->state == DeliveryState::pending);
    CHECK(store.requeue_failed(hook_id, t0 - 1h, t0 + 1h, t0) == 0);
}

TEST_CASE("a version 6 database file is migrated to tokens with ids and expiries, and its tokens still "
          "authenticate",
          "[sqlite][api_token]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    // Version 6 had no ids: tokens were keyed by their hash alone.
    {
        SqliteStore store{path};
    }
    exec_on_file(path, "DROP TABLE tokens;"
                       "CREATE TABLE tokens (key_sha256 TEXT PRIMARY KEY, owner TEXT NOT NULL, admin INTEGER NOT NULL,"
                       " publisher INTEGER NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;"
                       "INSERT INTO tokens VALUES ('" + std::string(64, 'b') + "', 'bob', 0, 1, 2000000);"
                       "INSERT INTO tokens VALUES ('" + std::string(64, 'a') + "', 'root', 1, 0, 1000000);"
                       "ALTER TABLE master_key DROP COLUMN sealing;"
                       "PRAGMA user_version = 6;");
    REQUIRE(user_version(path) == 6);

    SqliteStore store{path};
    CHECK(user_version(path) == SqliteStore::schema_version());
    CHECK(SqliteStore::schema_version() >= 7);
    const auto tokens = store.list_tokens();
    REQUIRE(tokens.size() == 2);
    // Numbered in creation order.
    CHECK(tokens[0].owner == "root");
    CHECK(tokens[0].admin);
    CHECK(tokens[1].owner == "bob");
    CHECK(tokens[1].publisher);
    CHECK(tokens[0].id < tokens[1].id);
    CHECK_FALSE(tokens[1].expires);
    CHECK_FALSE(tokens[1].last_used);
    const auto bob = store.find_token(std::string(64, 'b'));
    REQUIRE(bob);
    CHECK(bob->id == tokens[1].id);
    CHECK(bob->created == TimePoint{std::chrono::seconds(2)});
    CHECK(store.revoke_token(bob->id));
    CHECK(store.add_token(std::string(64, 'c'), ApiToken{.owner = "carol"}) > bob->id);
}
