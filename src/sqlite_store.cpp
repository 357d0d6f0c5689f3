#include <whisperer/sqlite_store.hpp>

#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>

#include "detail/secret_box.hpp"
#include "detail/sqlite_sealing.hpp"
#include "detail/claim_room.hpp"
#include "detail/sqlite_rows.hpp"
#include "detail/sqlite_schema.hpp"
#include "detail/sqlite_statements.hpp"
#include "detail/sqlite_subscribers.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>

#include <fcntl.h>
#include <unistd.h>

namespace whisperer {

using namespace detail;

namespace {

/// Listings return between 1 and this many items per page, whatever the caller asks.
constexpr std::size_t max_page_size = 1000;

/// True for the names under which SQLite keeps a database in memory only.
bool is_memory_path(const std::string& path)
{
    return path.empty() || path == ":memory:" || path.find("mode=memory") != std::string::npos;
}

std::string already_registered_message(const Hook& hook)
{
    return "An active webhook of '" + hook.owner + "' already sends '" + hook.event_type +
           "' events to " + hook.target_url + ".";
}

/// The hooks that have rows in the outbox, one index seek each, however many rows they have: a
/// recursive walk from each hook id to the next (SQLite has no skip-scan without statistics).
constexpr std::string_view queued_hooks =
    "WITH RECURSIVE queued (hook_id) AS ("
    " SELECT (SELECT MIN(hook_id) FROM outbox)"
    " UNION ALL"
    " SELECT (SELECT MIN(o.hook_id) FROM outbox o WHERE o.hook_id > q.hook_id) FROM queued q"
    " WHERE q.hook_id IS NOT NULL) ";

/// A row `claim_due` may lease: due, and its lease free or expired. Rows of one hook are walked
/// through `outbox_hook_due` in due order; the leased ones are skipped inside the index.
constexpr std::string_view claimable =
    "o.due_at <= :now AND (o.lease_expires IS NULL OR o.lease_expires <= :now)";

/// A hook with claimable rows, how many of them this claim may take, and what it took.
struct ClaimCandidate {
    std::int64_t first_due = 0; ///< Of its oldest claimable row not taken yet.
    std::int64_t hook_id = 0;
    std::string owner;
    std::string origin;         ///< `target_origin` of its target URL.
    std::size_t limit = 0;
    std::size_t taken = 0;
    bool exhausted = false; ///< A take left no claimable row of the hook.
    std::optional<Hook> hook;
};

/// A claim's walk over the hooks with rows, kept for the claims that follow (see `claim_due`).
struct ClaimWalk {
    std::vector<ClaimCandidate> hooks; ///< Hooks with claimable rows left, their oldest's due time.
    std::int64_t now = 0;              ///< The claim time of the walk, in micros.
    std::int64_t data_version = 0;     ///< `PRAGMA data_version` then: other connections' commits.
    bool valid = false;
};

/// How long a walk may serve the claims after it: rows that fall due or whose lease runs out
/// meanwhile wait at most this long for a walk that sees them, and only while claims are full.
constexpr std::int64_t max_walk_age_us = 100'000;

} // namespace

struct SqliteStore::Impl {
    Impl(const std::string& path, SqliteOptions options);

    /// The cached statement for `sql`, prepared on first use.
    LentStatement statement(std::string_view sql);

    /// Runs `operation` under the mutex in one transaction; SQLite failures become `StoreError`.
    template <class Operation>
    auto run(std::string_view what, SQLite::TransactionBehavior behavior, Operation&& operation)
        -> std::invoke_result_t<Operation&>;

    /// For operations that write: takes the write lock at once, so that two processes never
    /// both read and then fail to upgrade.
    template <class Operation>
    auto write(std::string_view what, Operation&& operation)
    {
        return run(what, SQLite::TransactionBehavior::IMMEDIATE, std::forward<Operation>(operation));
    }

    /// For operations that only read: one consistent snapshot.
    template <class Operation>
    auto read(std::string_view what, Operation&& operation)
    {
        return run(what, SQLite::TransactionBehavior::DEFERRED, std::forward<Operation>(operation));
    }

    /// Refuses, before anything is written, a file that has a master key when this store has
    /// none or another one.
    void check_master_key();
    const SecretBox* box() const noexcept { return box_ ? &*box_ : nullptr; }

    // The steps below expect the mutex held and a transaction open.
    bool in_memory() const { return is_memory_path(path_); }
    std::optional<Hook> find_hook(std::int64_t id, TimePoint now = Clock::now());
    /// Executes an insert or update of `hook`, turning a duplicate into WebhookAlreadyRegistered.
    void write_hook(SQLite::Statement& statement, const Hook& hook);
    /// Throws TooManyHooks when `owner` has `max_hooks_per_owner` hooks (active or not) already.
    void check_hook_quota(const std::string& owner);
    /// Marks hook `id` inactive, with `reason` (and the time) when not empty; false if none.
    bool deactivate_hook(std::int64_t id, const std::string& reason);
    std::vector<Hook> active_hooks(const std::string& event_type, const boost::json::object& filter,
                                   const std::vector<std::string>& owners);
    const std::vector<Subscriber>& subscribers(
        const std::string& event_type, std::map<std::string, std::vector<Subscriber>, std::less<>>& cache);
    /// `hooks` caches, for one batch, the hooks that deliveries were handed off to.
    EnqueuedEvent enqueue(const NewEvent& event, const std::vector<Subscriber>& subscribers,
                          std::map<std::int64_t, std::optional<Hook>>& hooks);
    void record(const AttemptRecord& record, TimePoint now);
    /// False when the delivery is gone (removed by retention).
    bool update_delivery(const AttemptRecord& record, DeliveryState state,
                         std::optional<TimePoint> next_attempt_at, TimePoint now);
    void insert_attempt(const AttemptRecord& record);
    void remove_from_outbox(std::int64_t delivery_id);
    bool requeue(std::int64_t delivery_id, TimePoint due, TimePoint now);
    /// Moves the health of the delivery's hook by one attempt: a success ends its run of failures.
    void record_health(const AttemptRecord& record);
    void take_rows(ClaimCandidate& candidate, std::size_t n, const ClaimRequest& request,
                   std::vector<std::pair<std::int64_t, ClaimedDelivery>>& claimed);
    /// Every active hook with claimable rows at `now`, and its oldest one's due time.
    std::vector<ClaimCandidate> walk_hooks(TimePoint now);
    /// Gives `candidates` their turns of `request` (see `claim_due`); `taken` counts, per hook,
    /// the rows this claim has taken so far, over several calls.
    void take_turns(std::vector<ClaimCandidate>& candidates, const ClaimRequest& request,
                    const std::function<std::size_t(std::int64_t)>& limit_of,
                    std::map<std::int64_t, std::size_t>& taken, GroupRoom& room,
                    std::vector<std::pair<std::int64_t, ClaimedDelivery>>& claimed);
    /// The last claim's walk is stale: this connection wrote rows or hooks it does not know of.
    void forget_walk() noexcept { walk_.valid = false; }
    std::int64_t data_version();

    /// The events of a journal replay that are stored already.
    bool stored(const NewEvent& event);

    /// Records the log's size after each commit, and checkpoints it inline once it passes
    /// 32 MiB: `checkpoint()` keeps it below that while a dispatcher runs, but a busy log that
    /// a passive checkpoint never catches up with, or a store with no dispatcher, needs this.
    static int on_wal_commit(void* self, sqlite3* db, const char* name, int pages);

