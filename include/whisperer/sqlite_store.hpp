#ifndef WHISPERER_SQLITE_STORE_HPP
#define WHISPERER_SQLITE_STORE_HPP

#include <whisperer/master_key.hpp>
#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace whisperer {

/// How hard SQLite works to make a commit survive.
enum class SqliteDurability {
    normal, ///< WAL with synchronous=NORMAL: a committed event survives a crash of the process
            ///< (kill -9); the last commits may be lost on power loss. The default.
    full,   ///< WAL with synchronous=FULL: every commit is fsynced; survives power loss.
};

/// Options of `SqliteStore`.
struct SqliteOptions {
    SqliteDurability durability = SqliteDurability::normal;
    std::chrono::milliseconds busy_timeout{5000}; ///< Wait this long for another process's lock.
    std::size_t response_body_limit = 20 * 1024; ///< Stored response bodies are cut to this.
    /// Hooks one owner may have, active or not: an inactive (deleted or disabled) hook is kept
    /// and counts until retention (`delete_finished_before`) removes it with its deliveries, so
    /// that creating and deleting hooks in a loop cannot grow the file. Creating one more, or
    /// moving one to an owner at the limit, throws `TooManyHooks`; re-activating one's own hook
    /// needs no new place. Checked in the transaction that writes the hook, so concurrent
    /// writers (threads or processes) cannot pass it together. Zero means no limit.
    std::size_t max_hooks_per_owner = 1000;
    /// Attempts kept per delivery, at least 1: recording one more deletes the delivery's oldest.
    /// Each attempt keeps up to `response_body_limit` bytes of response, and manual retries can
    /// add attempts past `DispatcherOptions::max_attempts`; this bounds what one delivery holds
    /// (50 x 20 KiB = 1 MiB by default). The delivery's `attempt_count` still counts them all.
    std::size_t max_attempts_kept = 50;
    /// When set, hook secrets (current and retired), `config.auth.password` and every value of
    /// `additional_headers` are stored encrypted with it (AES-256-GCM, each bound to its hook and
    /// field), and those stored in clear before are encrypted when the store opens. Once a
    /// database has a key, opening it without that key fails; `SqliteStore::rekey` replaces it.
    std::optional<MasterKey> master_key;
    /// Page size of a new database file, in bytes: a power of two from 512 to 65536 (an
    /// existing file keeps its own). Every commit writes each page it changed to the log in
    /// full, and checkpoints flush that log to disk, so smaller pages write less per delivery
    /// and stall commits less during checkpoints. Measured (docs/PERFORMANCE.md), 1000 events/s:
    /// latency p99 0.7 ms with 1024, 4.6 ms with 2048, 45 ms with SQLite's 4096; bulk throughput
    /// about 15 % lower with 1024 than with 4096.
    std::size_t page_size = 1024;
};

/// What `SqliteStore::rekey` did (the same as `RekeyResult`, its older name).
using SqliteRekeyResult = RekeyResult;

/// The default store: one SQLite file in WAL mode (or `":memory:"` for tests).
///
/// Opening creates the schema or migrates an older one forward; a file written by a newer
/// whisperer, or one that is not a whisperer database, is refused with a clear `StoreError`
/// and left untouched; so is one whose secrets were encrypted with another master key, or opened
/// without the key it has. Thread-safe: calls from several threads are serialised on one connection.
/// Several processes may open the same file; SQLite's locking keeps them consistent.
///
/// The first store a process opens turns SQLite's memory statistics off
/// (`SQLITE_CONFIG_MEMSTATUS`), unless the host has used SQLite already: with them on, every
/// allocation of every connection takes one process-wide mutex, and `deliver_event` callers
/// queued behind the store's writer (host cost p99 from 1 thread: 47 us with them, 16-21 us
/// without). `sqlite3_memory_used()` then stays at 0.
class SqliteStore final : public SubscriptionStore {
public:
    explicit SqliteStore(const std::string& path, SqliteOptions options = {});
    ~SqliteStore() override;
    SqliteStore(const SqliteStore&) = delete;
    SqliteStore& operator=(const SqliteStore&) = delete;

    /// The schema version this build writes.
    static int schema_version() noexcept;

    /// Seals every stored secret and credential again under `new_key` and makes it the
    /// database's key, in one transaction: afterwards only `new_key` opens the database (this
    /// store goes on with it); interrupted (even by kill -9), only the old key does. The store
    /// must have been opened with the current key. Stop every other process using the database
    /// first: one still holding the old key fails on the first credential it reads. Throws
    /// `StoreError` (nothing changed) when the store has no key, `new_key` is the current key, or
    /// another process replaced the key meanwhile.
    SqliteRekeyResult rekey(const MasterKey& new_key);

    Hook create_hook(const Hook& hook) override;
    std::optional<Hook> find_hook(std::int64_t id) override;
    Hook update_hook(const Hook& hook) override;
    bool deactivate_hook(std::int64_t id, const std::string& reason = {}) override;
    Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) override;
    Page<Hook> list_hooks(const HookQuery& query) override;
    std::vector<Hook> active_hooks(const std::string& event_type, const boost::json::object& config_filter = {},
                                   const std::vector<std::string>& owners = {}) override;
    /// Served from a per-event-type cache read through a second connection, so that callers
    /// never wait for the store's writer; a change of hooks by any process clears it.
    std::vector<std::int64_t> subscriber_ids(const std::string& event_type,
                                             const boost::json::object& config_filter = {},
                                             const std::vector<std::string>& owners = {}) override;
    /// `<path>.journal` for a file with `normal` durability; empty for `full` and in memory.
    std::string journal_prefix() const override;
    /// Checkpoints the write-ahead log through a connection of its own (PASSIVE: writers and
    /// readers go on meanwhile) once it holds more than a few megabytes. Until the first call,
    /// commits checkpoint the log themselves; after it, they do only when it grows very large.
    void checkpoint() override;

    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override;
    std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts = false) override;
    AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) override;
    std::vector<Delivery> deliveries_of_event(const std::string& event_uuid) override;
    Page<Delivery> list_deliveries(const DeliveryQuery& query) override;
    bool requeue(std::int64_t delivery_id, TimePoint due) override;
    std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                               std::size_t limit = 10000) override;

    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override;
    void renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids,
                      TimePoint until) override;
    void release_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids) override;
    void record_attempts(std::span<const AttemptRecord> records) override;
    std::optional<TimePoint> next_due() override;
    Page<OutboxEntry> list_outbox(const OutboxQuery& query) override;

    std::int64_t add_token(const std::string& key_sha256, const ApiToken& token) override;
    std::optional<ApiToken> find_token(const std::string& key_sha256) override;
    std::vector<ApiToken> list_tokens() override;
    bool revoke_token(std::int64_t id) override;
    void record_token_use(std::int64_t id, TimePoint at) override;

    std::size_t delete_finished_before(TimePoint before, std::size_t limit = 1000) override;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace whisperer

#endif
