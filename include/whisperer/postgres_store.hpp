#ifndef WHISPERER_POSTGRES_STORE_HPP
#define WHISPERER_POSTGRES_STORE_HPP

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

struct pg_conn; // libpq's PGconn

namespace whisperer {

/// Options of `PostgresStore`.
struct PostgresOptions {
    /// The PostgreSQL schema that holds whisperer's tables and functions (created when missing).
    std::string schema = "whisperer";
    /// Connections the store opens at most, shared by its calls; each call holds one only for
    /// its round trips. A dispatcher with `store_threads = N` uses up to N at once, and the host's
    /// own calls (`deliver_event`, the REST API) one each.
    std::size_t connections = 4;
    /// How long a call waits for a free connection, and for the server's answer, before it
    /// fails with `StoreError` (a connection that timed out mid-statement is closed).
    std::chrono::milliseconds timeout{10000};
    /// Stored response bodies are cut to this.
    std::size_t response_body_limit = 20 * 1024;
    /// Hooks one owner may have, active or not (as `SqliteOptions::max_hooks_per_owner`).
    std::size_t max_hooks_per_owner = 1000;
    /// Attempts kept per delivery, at least 1 (as `SqliteOptions::max_attempts_kept`).
    std::size_t max_attempts_kept = 50;
    /// When set, hook secrets and credentials are stored sealed with it, as in `SqliteOptions`:
    /// AES-256-GCM, each value bound to its hook and field; those stored in clear are sealed
    /// when the store opens. Once the database has a key, opening it without that key fails.
    std::optional<MasterKey> master_key;
};

/// A store in a PostgreSQL database, shared by any number of processes on any number of
/// machines: each claims due deliveries with `FOR UPDATE SKIP LOCKED` under leases that fence
/// later writes, so no claim waits for another and a crashed process's rows go out through the
/// others once its leases expire.
///
/// `conninfo` is any libpq connection string or URI (`postgresql://user:password@host:5432/db`).
/// Opening connects, then creates the schema or migrates it forward under an advisory lock (N
/// processes starting together migrate once); a schema written by a newer whisperer, or one
/// holding another application's tables, is refused with a clear `StoreError` and left as it
/// is. Errors never carry the connection string's password.
///
/// Every call is a few round trips at most (statements are pipelined), and no transaction is
/// held between calls. Hosts may also enqueue events inside their own transactions with the SQL
/// function `<schema>.deliver_event(event_type text, data json [, idempotency_key text])`: the
/// store fans such events out to their subscribers at its next claim after their commit.
/// Thread-safe.
class PostgresStore final : public SubscriptionStore {
public:
    explicit PostgresStore(const std::string& conninfo, PostgresOptions options = {});
    ~PostgresStore() override;
    PostgresStore(const PostgresStore&) = delete;
    PostgresStore& operator=(const PostgresStore&) = delete;

    /// The schema version this build writes.
    static int schema_version() noexcept;
    /// The connection string with its password masked: what logs and errors may show.
    const std::string& redacted_conninfo() const noexcept;
    /// The schema's name, as given in the options.
    const std::string& schema() const noexcept;

    /// Seals every stored secret and credential again under `new_key` and makes it the
    /// schema's key, in one transaction: afterwards only `new_key` opens it (this store goes on
    /// with it); interrupted, only the old key does. The store must have been opened with the
    /// current key. Stop every other process using the schema first: one still holding the old
    /// key fails on the first credential it reads. Throws `StoreError` (nothing changed) when the
    /// store has no key, `new_key` is the current key, or another process replaced the key.
    RekeyResult rekey(const MasterKey& new_key);

    Hook create_hook(const Hook& hook) override;
    std::optional<Hook> find_hook(std::int64_t id) override;
    Hook update_hook(const Hook& hook) override;
    bool deactivate_hook(std::int64_t id, const std::string& reason = {}) override;
    Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) override;
    Page<Hook> list_hooks(const HookQuery& query) override;
    std::vector<Hook> active_hooks(const std::string& event_type, const boost::json::object& config_filter = {},
                                   const std::vector<std::string>& owners = {}) override;
    /// Served from a per-process cache of the active hooks, checked against the database's
    /// hook generation (one indexed row, moved by triggers on every change from any process) at
    /// each call: a change committed anywhere is seen by the next call.
    std::vector<std::int64_t> subscriber_ids(const std::string& event_type,
                                             const boost::json::object& config_filter = {},
                                             const std::vector<std::string>& owners = {}) override;

