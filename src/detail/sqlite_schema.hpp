// The SQLite schema of SqliteStore as a list of forward migrations.
#ifndef WHISPERER_DETAIL_SQLITE_SCHEMA_HPP
#define WHISPERER_DETAIL_SQLITE_SCHEMA_HPP

#include <whisperer/error.hpp>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Transaction.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>

namespace whisperer::detail {

/// `PRAGMA application_id` of every whisperer database ("WHSP"): tells ours from a foreign file.
constexpr std::int32_t sqlite_application_id = 0x57485350;

/// The statements that take a database from one schema version to the next.
///
/// Migration i (0-based) takes `PRAGMA user_version` i to i + 1; it runs inside the transaction
/// that also writes the new user_version. Never edit a released migration: append a new one.
using SqliteMigration = std::span<const char* const>;

/// Version 1. Times are INTEGER microseconds since the Unix epoch (system_clock); JSON objects are
/// serialised text. An event's body is stored once in `events`, however many hooks receive it.
inline constexpr const char* sqlite_schema_v1[] = {
    R"sql(CREATE TABLE hooks (
        id                     INTEGER PRIMARY KEY,
        owner                  TEXT NOT NULL,
        target_url             TEXT NOT NULL,
        event_type             TEXT NOT NULL,
        is_active              INTEGER NOT NULL,
        secret_key             TEXT NOT NULL,
        callback               TEXT NOT NULL,
        retry_countdown_config TEXT NOT NULL,
        additional_headers     TEXT NOT NULL,
        config                 TEXT NOT NULL,
        created                INTEGER NOT NULL,
        modified               INTEGER NOT NULL,
        disabled_reason        TEXT NOT NULL,
        disabled_at            INTEGER
    ))sql",
    // Soft-deleted hooks do not count, so a deleted subscription can be created again.
    R"sql(CREATE UNIQUE INDEX hooks_active_subscription ON hooks (owner, target_url, event_type)
          WHERE is_active = 1)sql",
    R"sql(CREATE INDEX hooks_active_event_type ON hooks (event_type) WHERE is_active = 1)sql",
    R"sql(CREATE INDEX hooks_owner ON hooks (owner, id))sql",

    R"sql(CREATE TABLE events (
        id              INTEGER PRIMARY KEY,
        uuid            TEXT NOT NULL UNIQUE,
        event_type      TEXT NOT NULL,
        body            TEXT NOT NULL,
        object_ref      TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        created         INTEGER NOT NULL
    ))sql",
    R"sql(CREATE INDEX events_created ON events (created))sql",

    R"sql(CREATE TABLE deliveries (
        id               INTEGER PRIMARY KEY,
        event_id         INTEGER NOT NULL REFERENCES events (id),
        hook_id          INTEGER NOT NULL REFERENCES hooks (id),
        state            TEXT NOT NULL,
        attempt_count    INTEGER NOT NULL,
        response_status  INTEGER NOT NULL,
        response_body    TEXT NOT NULL,
        response_time_us INTEGER NOT NULL,
        last_failure     TEXT NOT NULL,
        last_error       TEXT NOT NULL,
        next_attempt_at  INTEGER,
        created          INTEGER NOT NULL,
        modified         INTEGER NOT NULL
    ))sql",
    R"sql(CREATE INDEX deliveries_event ON deliveries (event_id))sql",
    R"sql(CREATE INDEX deliveries_hook ON deliveries (hook_id, state, created))sql",
    R"sql(CREATE INDEX deliveries_finished ON deliveries (created) WHERE state <> 'pending')sql",

    R"sql(CREATE TABLE attempts (
        id              INTEGER PRIMARY KEY,
        delivery_id     INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
        number          INTEGER NOT NULL,
        started_at      INTEGER NOT NULL,
        duration_us     INTEGER NOT NULL,
        response_status INTEGER NOT NULL,
        response_body   TEXT NOT NULL,
        failure         TEXT NOT NULL,
        error           TEXT NOT NULL,
        trigger         TEXT NOT NULL
    ))sql",
    R"sql(CREATE INDEX attempts_delivery ON attempts (delivery_id, id))sql",

    // One row per delivery waiting for an attempt; a worker's lease hides it from the others.
    R"sql(CREATE TABLE outbox (
        delivery_id   INTEGER PRIMARY KEY REFERENCES deliveries (id) ON DELETE CASCADE,
        hook_id       INTEGER NOT NULL,
        due_at        INTEGER NOT NULL,
        lease_owner   TEXT,
        lease_expires INTEGER
    ))sql",
    // Both indexes cover what claim_due and next_due filter on, so neither reads the table to skip rows.
    R"sql(CREATE INDEX outbox_due ON outbox (due_at, lease_expires))sql",
    R"sql(CREATE INDEX outbox_leased ON outbox (lease_expires, due_at)
          WHERE lease_expires IS NOT NULL)sql",

    R"sql(CREATE TABLE tokens (
        key_sha256 TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        admin      INTEGER NOT NULL,
        publisher  INTEGER NOT NULL,
        created    INTEGER NOT NULL
    ) WITHOUT ROWID)sql",
};