    std::string path_;
    SqliteOptions options_;
    std::atomic<int> wal_pages_{0};
    std::int64_t page_bytes_ = 4096; // The file's page size, read once it is open.
    std::mutex checkpoint_mutex_;
    std::unique_ptr<SQLite::Database> checkpointer_; // Opened on the first checkpoint().
    std::optional<SecretBox> box_;
    std::mutex mutex_;
    SQLite::Database db_;
    /// Null for an in-memory database, which no second connection can see.
    std::unique_ptr<SqliteSubscribers> subscribers_;
    ClaimWalk walk_;
    // Declared after db_: statements must be finalised before the connection closes.
    std::map<std::string, std::unique_ptr<SQLite::Statement>, std::less<>> statements_;
};

namespace {

/// Turns SQLite's memory statistics off for the process, if SQLite is not initialised yet.
/// With them on, every allocation of every connection takes one process-wide mutex: the
/// `deliver_event` callers' reads (subscribers) then queue behind the store's writer, which
/// allocates all the time. Only `sqlite3_memory_used` and the memory counters of
/// `sqlite3_status` stop counting; a host that initialised SQLite already keeps them.
void configure_sqlite_once()
{
    static std::once_flag once;
    std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

/// Creates a missing database file with mode 0600 before SQLite does: SQLite would create it
/// under the process umask (often 0644, readable by every local user), and gives its -wal,
/// -shm and -journal files the database file's mode. An existing file is left as it is; a
/// path SQLite cannot use either is left for SQLite to report.
void create_private_file(const std::string& path)
{
    if (is_memory_path(path) || path.starts_with("file:"))
        return;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0)
        ::close(fd);
}

SQLite::Database open_database(const std::string& path, const SqliteOptions& options)
{
    configure_sqlite_once();
    // Refused before the file is touched.
    const std::size_t page = options.page_size;
    if (page < 512 || page > 65536 || (page & (page - 1)) != 0)
        throw StoreError("SQLite store: page_size " + std::to_string(page) +
                         " is not a power of two from 512 to 65536");
    if (options.max_attempts_kept == 0)
        throw StoreError("SQLite store: max_attempts_kept must be at least 1");
    create_private_file(path);
    try {
        // The store's mutex serialises every use of the connection, so SQLite's own locking of
        // each call (bind, step, column) is only overhead: a lock pair per call.
        return SQLite::Database(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_NOMUTEX,
                                static_cast<int>(options.busy_timeout.count()));
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot open '" + path + "': " + e.what());
    }
}

} // namespace

SqliteStore::Impl::Impl(const std::string& path, SqliteOptions options)
    : path_(path), options_(options), db_(open_database(path, options))
{
    if (options_.master_key)
        box_.emplace(*options_.master_key);
    check_master_key();
    try {
        // Takes effect only while the file has no tables yet, before WAL mode is set.
        db_.exec("PRAGMA page_size = " + std::to_string(options_.page_size));
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot configure '" + path_ + "': " + e.what());
    }
    open_schema(db_, path_);
    try {
        page_bytes_ = db_.execAndGet("PRAGMA page_size").getInt64();
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot configure '" + path_ + "': " + e.what());
    }
    try {
        db_.exec(options_.durability == SqliteDurability::full ? "PRAGMA synchronous = FULL"
                                                                : "PRAGMA synchronous = NORMAL");
        db_.exec("PRAGMA foreign_keys = ON");
        // A checkpoint fsyncs the log and the database, and commits made meanwhile stall on
        // the disk. The dispatcher runs them in the background (`checkpoint()`, from 4 MiB of
        // log); a commit checkpoints itself only past 32 MiB (SQLite's own default is 1000
        // pages). Durability is unchanged: it depends on `synchronous`. The size limit truncates
        // a log that a long reader let grow far past that.
        sqlite3_wal_hook(db_.getHandle(), &Impl::on_wal_commit, this);
        db_.exec("PRAGMA journal_size_limit = 67108864");
        // Claims walk the hooks through a recursive query, whose queue is a temporary table.
        // Backed by a file (the default), each one sets up and frees a pager: ~50 us a claim,
        // several times the query itself. Every temporary table here is small.
        db_.exec("PRAGMA temp_store = MEMORY");
        if (!in_memory())
            subscribers_ = std::make_unique<SqliteSubscribers>(path_);
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot configure '" + path_ + "': " + e.what());
    }
    if (box_)
        seal_credentials_at_rest(db_, *box_, path_);
}

void SqliteStore::Impl::check_master_key()
{
    std::string stored;
    try {
        if (db_.execAndGet("PRAGMA application_id").getInt() != sqlite_application_id ||
            db_.execAndGet("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'master_key'")
                    .getInt() == 0)
            return;
        SQLite::Statement select{db_, "SELECT key_check FROM master_key WHERE id = 1"};
        if (!select.executeStep())
            return;
        stored = select.getColumn(0).getString();
    } catch (const SQLite::Exception&) {
        return; // open_schema says what is wrong with the file.
    }
    if (!box_)
        throw StoreError("SQLite store: '" + path_ +
                         "' stores hook secrets encrypted; open it with its master key (SqliteOptions::master_key, "
                         "whisperer-server --secret-key-file)");
    if (!constant_time_equal(stored, box_->key_check()))
        throw StoreError("SQLite store: '" + path_ +
                         "' was encrypted with another master key; refusing to open it with this one");
}

LentStatement SqliteStore::Impl::statement(std::string_view sql)
{
    auto found = statements_.find(sql);
    if (found == statements_.end())
        found = statements_
                    .emplace(std::string(sql), std::make_unique<SQLite::Statement>(db_, std::string(sql)))
                    .first;
    return LentStatement{*found->second};
}

template <class Operation>
auto SqliteStore::Impl::run(std::string_view what, SQLite::TransactionBehavior behavior,
                            Operation&& operation) -> std::invoke_result_t<Operation&>
{
    std::lock_guard lock{mutex_};
    try {
        SQLite::Transaction transaction{db_, behavior};
        if constexpr (std::is_void_v<std::invoke_result_t<Operation&>>) {
            operation();
            transaction.commit();
        } else {
            auto result = operation();
            transaction.commit();
            return result;
        }
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store '" + path_ + "': cannot " + std::string(what) + ": " + e.what());
    }
}


SqliteStore::SqliteStore(const std::string& path, SqliteOptions options)
    : impl_(std::make_unique<Impl>(path, options))
{
}

SqliteStore::~SqliteStore() = default;

SqliteRekeyResult SqliteStore::rekey(const MasterKey& new_key)
{
    Impl& impl = *impl_;
    std::lock_guard lock{impl.mutex_};
    if (!impl.box_)
        throw StoreError("SQLite store: '" + impl.path_ +
                         "' has no master key to replace; opening it with a key encrypts it under that key");
    const SecretBox to{new_key};
    if (constant_time_equal(to.key_check(), impl.box_->key_check()))
        throw StoreError("SQLite store: the new master key of '" + impl.path_ + "' is the key it has");
    SqliteRekeyResult result = reseal_credentials(impl.db_, *impl.box_, to, impl.path_);
    impl.box_.emplace(new_key);
    return result;
}

int SqliteStore::schema_version() noexcept
{
    return static_cast<int>(sqlite_migrations.size());
}

// --- hooks -------------------------------------------------------------------------------------

std::optional<Hook> SqliteStore::Impl::find_hook(std::int64_t id, TimePoint now)
{
    static const std::string sql = "SELECT " + std::string(hook_columns) + " FROM hooks h WHERE h.id = :id";
    auto select = statement(sql);
    select->bind(":id", id);
    if (!select->executeStep())
        return std::nullopt;
    RowReader row{*select};
    return read_hook(row, box(), now);
}

void SqliteStore::Impl::write_hook(SQLite::Statement& statement, const Hook& hook)
{
    try {
        statement.exec();
    } catch (const SQLite::Exception& e) {
        if (e.getExtendedErrorCode() == SQLITE_CONSTRAINT_UNIQUE)
            throw WebhookAlreadyRegistered(already_registered_message(hook));
        throw;
    }
}

void SqliteStore::Impl::check_hook_quota(const std::string& owner)
{
    const std::size_t limit = options_.max_hooks_per_owner;
    if (limit == 0)
        return;
    // Inactive hooks count too: they stay in the file until retention removes them.
    auto count = statement("SELECT COUNT(*) FROM hooks WHERE owner = :owner");
    count->bind(":owner", owner);
    count->executeStep();
    if (static_cast<std::size_t>(count->getColumn(0).getInt64()) >= limit)
        throw TooManyHooks("'" + owner + "' already has " + std::to_string(limit) +
                           " webhooks, active or deleted, the most allowed; re-use an inactive one "
                           "(PUT or PATCH) or wait until retention removes deleted ones.");
}

Hook SqliteStore::create_hook(const Hook& hook)
{
    return impl_->write("create a hook", [&] {
        impl_->forget_walk();
        impl_->check_hook_quota(hook.owner);
        Hook created = hook;
        created.retired_secrets.clear();
        created.created = created.modified = stored_time(Clock::now());
        // The id is chosen first (as SQLite would: one past the largest, under the write lock),
        // since sealed credentials are bound to it.
        {
            auto next = impl_->statement("SELECT COALESCE(MAX(id), 0) + 1 FROM hooks");
            next->executeStep();
            created.id = next->getColumn(0).getInt64();
        }
        auto insert = impl_->statement(
            "INSERT INTO hooks (id, owner, target_url, event_type, is_active, secret_key, callback, "
            "retry_countdown_config, additional_headers, config, created, modified, disabled_reason, "
            "disabled_at) VALUES (:id, :owner, :target_url, :event_type, :is_active, :secret_key, :callback, "
            ":retry_countdown_config, :additional_headers, :config, :created, :modified, "
            ":disabled_reason, :disabled_at)");
        insert->bind(":id", created.id);
        bind_hook_fields(*insert, stored_form(created, impl_->box()));
        insert->bind(":created", to_micros(created.created));
        insert->bind(":modified", to_micros(created.modified));
        impl_->write_hook(*insert, created);
        return created;
    });
}

std::optional<Hook> SqliteStore::find_hook(std::int64_t id)
{
    return impl_->read("find a hook", [&] { return impl_->find_hook(id); });
}

Hook SqliteStore::update_hook(const Hook& hook)
{
    return impl_->write("update a hook", [&] {
        impl_->forget_walk();
        {
            // Every hook counts against its owner's limit, active or not: only a move needs room.
            auto owner = impl_->statement("SELECT owner FROM hooks WHERE id = :id");
            owner->bind(":id", hook.id);
            if (!owner->executeStep())
                throw WebhookDoesNotExist("Webhook " + std::to_string(hook.id) + " does not exist.");
            if (owner->getColumn(0).getString() != hook.owner) {
                impl_->check_hook_quota(hook.owner);
                // Subscriber caches keep each hook's owner for owner filters; the schema's
                // triggers move the generation for the other fields they keep.
                impl_->statement("UPDATE hooks_generation SET n = n + 1")->exec();
            }
        }
        auto update = impl_->statement(
            "UPDATE hooks SET owner = :owner, target_url = :target_url, event_type = :event_type, "
            "is_active = :is_active, secret_key = :secret_key, callback = :callback, "
            "retry_countdown_config = :retry_countdown_config, additional_headers = :additional_headers, "
            "config = :config, modified = :modified, disabled_reason = :disabled_reason, "
            "disabled_at = :disabled_at, "
            // Re-activation starts the hook afresh: no disabled reason, no run of failures.
            "failing_since = CASE WHEN :is_active = 1 AND is_active = 0 THEN NULL ELSE failing_since END, "
            "failed_attempts = CASE WHEN :is_active = 1 AND is_active = 0 THEN 0 ELSE failed_attempts END "
            "WHERE id = :id");
        Hook written = hook;
        if (written.is_active) {
            written.disabled_reason.clear();
            written.disabled_at.reset();
        }
        bind_hook_fields(*update, stored_form(written, impl_->box()));
        update->bind(":modified", to_micros(Clock::now()));
        update->bind(":id", hook.id);
        impl_->write_hook(*update, hook);
        if (impl_->db_.getChanges() == 0)
            throw WebhookDoesNotExist("Webhook " + std::to_string(hook.id) + " does not exist.");
        return *impl_->find_hook(hook.id);
    });
}

bool SqliteStore::Impl::deactivate_hook(std::int64_t id, const std::string& reason)
{
    forget_walk();
    auto update = statement("UPDATE hooks SET is_active = 0, modified = :now, disabled_reason = :reason, "
                            "disabled_at = CASE WHEN :reason = '' THEN NULL ELSE :now END WHERE id = :id");
    update->bind(":now", to_micros(Clock::now()));
    update->bind(":reason", reason);
    update->bind(":id", id);
    return update->exec() > 0;
}

bool SqliteStore::deactivate_hook(std::int64_t id, const std::string& reason)
{
    return impl_->write("deactivate a hook", [&] { return impl_->deactivate_hook(id, reason); });
}

Hook SqliteStore::rotate_secret(std::int64_t id, const SecretRotation& rotation)
{
    validate_grace_period(rotation.grace_period);
    const std::string new_secret = rotation.new_secret.empty() ? generate_secret() : rotation.new_secret;
    const TimePoint now = stored_time(Clock::now());
    const TimePoint at = stored_time(rotation.now.value_or(now));
    return impl_->write("rotate a hook's secret", [&] {
        auto hook = impl_->find_hook(id, at);
        if (!hook)
            throw WebhookDoesNotExist("Webhook " + std::to_string(id) + " does not exist.");
        apply_rotation(*hook, new_secret, rotation.grace_period, at);
        hook->modified = now;
        auto update = impl_->statement("UPDATE hooks SET secret_key = :secret_key, retired_secrets = :retired, "
                                       "modified = :modified WHERE id = :id");
        const Hook stored = stored_form(*hook, impl_->box());
        update->bind(":secret_key", stored.secret_key);
        update->bind(":retired", retired_secrets_text(stored.retired_secrets));
        update->bind(":modified", to_micros(now));
        update->bind(":id", id);
        update->exec();
        return std::move(*hook);
    });
}

Page<Hook> SqliteStore::list_hooks(const HookQuery& query)
{
    Conditions where;
    where.add("h.id > :after", ":after", query.after);
    if (query.owner && !query.owner->empty())
        where.add("h.owner = :owner", ":owner", *query.owner);
    if (query.target_url)
        where.add("h.target_url = :target_url", ":target_url", *query.target_url);
    if (query.event_type)
        where.add("h.event_type = :event_type", ":event_type", *query.event_type);
    if (query.is_active)
        where.add("h.is_active = :is_active", ":is_active", std::int64_t{*query.is_active});
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);

