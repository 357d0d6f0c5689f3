// PostgresStore: opening, hooks, API tokens and retention. The outbox (events, deliveries,
// claims and attempts) is in postgres_outbox.cpp.
#include "postgres/postgres_store_impl.hpp"

#include "postgres/postgres_schema.hpp"

#include <whisperer/error.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/signature.hpp>

#include <algorithm>

namespace whisperer {

using namespace detail;

namespace {

constexpr std::size_t max_page_size = 1000;

std::string already_registered_message(const Hook& hook)
{
    return "An active webhook of '" + hook.owner + "' already sends '" + hook.event_type + "' events to " +
           hook.target_url + ".";
}

std::string too_many_hooks_message(const std::string& owner, std::size_t limit)
{
    return "'" + owner + "' already has " + std::to_string(limit) +
           " webhooks, active or deleted, the most allowed; re-use an inactive one "
           "(PUT or PATCH) or wait until retention removes deleted ones.";
}

std::string limit_param(std::size_t n)
{
    return std::to_string(std::min<std::size_t>(n, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

/// The parameters of every hook column a caller may set, `$2` to `$12` after the id, from `hook`
/// as it is to be stored (see `stored_form`).
PostgresParams hook_params(const Hook& hook)
{
    return {pg_param(hook.id),
            hook.owner,
            hook.target_url,
            hook.event_type,
            pg_param(hook.is_active),
            hook.secret_key,
            hook.callback,
            boost::json::serialize(hook.retry_countdown_config),
            boost::json::serialize(hook.additional_headers),
            boost::json::serialize(hook.config),
            hook.disabled_reason,
            pg_param(hook.disabled_at)};
}

/// An advisory lock, for the transaction, on the hooks of one owner: writers that count them
/// (the per-owner limit) take turns.
constexpr std::string_view lock_owner = "SELECT pg_advisory_xact_lock(hashtext('whisperer.hooks.' || $1))";

} // namespace

bool is_unique_violation(const StoreError& error, std::string_view name)
{
    const std::string_view message = error.what();
    return message.find("(SQLSTATE 23505)") != std::string_view::npos && message.find(name) != std::string_view::npos;
}

// --- opening ------------------------------------------------------------------------------------

PostgresStore::Impl::Impl(const std::string& conninfo, PostgresOptions options)
    : conninfo_(conninfo), redacted_(redact_postgres_conninfo(conninfo)), schema_(options.schema),
      quoted_schema_(quote_postgres_identifier(options.schema)), options_(std::move(options)),
      pool_(conninfo, std::max<std::size_t>(options_.connections, 1))
{
    if (options_.max_attempts_kept == 0)
        options_.max_attempts_kept = 1;
    if (options_.master_key)
        box_.emplace(*options_.master_key);
    {
        auto lease = pool_.acquire(options_.timeout);
        open_postgres_schema(lease.get(), schema_);
    }
    check_master_key();
}

std::string PostgresStore::Impl::sql(std::string_view statement) const
{
    return in_postgres_schema(statement, quoted_schema_);
}

std::vector<PostgresResult> PostgresStore::Impl::run(std::string_view what, PostgresBatch& batch, bool transaction)
{
    auto lease = pool_.acquire(options_.timeout);
    try {
        return batch.run(lease.get(), options_.timeout, transaction);
    } catch (const StoreError& e) {
        PGconn* conn = lease.get();
        if (PQstatus(conn) != CONNECTION_OK || PQpipelineStatus(conn) != PQ_PIPELINE_OFF ||
            PQtransactionStatus(conn) != PQTRANS_IDLE)
            lease.discard();
        std::string_view reason = e.what();
        if (reason.starts_with("PostgreSQL store: "))
            reason.remove_prefix(18);
        throw StoreError("PostgreSQL store: cannot " + std::string(what) + ": " + std::string(reason));
    }
}

PostgresResult PostgresStore::Impl::query(std::string_view what, std::string statement, PostgresParams params)
{
    PostgresBatch batch;
    batch.add(std::move(statement), std::move(params));
    return std::move(run(what, batch, false).front());
}

void PostgresStore::Impl::check_master_key()
{
    PostgresResult stored = query("read the master key's check value",
                                  sql("SELECT key_check FROM @schema.master_key WHERE id = 1"));
    if (stored.rows() == 1) {
        if (!box_)
            throw StoreError("PostgreSQL store: schema '" + schema_ +
                             "' stores hook secrets encrypted; open it with its master key "
                             "(PostgresOptions::master_key, whisperer-server --secret-key-file)");
        if (!constant_time_equal(stored.text(0, 0), box_->key_check()))
            throw StoreError("PostgreSQL store: schema '" + schema_ +
                             "' was encrypted with another master key; refusing to open it with this one");
    }
    if (!box_)
        return;
    // Seals what is still in clear (hooks written without a key), under a lock so that processes
    // opening together do it once.
    auto lease = pool_.acquire(options_.timeout);
    PostgresSession session{lease.get()};
    session.transaction([&] {
        session.query(sql("LOCK TABLE @schema.master_key IN EXCLUSIVE MODE"));
        PostgresResult check = session.query(sql("SELECT key_check FROM @schema.master_key WHERE id = 1"));
        if (check.rows() == 1 && !constant_time_equal(check.text(0, 0), box_->key_check()))
            throw StoreError("PostgreSQL store: schema '" + schema_ +
                             "' was encrypted with another master key; refusing to open it with this one");
        if (check.rows() == 0)
            session.query(sql("INSERT INTO @schema.master_key (id, key_check, created, sealing) VALUES (1, $1, $2, 2)"),
                          {box_->key_check(), pg_param(Clock::now())});
        reseal(session, [&](const std::string& field, std::int64_t hook_id, const std::string& value,
                            bool&) -> std::optional<std::string> {
            if (SecretBox::is_sealed(value))
                return std::nullopt;
            return box_->seal(value, credential_binding(hook_id, field));
        });
    });
}

RekeyResult PostgresStore::Impl::reseal(PostgresSession& session, const Convert& convert)
{
    RekeyResult result;
    PostgresResult hooks = session.query(sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h FOR UPDATE"));
    for (int i = 0; i < hooks.rows(); ++i) {
        PostgresRow row{hooks, i};
        Hook hook = read_stored_hook(row, TimePoint{});
        std::size_t changed = 0;
        bool unreadable = false;
        visit_credentials(hook, [&](const std::string& field, auto& value) {
            if (value.empty())
                return;
            if (auto sealed = convert(field, hook.id, std::string(value), unreadable)) {
                value = *sealed;
                ++changed;
            }
        });
        if (unreadable)
            result.unreadable_hooks.push_back(hook.id);
        if (changed == 0 || unreadable)
            continue;
        session.query(sql("UPDATE @schema.hooks SET secret_key = $2, retired_secrets = $3, additional_headers = $4, "
                          "config = $5 WHERE id = $1"),
                      {pg_param(hook.id), hook.secret_key, retired_secrets_text(hook.retired_secrets),
                       boost::json::serialize(hook.additional_headers), boost::json::serialize(hook.config)});
        ++result.hooks;
        result.values += changed;
    }
    return result;
}

RekeyResult PostgresStore::rekey(const MasterKey& new_key)
{
    Impl& impl = *impl_;
    if (!impl.box_)
        throw StoreError("PostgreSQL store: rekey needs the store opened with its current master key");
    const SecretBox to{new_key};
    if (to.key_check() == impl.box_->key_check())
        throw StoreError("PostgreSQL store: the new master key is the current one");
    auto lease = impl.pool_.acquire(impl.options_.timeout);
    PostgresSession session{lease.get()};
    RekeyResult result;
    session.transaction([&] {
        session.query(impl.sql("LOCK TABLE @schema.master_key IN EXCLUSIVE MODE"));
        PostgresResult check = session.query(impl.sql("SELECT key_check FROM @schema.master_key WHERE id = 1"));
        if (check.rows() != 1 || !constant_time_equal(check.text(0, 0), impl.box_->key_check()))
            throw StoreError("PostgreSQL store: schema '" + impl.schema_ +
                             "' is not sealed with this store's key (another process replaced it?); nothing changed");
        result = impl.reseal(session, [&](const std::string& field, std::int64_t hook_id,
                                          const std::string& stored, bool& unreadable) -> std::optional<std::string> {
            const std::string binding = credential_binding(hook_id, field);
            if (!SecretBox::is_sealed(stored))
                return to.seal(stored, binding);
            auto value = impl.box_->open(stored, binding);
            if (!value) {
                unreadable = true;
                return std::nullopt;
            }
            return to.seal(*value, binding);
        });
        session.query(impl.sql("UPDATE @schema.master_key SET key_check = $1 WHERE id = 1"), {to.key_check()});
    });
    impl.box_.emplace(new_key);
    return result;
}

std::vector<Subscriber> PostgresStore::Impl::subscribers(const std::string& event_type)
{
    PostgresResult generation =
        query("read the hook generation", sql("SELECT n FROM @schema.generations WHERE name = 'hooks'"));
    const std::int64_t now_generation = generation.integer(0, 0);
    std::lock_guard lock{cache_mutex_};
    if (now_generation != cached_generation_) {
        // Read after the generation: at least as new as it, so the cache is never older than
        // the number it is kept under.
        PostgresResult active = query("read the active hooks",
                                      sql("SELECT id, owner, event_type, config FROM @schema.hooks "
                                          "WHERE is_active ORDER BY id"));
        std::map<std::string, std::vector<Subscriber>, std::less<>> fresh;
        for (int i = 0; i < active.rows(); ++i) {
            PostgresRow row{active, i};
            Subscriber subscriber;
            subscriber.hook_id = row.int64();
            subscriber.owner = row.text();
            std::string type = row.text();
            try {
                subscriber.config = row.object();
            } catch (const StoreError&) {
                continue; // Unreadable settings: the claim that meets its rows deactivates it.
            }
            fresh[type].push_back(std::move(subscriber));
        }
        cache_ = std::move(fresh);
        cached_generation_ = now_generation;
    }
    auto found = cache_.find(event_type);
    return found == cache_.end() ? std::vector<Subscriber>{} : found->second;
}

PostgresStore::PostgresStore(const std::string& conninfo, PostgresOptions options)
    : impl_(std::make_unique<Impl>(conninfo, std::move(options)))
{
}

PostgresStore::~PostgresStore() = default;

int PostgresStore::schema_version() noexcept
{
    return static_cast<int>(postgres_migrations().size());
}

const std::string& PostgresStore::redacted_conninfo() const noexcept
{
    return impl_->redacted_;
}

const std::string& PostgresStore::schema() const noexcept
{
    return impl_->schema_;
}

// --- hooks -------------------------------------------------------------------------------------

Hook PostgresStore::create_hook(const Hook& hook)
{
    Hook created = hook;
    created.retired_secrets.clear();
    created.created = created.modified = stored_time(Clock::now());
    // The id is chosen first, since sealed credentials are bound to it.
    created.id = impl_->query("choose a hook id", "SELECT nextval(pg_get_serial_sequence($1, 'id'))",
                              {impl_->quoted_schema_ + ".hooks"})
                     .integer(0, 0);
    PostgresParams params = hook_params(stored_form(created, impl_->box()));
    params.push_back(pg_param(created.created));
    params.push_back(limit_param(impl_->options_.max_hooks_per_owner));
    PostgresBatch batch;
    batch.add(std::string(lock_owner), {created.owner});
    // Inactive hooks count too: they stay until retention removes them.
    batch.add(impl_->sql("INSERT INTO @schema.hooks (id, owner, target_url, event_type, is_active, secret_key, "
                         "callback, retry_countdown_config, additional_headers, config, disabled_reason, "
                         "disabled_at, created, modified) "
                         "SELECT $1::bigint, $2, $3, $4, $5::boolean, $6, $7, $8, $9, $10, $11, $12::bigint, $13::bigint, $13::bigint "
                         "WHERE $14::bigint = 0 OR (SELECT count(*) FROM @schema.hooks WHERE owner = $2) < $14 "
                         "RETURNING id"),
              std::move(params));
    try {
        if (impl_->run("create a hook", batch)[1].rows() == 0)
            throw TooManyHooks(too_many_hooks_message(created.owner, impl_->options_.max_hooks_per_owner));
    } catch (const StoreError& e) {
        if (is_unique_violation(e, "hooks_active_subscription"))
            throw WebhookAlreadyRegistered(already_registered_message(created));
        throw;
    }
    return created;
}

std::optional<Hook> PostgresStore::find_hook(std::int64_t id)
{
    PostgresResult found = impl_->query(
        "find a hook", impl_->sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h WHERE h.id = $1"),
        {pg_param(id)});
    if (found.rows() == 0)
        return std::nullopt;
    PostgresRow row{found, 0};
    return read_hook(row, impl_->box(), Clock::now());
}

Hook PostgresStore::update_hook(const Hook& hook)
{
    Hook written = hook;
    if (written.is_active) {
        written.disabled_reason.clear();
        written.disabled_at.reset();
    }
    PostgresParams params = hook_params(stored_form(written, impl_->box()));
    params.push_back(pg_param(Clock::now()));
    params.push_back(limit_param(impl_->options_.max_hooks_per_owner));
    PostgresBatch batch;
    batch.add(std::string(lock_owner), {hook.owner});
    // Every hook counts against its owner's limit, active or not: only a move needs room.
    // Re-activation starts the hook afresh: no disabled reason, no run of failures.
    batch.add(impl_->sql("UPDATE @schema.hooks AS h SET owner = $2, target_url = $3, event_type = $4, "
                         "is_active = $5, secret_key = $6, callback = $7, retry_countdown_config = $8, "
                         "additional_headers = $9, config = $10, disabled_reason = $11, disabled_at = $12, "
                         "modified = $13, "
                         "failing_since = CASE WHEN $5 AND NOT h.is_active THEN NULL ELSE h.failing_since END, "
                         "failed_attempts = CASE WHEN $5 AND NOT h.is_active THEN 0 ELSE h.failed_attempts END "
                         "WHERE h.id = $1 AND (h.owner = $2 OR $14::bigint = 0 OR "
                         "(SELECT count(*) FROM @schema.hooks o WHERE o.owner = $2) < $14) "
                         "RETURNING " +
                         std::string(hook_columns)),
              std::move(params));
    batch.add(impl_->sql("SELECT 1 FROM @schema.hooks WHERE id = $1"), {pg_param(hook.id)});
    std::vector<PostgresResult> results;
    try {
        results = impl_->run("update a hook", batch);
    } catch (const StoreError& e) {
        if (is_unique_violation(e, "hooks_active_subscription"))
            throw WebhookAlreadyRegistered(already_registered_message(hook));
        throw;
    }
    if (results[1].rows() == 0) {
        if (results[2].rows() == 0)
            throw WebhookDoesNotExist("Webhook " + std::to_string(hook.id) + " does not exist.");
        throw TooManyHooks(too_many_hooks_message(hook.owner, impl_->options_.max_hooks_per_owner));
    }
    PostgresRow row{results[1], 0};
    return read_hook(row, impl_->box(), Clock::now());
}

bool PostgresStore::deactivate_hook(std::int64_t id, const std::string& reason)
{
    return impl_
               ->query("deactivate a hook",
                       impl_->sql("UPDATE @schema.hooks SET is_active = false, modified = $2, disabled_reason = $3, "
                                  "disabled_at = CASE WHEN $3 = '' THEN NULL ELSE $2::bigint END WHERE id = $1 "
                                  "RETURNING id"),
                       {pg_param(id), pg_param(Clock::now()), reason})
               .rows() > 0;
}

Hook PostgresStore::rotate_secret(std::int64_t id, const SecretRotation& rotation)
{
    validate_grace_period(rotation.grace_period);
    const std::string new_secret = rotation.new_secret.empty() ? generate_secret() : rotation.new_secret;
    const TimePoint now = stored_time(Clock::now());
    const TimePoint at = stored_time(rotation.now.value_or(now));
    auto lease = impl_->pool_.acquire(impl_->options_.timeout);
    PostgresSession session{lease.get()};
    Hook rotated;
    try {
        session.transaction([&] {
            PostgresResult found = session.query(
                impl_->sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h WHERE h.id = $1 FOR UPDATE"),
                {pg_param(id)});
            if (found.rows() == 0)
                throw WebhookDoesNotExist("Webhook " + std::to_string(id) + " does not exist.");
            PostgresRow row{found, 0};
            rotated = read_hook(row, impl_->box(), at);
            apply_rotation(rotated, new_secret, rotation.grace_period, at);
            rotated.modified = now;
            const Hook stored = stored_form(rotated, impl_->box());
            session.query(impl_->sql("UPDATE @schema.hooks SET secret_key = $2, retired_secrets = $3, modified = $4 "
                                     "WHERE id = $1"),
                          {pg_param(id), stored.secret_key, retired_secrets_text(stored.retired_secrets),
                           pg_param(now)});
        });
    } catch (const StoreError&) {
        if (PQstatus(lease.get()) != CONNECTION_OK)
            lease.discard();
        throw;
    }
    return rotated;
}

Page<Hook> PostgresStore::list_hooks(const HookQuery& query)
{
    PostgresConditions where;
    where.add("h.id > $?", pg_param(query.after));
    if (query.owner && !query.owner->empty())
        where.add("h.owner = $?", *query.owner);
    if (query.target_url)
        where.add("h.target_url = $?", *query.target_url);
    if (query.event_type)
        where.add("h.event_type = $?", *query.event_type);
    if (query.is_active)
        where.add("h.is_active = $?", pg_param(*query.is_active));
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);
    const std::string limit = where.next(std::to_string(page_size + 1));
    PostgresResult rows = impl_->query("list hooks",
                                       impl_->sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h WHERE " +
                                                  where.sql() + " ORDER BY h.id LIMIT " + limit),
                                       where.params());
    Page<Hook> page;
    const TimePoint now = Clock::now();
    for (int i = 0; i < rows.rows() && page.items.size() < page_size; ++i) {
        PostgresRow row{rows, i};
        page.items.push_back(read_hook(row, impl_->box(), now));
    }
    if (static_cast<std::size_t>(rows.rows()) > page_size)
        page.next = page.items.back().id;
    return page;
}

std::vector<Hook> PostgresStore::active_hooks(const std::string& event_type, const boost::json::object& config_filter,
                                              const std::vector<std::string>& owners)
{
    PostgresResult rows =
        impl_->query("list active hooks",
                     impl_->sql("SELECT " + std::string(hook_columns) +
                                " FROM @schema.hooks h WHERE h.is_active AND h.event_type = $1 ORDER BY h.id"),
                     {event_type});
    std::vector<Hook> hooks;
    const TimePoint now = Clock::now();
    for (int i = 0; i < rows.rows(); ++i) {
        PostgresRow row{rows, i};
        Hook hook = read_hook(row, impl_->box(), now);
        if (owner_matches(hook.owner, owners) && config_matches(hook.config, config_filter))
            hooks.push_back(std::move(hook));
    }
    return hooks;
}

std::vector<std::int64_t> PostgresStore::subscriber_ids(const std::string& event_type,
                                                        const boost::json::object& config_filter,
                                                        const std::vector<std::string>& owners)
{
    std::vector<std::int64_t> ids;
    for (const Subscriber& subscriber : impl_->subscribers(event_type))
        if (owner_matches(subscriber.owner, owners) && config_matches(subscriber.config, config_filter))
            ids.push_back(subscriber.hook_id);
    return ids;
}

// --- API tokens --------------------------------------------------------------------------------

std::int64_t PostgresStore::add_token(const std::string& key_sha256, const ApiToken& token)
{
    return impl_
        ->query("add a token",
                impl_->sql("INSERT INTO @schema.tokens (key_sha256, owner, admin, publisher, created, expires, last_used) "
                           "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key_sha256) DO UPDATE SET "
                           "owner = excluded.owner, admin = excluded.admin, publisher = excluded.publisher, "
                           "created = excluded.created, expires = excluded.expires, last_used = excluded.last_used "
                           "RETURNING id"),
                {key_sha256, token.owner, pg_param(token.admin), pg_param(token.publisher), pg_param(token.created),
                 pg_param(token.expires), pg_param(token.last_used)})
        .integer(0, 0);
}

std::optional<ApiToken> PostgresStore::find_token(const std::string& key_sha256)
{
    PostgresResult found = impl_->query(
        "find a token", impl_->sql("SELECT " + std::string(token_columns) + " FROM @schema.tokens WHERE key_sha256 = $1"),
        {key_sha256});
    if (found.rows() == 0)
        return std::nullopt;
    PostgresRow row{found, 0};
    return read_token(row);
}

std::vector<ApiToken> PostgresStore::list_tokens()
{
    PostgresResult rows = impl_->query(
        "list tokens", impl_->sql("SELECT " + std::string(token_columns) + " FROM @schema.tokens ORDER BY id"));
    std::vector<ApiToken> tokens;
    for (int i = 0; i < rows.rows(); ++i) {
        PostgresRow row{rows, i};
        tokens.push_back(read_token(row));
    }
    return tokens;
}

bool PostgresStore::revoke_token(std::int64_t id)
{
    return impl_->query("revoke a token", impl_->sql("DELETE FROM @schema.tokens WHERE id = $1 RETURNING id"),
                        {pg_param(id)})
               .rows() > 0;
}

void PostgresStore::record_token_use(std::int64_t id, TimePoint at)
{
    impl_->query("record a token's use",
                 impl_->sql("UPDATE @schema.tokens SET last_used = $2 WHERE id = $1 AND "
                            "(last_used IS NULL OR last_used < $2)"),
                 {pg_param(id), pg_param(at)});
}

// --- retention ---------------------------------------------------------------------------------

std::size_t PostgresStore::delete_finished_before(TimePoint before, std::size_t limit)
{
    PostgresBatch batch;
    // `state <> 'pending'` exactly as the partial index deliveries_finished says it.
    batch.add(impl_->sql("WITH gone AS (DELETE FROM @schema.deliveries WHERE id IN (SELECT id FROM @schema.deliveries "
                         "WHERE state <> 'pending' AND created < $1 ORDER BY created LIMIT $2) RETURNING id) "
                         "SELECT count(*) FROM gone"),
              {pg_param(before), limit_param(limit)});
    // Events still in the inbox (committed by SQL, not fanned out yet) have no deliveries yet.
    batch.add(impl_->sql("DELETE FROM @schema.events e WHERE e.created < $1 "
                         "AND NOT EXISTS (SELECT 1 FROM @schema.deliveries d WHERE d.event_id = e.id) "
                         "AND NOT EXISTS (SELECT 1 FROM @schema.event_inbox i WHERE i.event_id = e.id)"),
              {pg_param(before)});
    // Deleted and disabled hooks count against their owner's limit until they go here.
    batch.add(impl_->sql("DELETE FROM @schema.hooks WHERE id IN (SELECT h.id FROM @schema.hooks h WHERE NOT h.is_active "
                         "AND h.modified < $1 AND NOT EXISTS (SELECT 1 FROM @schema.deliveries d WHERE d.hook_id = h.id) "
                         "LIMIT $2)"),
              {pg_param(before), limit_param(limit)});
    return static_cast<std::size_t>(impl_->run("delete finished deliveries", batch)[0].integer(0, 0));
}

} // namespace whisperer