/// Version 2: endpoint health. `failing_since` is the start of the hook's current run of failed
/// attempts (NULL since its last success), `failed_attempts` how many attempts that run holds.
inline constexpr const char* sqlite_schema_v2[] = {
    R"sql(ALTER TABLE hooks ADD COLUMN failing_since INTEGER)sql",
    R"sql(ALTER TABLE hooks ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0)sql",
};

/// Version 3: a counter that every change to who receives what moves, so that a process can
/// cache each event type's subscribers and still see another process's new hook at once.
inline constexpr const char* sqlite_schema_v3[] = {
    R"sql(CREATE TABLE hooks_generation (n INTEGER NOT NULL))sql",
    R"sql(INSERT INTO hooks_generation (n) VALUES (0))sql",
    R"sql(CREATE TRIGGER hooks_inserted AFTER INSERT ON hooks
          BEGIN UPDATE hooks_generation SET n = n + 1; END)sql",
    R"sql(CREATE TRIGGER hooks_deleted AFTER DELETE ON hooks
          BEGIN UPDATE hooks_generation SET n = n + 1; END)sql",
    // Health columns change on every failed attempt; they do not change who receives what.
    R"sql(CREATE TRIGGER hooks_resubscribed AFTER UPDATE OF is_active, event_type, config ON hooks
          BEGIN UPDATE hooks_generation SET n = n + 1; END)sql",
};

/// Version 4: secrets. `retired_secrets` holds the secrets a rotation replaced that still sign,
/// as a JSON array `[{"secret": stored text, "expires": micros}]`, newest first. `master_key`
/// holds at most one row: the check value of the key that encrypts the secrets, once one is used.
inline constexpr const char* sqlite_schema_v4[] = {
    R"sql(ALTER TABLE hooks ADD COLUMN retired_secrets TEXT NOT NULL DEFAULT '[]')sql",
    R"sql(CREATE TABLE master_key (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        key_check TEXT NOT NULL,
        created   INTEGER NOT NULL
    ))sql",
};

/// Version 5: claims per hook. `claim_due` visits the hooks that have outbox rows and takes each
/// one's due rows through this index, so a hook it takes nothing from costs one seek, however
/// many rows it has waiting. It replaces `outbox_due`, which served claims in due order.
inline constexpr const char* sqlite_schema_v5[] = {
    R"sql(CREATE INDEX IF NOT EXISTS outbox_hook_due ON outbox (hook_id, due_at, lease_expires))sql",
    R"sql(DROP INDEX IF EXISTS outbox_due)sql",
};

/// Version 6: a delivery's outcome leaves the hook's index alone. `deliveries_hook` keyed the
/// state, so every recorded outcome moved the delivery's entry from one state to another, in
/// the part of the index of its hook: with many hooks, two more pages written per delivery.
/// Listings by hook read `deliveries_hook_id` in id order; re-queueing a hook's failed
/// deliveries reads the partial `deliveries_hook_failed`, which only failures touch.
inline constexpr const char* sqlite_schema_v6[] = {
    R"sql(CREATE INDEX IF NOT EXISTS deliveries_hook_id ON deliveries (hook_id))sql",
    R"sql(CREATE INDEX IF NOT EXISTS deliveries_hook_failed ON deliveries (hook_id, created)
          WHERE state = 'failed')sql",
    R"sql(DROP INDEX IF EXISTS deliveries_hook)sql",
};