    return impl_->read("list hooks", [&] {
        auto select = impl_->statement("SELECT " + std::string(hook_columns) + " FROM hooks h WHERE " +
                                       where.sql() + " ORDER BY h.id LIMIT :limit");
        where.bind(*select);
        select->bind(":limit", sql_limit(page_size + 1));
        const TimePoint now = Clock::now();
        return read_page<Hook>(*select, page_size,
                               [&](RowReader& row) { return read_hook(row, impl_->box(), now); });
    });
}

std::vector<Hook> SqliteStore::Impl::active_hooks(const std::string& event_type,
                                                  const boost::json::object& filter,
                                                  const std::vector<std::string>& owners)
{
    static const std::string sql = "SELECT " + std::string(hook_columns) +
                                   " FROM hooks h WHERE h.is_active = 1 AND h.event_type = :event_type"
                                   " ORDER BY h.id";
    auto select = statement(sql);
    select->bind(":event_type", event_type);
    std::vector<Hook> hooks;
    const TimePoint now = Clock::now();
    while (select->executeStep()) {
        RowReader row{*select};
        Hook hook = read_hook(row, box(), now);
        if (owner_matches(hook.owner, owners) && config_matches(hook.config, filter))
            hooks.push_back(std::move(hook));
    }
    return hooks;
}

std::vector<Hook> SqliteStore::active_hooks(const std::string& event_type,
                                            const boost::json::object& config_filter,
                                            const std::vector<std::string>& owners)
{
    return impl_->read("list active hooks", [&] { return impl_->active_hooks(event_type, config_filter, owners); });
}