    /// Writes the whole batch in one transaction and one round trip.
    std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) override;
    std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts = false) override;
    AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) override;
    std::vector<Delivery> deliveries_of_event(const std::string& event_uuid) override;
    Page<Delivery> list_deliveries(const DeliveryQuery& query) override;
    bool requeue(std::int64_t delivery_id, TimePoint due) override;
    std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                               std::size_t limit = 10000) override;

    /// Fans out the events that SQL `deliver_event` committed, then leases due rows: one round
    /// trip to find the hooks waiting longest, one or two to lease their rows (`SKIP LOCKED`:
    /// rows another process is leasing are passed over, never waited for).
    std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) override;
    void renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids,
                      TimePoint until) override;
    void release_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids) override;
    /// The whole batch in one transaction and one round trip.
    void record_attempts(std::span<const AttemptRecord> records) override;
    std::optional<TimePoint> next_due() override;
    Page<OutboxEntry> list_outbox(const OutboxQuery& query) override;

    std::int64_t add_token(const std::string& key_sha256, const ApiToken& token) override;
    std::optional<ApiToken> find_token(const std::string& key_sha256) override;
    std::vector<ApiToken> list_tokens() override;
    bool revoke_token(std::int64_t id) override;
    void record_token_use(std::int64_t id, TimePoint at) override;

    std::size_t delete_finished_before(TimePoint before, std::size_t limit = 1000) override;

    struct Impl;

private:
    friend class PostgresDueListener;
    std::unique_ptr<Impl> impl_;
};

/// Calls `on_due` within milliseconds of any process, on any machine, committing new outbox
/// rows or events by SQL `deliver_event` in `store`'s schema: a connection of its own LISTENs on
/// the channel `<schema>.due`, which the schema's triggers notify at most once per transaction.
/// Pass `[&] { dispatcher.wake(); }` so that idle dispatchers claim at once instead of at their
/// next poll (`DispatcherOptions::idle_poll`, which stays the fallback).
///
/// Runs on `executor` without blocking it (libpq's non-blocking calls, the socket on Asio). A
/// lost connection is made again with backoff, and `on_due` is called once it is back, since
/// notifications sent meanwhile were lost. A transaction-mode pooler (PgBouncer's `transaction`
/// mode) cannot carry LISTEN: behind one, do not create a listener and lower `idle_poll`.
class PostgresDueListener {
public:
    PostgresDueListener(boost::asio::any_io_executor executor, const PostgresStore& store, std::function<void()> on_due,
                        LogHandler log = {});
    /// Stops listening; no `on_due` starts after it returns.
    ~PostgresDueListener();
    PostgresDueListener(const PostgresDueListener&) = delete;
    PostgresDueListener& operator=(const PostgresDueListener&) = delete;

    /// Whether the connection is up and listening.
    bool listening() const noexcept;

private:
    struct State;
    std::unique_ptr<State> state_;
};

/// Enqueues an event of `event_type` with `data` on the host's own libpq connection `conn`,
/// inside the transaction the host has open there: the event commits or rolls back with the
/// host's own writes (the transactional outbox), and dispatchers on `schema` pick it up at the
/// commit. Returns the event's uuid; with an `idempotency_key` used before, the first event's.
///
/// Calls the SQL function `<schema>.deliver_event`, which any other client may call too; the
/// body sent is byte-identical to what `Dispatcher::deliver_data` builds for the same data with
/// `DataKey::data` (an event type's `customize_payload` is not applied). Blocks on `conn` for one
/// round trip. Throws `StoreError` with the server's message when the call fails, which leaves
/// the host's transaction failed: the host rolls it back.
std::string deliver_event_in_transaction(pg_conn* conn, std::string_view event_type, const boost::json::value& data,
                                         std::string_view idempotency_key = {}, std::string_view schema = "whisperer");

} // namespace whisperer

#endif