/// Version 7: API tokens with a lifecycle. Each token gets an id that lists and revocations
/// name it by (AUTOINCREMENT: the id of a revoked token is never given to another), an
/// optional expiry and the time it was last used. The table is rebuilt, since a WITHOUT ROWID
/// table cannot take an id column; existing tokens keep working, numbered in creation order.
inline constexpr const char* sqlite_schema_v7[] = {
    R"sql(CREATE TABLE tokens_v7 (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        key_sha256 TEXT NOT NULL UNIQUE,
        owner      TEXT NOT NULL,
        admin      INTEGER NOT NULL,
        publisher  INTEGER NOT NULL,
        created    INTEGER NOT NULL,
        expires    INTEGER,
        last_used  INTEGER
    ))sql",
    R"sql(INSERT INTO tokens_v7 (key_sha256, owner, admin, publisher, created)
          SELECT key_sha256, owner, admin, publisher, created FROM tokens ORDER BY created, key_sha256)sql",
    R"sql(DROP TABLE tokens)sql",
    R"sql(ALTER TABLE tokens_v7 RENAME TO tokens)sql",
};

/// Version 8: sealed values bound to their hook. Values sealed from now on are `enc:v2:`, with the
/// hook id and the field as associated data; `config.auth.password` and header values are sealed
/// too. `sealing` says which form the key row vouches for: 1 while `enc:v1:` values (sealed
/// before, unbound) may remain, 2 once the store that opens the file with its key has sealed
/// them again (in one transaction with the change to 2).
inline constexpr const char* sqlite_schema_v8[] = {
    R"sql(ALTER TABLE master_key ADD COLUMN sealing INTEGER NOT NULL DEFAULT 1)sql",
};

/// Every migration in order; the schema version is their count.
inline constexpr std::array<SqliteMigration, 8> sqlite_migrations{
    SqliteMigration{sqlite_schema_v1},
    SqliteMigration{sqlite_schema_v2},
    SqliteMigration{sqlite_schema_v3},
    SqliteMigration{sqlite_schema_v4},
    SqliteMigration{sqlite_schema_v5},
    SqliteMigration{sqlite_schema_v6},
    SqliteMigration{sqlite_schema_v7},
    SqliteMigration{sqlite_schema_v8},
};

/// Creates whisperer's schema in `db` or migrates it forward to the newest version.
///
/// Throws `StoreError` without writing anything when the file is not a SQLite database, belongs
/// to another application, or has a newer schema than this build knows. Leaves `db` in WAL mode.
/// `path` only names the file in messages.
inline void open_schema(SQLite::Database& db, const std::string& path)
{
    const int target = static_cast<int>(sqlite_migrations.size());
    // Only reads: a refused file must be left exactly as it was.
    auto checked_version = [&] {
        const int application_id = db.execAndGet("PRAGMA application_id").getInt();
        const int version = db.execAndGet("PRAGMA user_version").getInt();
        if (application_id == 0 && version == 0) {
            if (db.execAndGet("SELECT count(*) FROM sqlite_schema").getInt() != 0)
                throw StoreError("SQLite store: '" + path +
                                 "' holds another application's tables and no whisperer schema; "
                                 "refusing to use it");
            return version;
        }
        if (application_id != sqlite_application_id)
            throw StoreError("SQLite store: '" + path + "' is not a whisperer database (application_id " +
                             std::to_string(application_id) + ", expected " +
                             std::to_string(sqlite_application_id) + ")");
        if (version > target)
            throw StoreError("SQLite store: '" + path + "' has schema version " + std::to_string(version) +
                             ", newer than version " + std::to_string(target) +
                             " that this whisperer knows; upgrade whisperer to open it");
        return version;
    };

    try {
        const bool current = checked_version() == target;
        db.exec("PRAGMA journal_mode = WAL");
        if (current)
            return;
        // Another process may be migrating the same file: decide again under the write lock.
        SQLite::Transaction transaction{db, SQLite::TransactionBehavior::IMMEDIATE};
        for (int version = checked_version(); version < target; ++version)
            for (const char* step : sqlite_migrations[static_cast<std::size_t>(version)])
                db.exec(step);
        db.exec("PRAGMA application_id = " + std::to_string(sqlite_application_id));
        db.exec("PRAGMA user_version = " + std::to_string(target));
        transaction.commit();
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot use '" + path + "' as a whisperer database: " + e.what());
    }
}

} // namespace whisperer::detail

#endif