std::vector<std::int64_t> SqliteStore::subscriber_ids(const std::string& event_type,
                                                      const boost::json::object& config_filter,
                                                      const std::vector<std::string>& owners)
{
    if (!impl_->subscribers_)
        return SubscriptionStore::subscriber_ids(event_type, config_filter, owners);
    try {
        return impl_->subscribers_->ids(event_type, config_filter, owners);
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store '" + impl_->path_ + "': cannot read the hooks of '" + event_type +
                         "': " + e.what());
    }
}

std::string SqliteStore::journal_prefix() const
{
    if (impl_->in_memory() || impl_->options_.durability == SqliteDurability::full)
        return {};
    return impl_->path_ + ".journal";
}

/// A commit checkpoints the log itself once it holds this much: a passive checkpoint from
/// `checkpoint()` does not wait for writers, so under a steady stream of commits it may never
/// reach the log's end, and only a commit's own checkpoint lets the log start over.
constexpr std::int64_t inline_checkpoint_bytes = 32 << 20;
/// Below 4 MiB in the log, `checkpoint()` leaves it alone.
constexpr std::int64_t background_checkpoint_bytes = 4 << 20;

int SqliteStore::Impl::on_wal_commit(void* self, sqlite3* db, const char* name, int pages)
{
    auto& impl = *static_cast<Impl*>(self);
    impl.wal_pages_.store(pages, std::memory_order_relaxed);
    if (std::int64_t{pages} * impl.page_bytes_ >= inline_checkpoint_bytes)
        sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    return SQLITE_OK;
}

void SqliteStore::checkpoint()
{
    Impl& impl = *impl_;
    if (impl.in_memory())
        return;
    if (std::int64_t{impl.wal_pages_.load(std::memory_order_relaxed)} * impl.page_bytes_ < background_checkpoint_bytes)
        return;
    std::lock_guard lock{impl.checkpoint_mutex_};
    try {
        if (!impl.checkpointer_) {
            impl.checkpointer_ = std::make_unique<SQLite::Database>(
                impl.path_, SQLite::OPEN_READWRITE, static_cast<int>(impl.options_.busy_timeout.count()));
            // A connection opens the log only once it reads; a checkpoint before that does nothing.
            impl.checkpointer_->execAndGet("PRAGMA journal_mode");
        }
        int log_pages = 0;
        int moved = 0;
        const int rc = sqlite3_wal_checkpoint_v2(impl.checkpointer_->getHandle(), "main", SQLITE_CHECKPOINT_PASSIVE,
                                                 &log_pages, &moved);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            throw StoreError("SQLite store '" + impl.path_ + "': checkpoint failed: " +
                             sqlite3_errmsg(impl.checkpointer_->getHandle()));
        // The log restarts from its beginning at the next commit once everything was moved.
        if (rc == SQLITE_OK && moved == log_pages)
            impl.wal_pages_.store(0, std::memory_order_relaxed);
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store '" + impl.path_ + "': cannot checkpoint: " + e.what());
    }
}

// --- events and deliveries ---------------------------------------------------------------------

const std::vector<Subscriber>& SqliteStore::Impl::subscribers(
    const std::string& event_type, std::map<std::string, std::vector<Subscriber>, std::less<>>& cache)
{
    if (auto found = cache.find(event_type); found != cache.end())
        return found->second;
    auto select = statement("SELECT h.id, h.owner, h.config FROM hooks h "
                            "WHERE h.is_active = 1 AND h.event_type = :event_type ORDER BY h.id");
    select->bind(":event_type", event_type);
    std::vector<Subscriber> found;
    while (select->executeStep()) {
        RowReader row{*select};
        Subscriber subscriber;
        subscriber.hook_id = row.int64();
        subscriber.owner = row.text();
        subscriber.config = row.object();
        found.push_back(std::move(subscriber));
    }
    return cache.emplace(event_type, std::move(found)).first->second;
}

bool SqliteStore::Impl::stored(const NewEvent& event)
{
    auto existing = statement("SELECT 1 FROM events WHERE uuid = :uuid");
    existing->bind(":uuid", event.uuid);
    return existing->executeStep();
}

EnqueuedEvent SqliteStore::Impl::enqueue(const NewEvent& event, const std::vector<Subscriber>& subscribers,
                                         std::map<std::int64_t, std::optional<Hook>>& hooks)
{
    if (event.replayed && stored(event)) {
        EnqueuedEvent duplicate;
        duplicate.uuid = event.uuid;
        duplicate.duplicate = true;
        return duplicate;
    }
    if (event.idempotency_key) {
        auto existing = statement("SELECT uuid FROM events WHERE idempotency_key = :key");
        existing->bind(":key", *event.idempotency_key);
        if (existing->executeStep())
        {
            EnqueuedEvent duplicate;
            duplicate.uuid = existing->getColumn(0).getString();
            duplicate.duplicate = true;
            return duplicate;
        }
    }

    auto insert_event = statement(
        "INSERT INTO events (uuid, event_type, body, object_ref, idempotency_key, created) "
        "VALUES (:uuid, :event_type, :body, :object_ref, :idempotency_key, :created)");
    insert_event->bind(":uuid", event.uuid);
    insert_event->bind(":event_type", event.event_type);
    insert_event->bindNoCopy(":body", event.body);
    insert_event->bind(":object_ref", event.object_ref);
    if (event.idempotency_key)
        insert_event->bind(":idempotency_key", *event.idempotency_key);
    insert_event->bind(":created", to_micros(event.created));
    insert_event->exec();
    const std::int64_t event_id = db_.getLastInsertRowid();

    EnqueuedEvent enqueued;
    enqueued.uuid = event.uuid;
    auto insert_delivery = statement(
        "INSERT INTO deliveries (event_id, hook_id, state, attempt_count, response_status, response_body, "
        "response_time_us, last_failure, last_error, next_attempt_at, created, modified) "
        "VALUES (:event_id, :hook_id, 'pending', 0, 0, '', 0, 'none', '', :due, :created, :created)");
    auto insert_outbox = statement("INSERT INTO outbox (delivery_id, hook_id, due_at, lease_owner, lease_expires) "
                                   "VALUES (:delivery_id, :hook_id, :due, :owner, :expires)");
    insert_delivery->bind(":event_id", event_id);
    insert_delivery->bind(":due", to_micros(event.due));
    insert_delivery->bind(":created", to_micros(event.created));
    insert_outbox->bind(":due", to_micros(event.due));
    // A handed-off delivery is leased to the worker that asked, if its hook is still active. The
    // ids are sorted once: an event of a thousand hooks would otherwise search a thousand times.
    std::vector<std::int64_t> handoff_ids = event.handoff_hook_ids;
    std::sort(handoff_ids.begin(), handoff_ids.end());
    auto handoff_hook = [&](std::int64_t hook_id) -> const Hook* {
        if (!std::binary_search(handoff_ids.begin(), handoff_ids.end(), hook_id))
            return nullptr;
        auto found = hooks.find(hook_id);
        if (found == hooks.end()) {
            std::optional<Hook> hook;
            try {
                hook = find_hook(hook_id, event.created);
            } catch (const StoreError&) {
                // Unreadable (a damaged credential): its row is written unleased, and the claim
                // that meets it deactivates the hook with the reason, as for any other row.
            }
            found = hooks.emplace(hook_id, std::move(hook)).first;
        }
        return found->second && found->second->is_active ? &*found->second : nullptr;
    };
    auto add_delivery = [&](std::int64_t hook_id) {
        insert_delivery->bind(":hook_id", hook_id);
        insert_delivery->exec();
        insert_delivery->reset();
        const std::int64_t delivery_id = db_.getLastInsertRowid();
        const Hook* leased_to = handoff_hook(hook_id);
        insert_outbox->bind(":delivery_id", delivery_id);
        insert_outbox->bind(":hook_id", hook_id);
        if (leased_to != nullptr) {
            insert_outbox->bind(":owner", event.handoff_worker);
            // From the write, not the call: the event may have waited for the store meanwhile.
            insert_outbox->bind(":expires", to_micros(Clock::now() + event.handoff_lease));
        } else {
            insert_outbox->bind(":owner");
            insert_outbox->bind(":expires");
        }
        insert_outbox->exec();
        insert_outbox->reset();
        enqueued.delivery_ids.push_back(delivery_id);
        if (leased_to != nullptr) {
            ClaimedDelivery delivery;
            delivery.delivery_id = delivery_id;
            delivery.event_uuid = event.uuid;
            delivery.event_type = event.event_type;
            delivery.body = event.body;
            delivery.hook = *leased_to;
            delivery.created = event.created;
            enqueued.handed_off.push_back(std::move(delivery));
        }
    };
    if (event.hook_ids) {
        for (std::int64_t hook_id : *event.hook_ids)
            add_delivery(hook_id);
        return enqueued;
    }
    for (const Subscriber& subscriber : subscribers)
        if (owner_matches(subscriber.owner, event.owners) && config_matches(subscriber.config, event.config_filter))
            add_delivery(subscriber.hook_id);
    return enqueued;
}

std::vector<EnqueuedEvent> SqliteStore::enqueue_events(std::span<const NewEvent> events)
{
    return impl_->write("enqueue events", [&] {
        impl_->forget_walk();
        // A batch usually holds many events of few types: read each type's hooks once.
        std::map<std::string, std::vector<Subscriber>, std::less<>> subscribers;
        std::map<std::int64_t, std::optional<Hook>> handoff_hooks;
        std::vector<EnqueuedEvent> enqueued;
        enqueued.reserve(events.size());
        static const std::vector<Subscriber> chosen;
        for (const NewEvent& event : events)
            enqueued.push_back(impl_->enqueue(
                event, event.hook_ids ? chosen : impl_->subscribers(event.event_type, subscribers), handoff_hooks));
        return enqueued;
    });
}

std::optional<Delivery> SqliteStore::find_delivery(std::int64_t id, bool with_attempts)
{
    return impl_->read("find a delivery", [&]() -> std::optional<Delivery> {
        static const std::string sql = "SELECT " + std::string(delivery_columns) + " FROM " +
                                       std::string(delivery_tables) + " WHERE d.id = :id";
        auto select = impl_->statement(sql);
        select->bind(":id", id);
        if (!select->executeStep())
            return std::nullopt;
        RowReader row{*select};
        Delivery delivery = read_delivery(row);
        if (with_attempts) {
            static const std::string attempts_sql = "SELECT " + std::string(attempt_columns) +
                                                    " FROM attempts WHERE delivery_id = :id ORDER BY id DESC";
            auto attempts = impl_->statement(attempts_sql);
            attempts->bind(":id", id);
            while (attempts->executeStep()) {
                RowReader attempt{*attempts};
                delivery.attempts.push_back(read_attempt(attempt));
            }
        }
        return delivery;
    });
}

AttemptPage SqliteStore::list_attempts(std::int64_t delivery_id, const AttemptQuery& query)
{
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);
    return impl_->read("list the attempts of a delivery", [&] {
        AttemptPage page;
        auto count = impl_->statement("SELECT COUNT(*) FROM attempts WHERE delivery_id = :id");
        count->bind(":id", delivery_id);
        count->executeStep();
        page.stored = static_cast<std::size_t>(count->getColumn(0).getInt64());
        static const std::string sql = "SELECT id, " + std::string(attempt_columns) +
                                       " FROM attempts WHERE delivery_id = :id AND id < :before"
                                       " ORDER BY id DESC LIMIT :limit";
        auto select = impl_->statement(sql);
        select->bind(":id", delivery_id);
        select->bind(":before", query.before > 0 ? query.before : std::numeric_limits<std::int64_t>::max());
        select->bind(":limit", sql_limit(page_size + 1));
        std::int64_t last_id = 0;
        while (select->executeStep()) {
            if (page.items.size() == page_size) {
                page.next = last_id;
                break;
            }
            RowReader row{*select};
            last_id = row.int64();
            page.items.push_back(read_attempt(row));
        }
        return page;
    });
}

std::vector<Delivery> SqliteStore::deliveries_of_event(const std::string& event_uuid)
{
    return impl_->read("list the deliveries of an event", [&] {
        static const std::string sql = "SELECT " + std::string(delivery_columns) + " FROM " +
                                       std::string(delivery_tables) + " WHERE e.uuid = :uuid ORDER BY d.id";
        auto select = impl_->statement(sql);
        select->bind(":uuid", event_uuid);
        std::vector<Delivery> deliveries;
        while (select->executeStep()) {
            RowReader row{*select};
            deliveries.push_back(read_delivery(row));
        }
        return deliveries;
    });
}

Page<Delivery> SqliteStore::list_deliveries(const DeliveryQuery& query)
{
    Conditions where;
    where.add("d.id > :after", ":after", query.after);
    if (query.owner && !query.owner->empty())
        where.add("h.owner = :owner", ":owner", *query.owner);
    if (query.event_type)
        where.add("e.event_type = :event_type", ":event_type", *query.event_type);
    if (query.event_uuid)
        where.add("e.uuid = :event_uuid", ":event_uuid", *query.event_uuid);
    if (query.response_status)
        where.add("d.response_status = :response_status", ":response_status",
                  std::int64_t{*query.response_status});
    if (query.delivered)
        where.add(*query.delivered ? "d.state = :delivered" : "d.state <> :delivered", ":delivered",
                  std::string(to_string(DeliveryState::delivered)));
    if (query.created_from)
        where.add("d.created >= :created_from", ":created_from", to_micros(*query.created_from));
    if (query.created_until)
        where.add("d.created <= :created_until", ":created_until", to_micros(*query.created_until));
    if (query.hook_id)
        where.add("d.hook_id = :hook_id", ":hook_id", *query.hook_id);
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);

    return impl_->read("list deliveries", [&] {
        auto select = impl_->statement("SELECT " + std::string(delivery_columns) + " FROM " +
                                       std::string(delivery_tables) + " WHERE " + where.sql() +
                                       " ORDER BY d.id LIMIT :limit");
        where.bind(*select);
        select->bind(":limit", sql_limit(page_size + 1));
        return read_page<Delivery>(*select, page_size, read_delivery<RowReader>);
    });
}

bool SqliteStore::Impl::requeue(std::int64_t delivery_id, TimePoint due, TimePoint now)
{
    auto upsert = statement(
        "INSERT INTO outbox (delivery_id, hook_id, due_at) SELECT id, hook_id, :due FROM deliveries "
        "WHERE id = :id ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at, "
        "lease_owner = NULL, lease_expires = NULL");
    upsert->bind(":due", to_micros(due));
    upsert->bind(":id", delivery_id);
    if (upsert->exec() == 0)
        return false;
    auto update = statement("UPDATE deliveries SET state = 'pending', next_attempt_at = :due, "
                            "modified = :now WHERE id = :id");
    update->bind(":due", to_micros(due));
    update->bind(":now", to_micros(now));
    update->bind(":id", delivery_id);
    update->exec();
    return true;
}

bool SqliteStore::requeue(std::int64_t delivery_id, TimePoint due)
{
    return impl_->write("requeue a delivery", [&] {
        impl_->forget_walk();
        return impl_->requeue(delivery_id, due, Clock::now());
    });
}

std::size_t SqliteStore::requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until,
                                        TimePoint due, std::size_t limit)
{
    return impl_->write("requeue failed deliveries", [&] {
        impl_->forget_walk();
        std::vector<std::int64_t> failed;
        {
            auto select = impl_->statement(
                "SELECT id FROM deliveries WHERE hook_id = :hook_id AND state = 'failed' "
                "AND created BETWEEN :since AND :until ORDER BY id LIMIT :limit");
            select->bind(":hook_id", hook_id);
            select->bind(":since", to_micros(since));
            select->bind(":until", to_micros(until));
            select->bind(":limit", sql_limit(limit));
            while (select->executeStep())
                failed.push_back(select->getColumn(0).getInt64());
        }
        const TimePoint now = Clock::now();
        for (std::int64_t id : failed)
            impl_->requeue(id, due, now);
        return failed.size();
    });
}

// --- the outbox --------------------------------------------------------------------------------

/// Leases up to `n` claimable rows of `candidate`'s hook, oldest due first, appending them to
/// `claimed` with their due times. Rows leased by an earlier take of the same claim are skipped.
/// Looks one row further: its due time becomes the candidate's `first_due`, for the turns that
/// follow; without one, the candidate is `exhausted`.
void SqliteStore::Impl::take_rows(ClaimCandidate& candidate, std::size_t n, const ClaimRequest& request,
                                  std::vector<std::pair<std::int64_t, ClaimedDelivery>>& claimed)
{
    static const std::string rows_sql =
        "SELECT o.delivery_id, o.due_at, e.uuid, e.event_type, e.body, d.attempt_count, d.created, " +
        std::string(hook_columns) +
        " FROM outbox o JOIN deliveries d ON d.id = o.delivery_id JOIN events e ON e.id = d.event_id"
        " JOIN hooks h ON h.id = o.hook_id WHERE o.hook_id = :hook_id AND " + std::string(claimable) +
        " ORDER BY o.due_at LIMIT :limit";
    const std::size_t first = claimed.size();
    std::string unreadable; // Why the hook's row could not be read, when it could not.
    {
        auto select = statement(rows_sql);
        select->bind(":hook_id", candidate.hook_id);
        select->bind(":now", to_micros(request.now));
        select->bind(":limit", sql_limit(n + 1));
        candidate.exhausted = true;
        while (select->executeStep()) {
            RowReader row{*select};
            ClaimedDelivery delivery;
            delivery.delivery_id = row.int64();
            const std::int64_t due_at = row.int64();
            if (claimed.size() - first == n) {
                candidate.first_due = due_at;
                candidate.exhausted = false;
                break;
            }
            delivery.event_uuid = row.text();
            delivery.event_type = row.text();
            delivery.body = row.text();
            delivery.attempt_count = row.count();
            delivery.created = row.time();
            // The hook's JSON columns are parsed once per claim, not once per row.
            if (!candidate.hook) {
                try {
                    candidate.hook = read_hook(row, box(), request.now);
                } catch (const StoreError& e) { // The row's content, not the machine, is at fault.
                    unreadable = e.what();
                    break;
                }
            }
            delivery.hook = *candidate.hook;
            claimed.emplace_back(due_at, std::move(delivery));
        }
    }
    if (!unreadable.empty()) {
        // A hook that cannot be read (a damaged secret or setting) cannot be sent, but must not
        // stop every other hook's deliveries: it is deactivated with the reason, and its rows
        // wait in the outbox until it is mended and active again.
        candidate.exhausted = true;
        deactivate_hook(candidate.hook_id, "Its stored settings cannot be read: " + unreadable);
        return;
    }
    candidate.taken += claimed.size() - first;

    auto lease = statement("UPDATE outbox SET lease_owner = :worker, lease_expires = :expires WHERE delivery_id = :id");
    lease->bind(":worker", request.worker);
    lease->bind(":expires", to_micros(request.now + request.lease));
    for (std::size_t i = first; i < claimed.size(); ++i) {
        lease->bind(":id", claimed[i].second.delivery_id);
        lease->exec();
        lease->reset();
    }
}

std::int64_t SqliteStore::Impl::data_version()
{
    auto select = statement("PRAGMA data_version");
    return select->executeStep() ? select->getColumn(0).getInt64() : 0;
}

std::vector<ClaimCandidate> SqliteStore::Impl::walk_hooks(TimePoint now)
{
    // Each active hook with rows, and the due time of its oldest claimable one: a seek for a
    // hook, plus its rows in flight for the first claimable, however large its backlog.
    static const std::string candidates_sql =
        std::string(queued_hooks) +
        "SELECT q.hook_id, (SELECT o.due_at FROM outbox o WHERE o.hook_id = q.hook_id AND " +
        std::string(claimable) + " ORDER BY o.due_at LIMIT 1), h.owner, h.target_url"
        " FROM queued q JOIN hooks h ON h.id = q.hook_id WHERE h.is_active = 1";
    std::vector<ClaimCandidate> candidates;
    auto select = statement(candidates_sql);
    select->bind(":now", to_micros(now));
    while (select->executeStep()) {
        if (select->isColumnNull(1))
            continue;
        ClaimCandidate candidate;
        candidate.hook_id = select->getColumn(0).getInt64();
        candidate.first_due = select->getColumn(1).getInt64();
        candidate.owner = select->getColumn(2).getString();
        candidate.origin = target_origin(select->getColumn(3).getString());
        candidates.push_back(std::move(candidate));
    }
    return candidates;
}

void SqliteStore::Impl::take_turns(std::vector<ClaimCandidate>& candidates, const ClaimRequest& request,
                                   const std::function<std::size_t(std::int64_t)>& limit_of,
                                   std::map<std::int64_t, std::size_t>& taken, GroupRoom& room,
                                   std::vector<std::pair<std::int64_t, ClaimedDelivery>>& claimed)
{
    // Takes up to `n` rows of `candidate`, within what its owner and origin have left.
    const auto take = [&](ClaimCandidate& candidate, std::size_t n) {
        n = std::min(n, room.left(candidate));
        if (n == 0)
            return;
        const std::size_t before = candidate.taken;
        take_rows(candidate, n, request, claimed);
        room.took(candidate, candidate.taken - before);
    };
    std::vector<ClaimCandidate*> turns;
    for (ClaimCandidate& candidate : candidates) {
        const std::size_t limit = limit_of(candidate.hook_id);
        const std::size_t already = taken[candidate.hook_id];
        candidate.limit = limit > already ? limit - already : 0;
        candidate.taken = 0;
        if (candidate.limit > 0 && !candidate.exhausted && room.left(candidate) > 0)
            turns.push_back(&candidate);
    }
    if (turns.empty() || claimed.size() >= request.limit)
        return;
    // The hooks waiting longest go first. Every hook gets an equal share first (at least
    // `min_share`), then the room left goes to those with more rows, so that one hook's backlog
    // does not take a claim that others have rows for.
    std::sort(turns.begin(), turns.end(), [](const ClaimCandidate* a, const ClaimCandidate* b) {
        return std::tie(a->first_due, a->hook_id) < std::tie(b->first_due, b->hook_id);
    });
    const std::size_t share =
        std::max({std::size_t{1}, request.min_share, (request.limit - claimed.size()) / turns.size()});
    for (ClaimCandidate* candidate : turns) {
        if (claimed.size() >= request.limit)
            break;
        take(*candidate, std::min({candidate->limit, share, request.limit - claimed.size()}));
    }
    for (ClaimCandidate* candidate : turns) {
        if (claimed.size() >= request.limit)
            break;
        if (candidate->taken == 0 || candidate->exhausted || candidate->taken >= candidate->limit)
            continue;
        take(*candidate, std::min(candidate->limit - candidate->taken, request.limit - claimed.size()));
    }
    for (ClaimCandidate* candidate : turns)
        taken[candidate->hook_id] += candidate->taken;
}

std::vector<ClaimedDelivery> SqliteStore::claim_due(const ClaimRequest& request)
{
    if (request.limit == 0)
        return {};
    std::map<std::int64_t, std::size_t> own_limits;
    for (const HookClaimLimit& entry : request.hook_limits)
        own_limits[entry.hook_id] = entry.limit;
    const std::function<std::size_t(std::int64_t)> limit_of = [&](std::int64_t hook_id) {
        auto found = own_limits.find(hook_id);
        return found == own_limits.end() ? request.per_hook_limit : found->second;
    };

    return impl_->write("claim due deliveries", [&] {
        // Finding the hooks waiting longest means visiting every hook with rows: 2 ms for a
        // thousand. A full claim leaves most of them for the next, so the next claims start
        // from this walk, each hook at its next row's due time, as long as nobody else wrote
        // (data_version), this connection wrote no rows or hooks the walk does not know of
        // (forget_walk), and the walk is recent. A claim the walk cannot fill walks again, so
        // a row that fell due or was freed since waits only while claims are full anyway.
        const std::int64_t now = to_micros(request.now);
        const std::int64_t version = impl_->data_version();
        ClaimWalk& walk = impl_->walk_;
        const bool reuse = walk.valid && walk.data_version == version && now >= walk.now &&
                           now - walk.now <= max_walk_age_us;
        std::vector<ClaimCandidate> hooks = reuse ? std::move(walk.hooks) : impl_->walk_hooks(request.now);
        walk.valid = false;
        if (!reuse)
            walk.now = now;
        std::map<std::int64_t, std::size_t> taken;
        GroupRoom room(request);
        std::vector<std::pair<std::int64_t, ClaimedDelivery>> claimed; // due_at, delivery
        impl_->take_turns(hooks, request, limit_of, taken, room, claimed);
        if (reuse && claimed.size() < request.limit) {
            hooks = impl_->walk_hooks(request.now);
            walk.now = now;
            impl_->take_turns(hooks, request, limit_of, taken, room, claimed);
        }
        walk.hooks.clear();
        for (ClaimCandidate& candidate : hooks) {
            if (candidate.exhausted)
                continue;
            candidate.hook.reset(); // Parsed for this claim; the next one reads the hook again.
            walk.hooks.push_back(std::move(candidate));
        }
        walk.data_version = version;
        walk.valid = true;

        std::stable_sort(claimed.begin(), claimed.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        std::vector<ClaimedDelivery> deliveries;
        deliveries.reserve(claimed.size());
        for (auto& entry : claimed)
            deliveries.push_back(std::move(entry.second));
        return deliveries;
    });
}

void SqliteStore::renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids,
                               TimePoint until)
{
    impl_->write("renew leases", [&] {
        auto renew = impl_->statement(
            "UPDATE outbox SET lease_expires = :until WHERE delivery_id = :id AND lease_owner = :worker");
        renew->bind(":until", to_micros(until));
        renew->bind(":worker", worker);
        for (std::int64_t id : delivery_ids) {
            renew->bind(":id", id);
            renew->exec();
            renew->reset();
        }
    });
}

void SqliteStore::release_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids)
{
    impl_->write("release leases", [&] {
        impl_->forget_walk();
        auto release = impl_->statement("UPDATE outbox SET lease_owner = NULL, lease_expires = NULL "
                                        "WHERE delivery_id = :id AND lease_owner = :worker");
        release->bind(":worker", worker);
        for (std::int64_t id : delivery_ids) {
            release->bind(":id", id);
            release->exec();
            release->reset();
        }
    });
}

bool SqliteStore::Impl::update_delivery(const AttemptRecord& record, DeliveryState state,
                                        std::optional<TimePoint> next_attempt_at, TimePoint now)
{
    const Attempt& attempt = record.attempt;
    // MAX: a late report of an earlier attempt must not make the count go back.
    auto update = statement(
        "UPDATE deliveries SET state = :state, attempt_count = MAX(attempt_count, :number), "
        "response_status = :status, response_body = :body, response_time_us = :duration, "
        "last_failure = :failure, last_error = :error, next_attempt_at = :next, modified = :now "
        "WHERE id = :id");
    update->bind(":state", std::string(to_string(state)));
    update->bind(":number", std::int64_t{attempt.number});
    update->bind(":status", attempt.response_status);
    update->bind(":body", std::string(capped(attempt.response_body, options_.response_body_limit)));
    update->bind(":duration", static_cast<std::int64_t>(attempt.duration.count()));
    update->bind(":failure", std::string(to_string(attempt.failure)));
    update->bind(":error", attempt.error);
    if (next_attempt_at)
        update->bind(":next", to_micros(*next_attempt_at));
    update->bind(":now", to_micros(now));
    update->bind(":id", record.delivery_id);
    return update->exec() > 0;
}

void SqliteStore::Impl::remove_from_outbox(std::int64_t delivery_id)
{
    auto remove = statement("DELETE FROM outbox WHERE delivery_id = :id");
    remove->bind(":id", delivery_id);
    remove->exec();
}

void SqliteStore::Impl::record(const AttemptRecord& record, TimePoint now)
{
    if (record.verdict == AttemptVerdict::delivered) {
        // A success counts even when the lease was lost meanwhile: the receiver has the event.
        // A delivery removed by retention has nowhere to keep the attempt; failing the whole
        // batch for it would lose the others' outcomes.
        if (!update_delivery(record, DeliveryState::delivered, std::nullopt, now))
            return;
        insert_attempt(record);
        record_health(record);
        remove_from_outbox(record.delivery_id);
        return;
    }
    // The verdict applies when this worker holds the lease, or when nobody does (an attempt made
    // outside the workers: a synchronous delivery or a manual retry).
    bool verdict_applies = false;
    {
        auto lookup = statement("SELECT o.delivery_id IS NOT NULL, o.lease_owner FROM deliveries d "
                                "LEFT JOIN outbox o ON o.delivery_id = d.id WHERE d.id = :id");
        lookup->bind(":id", record.delivery_id);
        if (!lookup->executeStep())
            return;
        const bool queued = lookup->getColumn(0).getInt() != 0;
        verdict_applies =
            queued && (lookup->isColumnNull(1) || lookup->getColumn(1).getString() == record.worker);
    }
    insert_attempt(record);
    record_health(record);
    if (!verdict_applies)
        return;
    if (record.verdict == AttemptVerdict::retry) {
        forget_walk(); // The row is due again, maybe before every row the walk knows of.
        const TimePoint due = record.next_attempt_at.value_or(now);
        update_delivery(record, DeliveryState::pending, due, now);
        auto reschedule = statement("UPDATE outbox SET due_at = :due, lease_owner = NULL, "
                                    "lease_expires = NULL WHERE delivery_id = :id");
        reschedule->bind(":due", to_micros(due));
        reschedule->bind(":id", record.delivery_id);
        reschedule->exec();
        return;
    }
    update_delivery(record, DeliveryState::failed, std::nullopt, now);
    remove_from_outbox(record.delivery_id);
}

void SqliteStore::Impl::insert_attempt(const AttemptRecord& record)
{
    const Attempt& attempt = record.attempt;
    auto insert = statement(
        "INSERT INTO attempts (delivery_id, number, started_at, duration_us, response_status, "
        "response_body, failure, error, trigger) VALUES (:id, :number, :started_at, :duration, :status, "
        ":body, :failure, :error, :trigger)");
    insert->bind(":id", record.delivery_id);
    insert->bind(":number", std::int64_t{attempt.number});
    insert->bind(":started_at", to_micros(attempt.started_at));
    insert->bind(":duration", static_cast<std::int64_t>(attempt.duration.count()));
    insert->bind(":status", attempt.response_status);
    insert->bind(":body", std::string(capped(attempt.response_body, options_.response_body_limit)));
    insert->bind(":failure", std::string(to_string(attempt.failure)));
    insert->bindNoCopy(":error", attempt.error);
    insert->bind(":trigger", std::string(to_string(attempt.trigger)));
    insert->exec();
    // Numbers grow by one per attempt: below the cap there is nothing to delete, and the usual
    // recording pays nothing for it.
    if (attempt.number > options_.max_attempts_kept) {
        auto prune = statement("DELETE FROM attempts WHERE id IN (SELECT id FROM attempts WHERE delivery_id = :id "
                               "ORDER BY id DESC LIMIT -1 OFFSET :kept)");
        prune->bind(":id", record.delivery_id);
        prune->bind(":kept", sql_limit(options_.max_attempts_kept));
        prune->exec();
    }
}

void SqliteStore::Impl::record_health(const AttemptRecord& record)
{
    // A success of a healthy hook changes nothing: leave its row (and its page) unwritten.
    static constexpr std::string_view set_health =
        "UPDATE hooks SET "
        "failing_since = CASE WHEN :failed THEN COALESCE(failing_since, :started_at) ELSE NULL END, "
        "failed_attempts = CASE WHEN :failed THEN failed_attempts + 1 ELSE 0 END "
        "WHERE (:failed OR failing_since IS NOT NULL OR failed_attempts <> 0) AND id = ";
    static const std::string by_hook = std::string(set_health) + ":hook_id";
    static const std::string by_delivery =
        std::string(set_health) + "(SELECT hook_id FROM deliveries WHERE id = :id)";
    auto update = statement(record.hook_id != 0 ? by_hook : by_delivery);
    update->bind(":failed", record.attempt.succeeded() ? 0 : 1);
    update->bind(":started_at", to_micros(record.attempt.started_at));
    if (record.hook_id != 0)
        update->bind(":hook_id", record.hook_id);
    else
        update->bind(":id", record.delivery_id);
    update->exec();
}

void SqliteStore::record_attempts(std::span<const AttemptRecord> records)
{
    impl_->write("record attempts", [&] {
        const TimePoint now = Clock::now();
        for (const AttemptRecord& record : records)
            impl_->record(record, now);
    });
}

std::optional<TimePoint> SqliteStore::next_due()
{
    return impl_->read("find the next due delivery", [&] {
        std::optional<std::int64_t> next;
        auto consider = [&](LentStatement select) {
            if (select->executeStep() && !select->isColumnNull(0)) {
                const std::int64_t at = select->getColumn(0).getInt64();
                next = next ? std::min(*next, at) : at;
            }
        };
        // Each active hook's first unleased row: rows of inactive hooks are never claimed, so they
        // must not wake anyone, nor be read through.
        static const std::string unleased_sql =
            std::string(queued_hooks) +
            "SELECT MIN((SELECT o.due_at FROM outbox o WHERE o.hook_id = q.hook_id AND o.lease_expires IS NULL"
            " ORDER BY o.due_at LIMIT 1)) FROM queued q JOIN hooks h ON h.id = q.hook_id WHERE h.is_active = 1";
        consider(impl_->statement(unleased_sql));
        // Leased rows are the ones in flight: few, and covered by a partial index.
        consider(impl_->statement("SELECT MIN(MAX(due_at, lease_expires)) FROM outbox "
                                  "WHERE lease_expires IS NOT NULL"));
        return next ? std::optional{from_micros(*next)} : std::nullopt;
    });
}

Page<OutboxEntry> SqliteStore::list_outbox(const OutboxQuery& query)
{
    Conditions where;
    where.add("o.delivery_id > :after", ":after", query.after);
    if (query.owner && !query.owner->empty())
        where.add("h.owner = :owner", ":owner", *query.owner);
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);

    return impl_->read("list the outbox", [&] {
        auto select = impl_->statement(
            "SELECT " + std::string(outbox_entry_columns) + " FROM " + std::string(delivery_tables) +
            " JOIN outbox o ON o.delivery_id = d.id WHERE " + where.sql() +
            " ORDER BY o.delivery_id LIMIT :limit");
        where.bind(*select);
        select->bind(":limit", sql_limit(page_size + 1));
        return read_page<OutboxEntry>(*select, page_size, read_outbox_entry<RowReader>);
    });
}

// --- API tokens --------------------------------------------------------------------------------

namespace {

// Both read the columns `read_token` expects.
const std::string select_token_by_key =
    "SELECT " + std::string(token_columns) + " FROM tokens WHERE key_sha256 = :key";
const std::string select_tokens = "SELECT " + std::string(token_columns) + " FROM tokens ORDER BY id";

void bind_optional_time(SQLite::Statement& statement, const char* name, std::optional<TimePoint> t)
{
    if (t)
        statement.bind(name, to_micros(*t));
    else
        statement.bind(name);
}

} // namespace

std::int64_t SqliteStore::add_token(const std::string& key_sha256, const ApiToken& token)
{
    return impl_->write("add a token", [&] {
        auto upsert = impl_->statement(
            "INSERT INTO tokens (key_sha256, owner, admin, publisher, created, expires, last_used) "
            "VALUES (:key, :owner, :admin, :publisher, :created, :expires, :last_used) "
            "ON CONFLICT (key_sha256) DO UPDATE SET owner = excluded.owner, admin = excluded.admin, "
            "publisher = excluded.publisher, created = excluded.created, expires = excluded.expires, "
            "last_used = excluded.last_used RETURNING id");
        upsert->bind(":key", key_sha256);
        upsert->bind(":owner", token.owner);
        upsert->bind(":admin", token.admin ? 1 : 0);
        upsert->bind(":publisher", token.publisher ? 1 : 0);
        upsert->bind(":created", to_micros(token.created));
        bind_optional_time(*upsert, ":expires", token.expires);
        bind_optional_time(*upsert, ":last_used", token.last_used);
        if (!upsert->executeStep())
            throw StoreError("SQLite store: adding a token returned no id");
        return upsert->getColumn(0).getInt64();
    });
}

std::optional<ApiToken> SqliteStore::find_token(const std::string& key_sha256)
{
    return impl_->read("find a token", [&]() -> std::optional<ApiToken> {
        auto select = impl_->statement(select_token_by_key);
        select->bind(":key", key_sha256);
        if (!select->executeStep())
            return std::nullopt;
        RowReader row{*select};
        return read_token(row);
    });
}

std::vector<ApiToken> SqliteStore::list_tokens()
{
    return impl_->read("list tokens", [&] {
        auto select = impl_->statement(select_tokens);
        std::vector<ApiToken> tokens;
        while (select->executeStep()) {
            RowReader row{*select};
            tokens.push_back(read_token(row));
        }
        return tokens;
    });
}

bool SqliteStore::revoke_token(std::int64_t id)
{
    return impl_->write("revoke a token", [&] {
        auto remove = impl_->statement("DELETE FROM tokens WHERE id = :id");
        remove->bind(":id", id);
        return remove->exec() > 0;
    });
}

void SqliteStore::record_token_use(std::int64_t id, TimePoint at)
{
    impl_->write("record a token's use", [&] {
        auto touch = impl_->statement(
            "UPDATE tokens SET last_used = :at WHERE id = :id AND (last_used IS NULL OR last_used < :at)");
        touch->bind(":at", to_micros(at));
        touch->bind(":id", id);
        touch->exec();
    });
}

// --- retention ---------------------------------------------------------------------------------

std::size_t SqliteStore::delete_finished_before(TimePoint before, std::size_t limit)
{
    return impl_->write("delete finished deliveries", [&] {
        // `state <> 'pending'` exactly as the partial index deliveries_finished says it.
        auto remove_deliveries = impl_->statement(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries "
            "WHERE state <> 'pending' AND created < :before ORDER BY created LIMIT :limit)");
        remove_deliveries->bind(":before", to_micros(before));
        remove_deliveries->bind(":limit", sql_limit(limit));
        const auto removed = static_cast<std::size_t>(remove_deliveries->exec());

        // A delivery is never older than its event, so every event this leaves without
        // deliveries was created before `before` too.
        auto remove_events = impl_->statement(
            "DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created < :before "
            "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id))");
        remove_events->bind(":before", to_micros(before));
        remove_events->exec();

        // Deleted and disabled hooks count against their owner's limit until they go here.
        auto remove_hooks = impl_->statement(
            "DELETE FROM hooks WHERE id IN (SELECT h.id FROM hooks h WHERE h.is_active = 0 AND h.modified < :before "
            "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.hook_id = h.id) LIMIT :limit)");
        remove_hooks->bind(":before", to_micros(before));
        remove_hooks->bind(":limit", sql_limit(limit));
        remove_hooks->exec();
        return removed;
    });
}

} // namespace whisperer
