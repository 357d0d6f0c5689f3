// PostgresStore's outbox: events and their deliveries, claims under leases, attempts.
#include "postgres/postgres_store_impl.hpp"

#include <whisperer/error.hpp>

#include "detail/claim_room.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace whisperer {

using namespace detail;

namespace {

constexpr std::size_t max_page_size = 1000;
/// Events committed by SQL `deliver_event` that one claim fans out at most.
constexpr int inbox_batch = 500;

std::string limit_param(std::size_t n)
{
    return std::to_string(std::min<std::size_t>(n, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())));
}

/// The joined tables that `delivery_columns` reads from.
constexpr std::string_view pg_delivery_tables =
    "@schema.deliveries d JOIN @schema.events e ON e.id = d.event_id JOIN @schema.hooks h ON h.id = d.hook_id";

/// A row `claim_due` may lease, `$1` being the claim time: due, and its lease free or expired.
constexpr std::string_view claimable = "o.due_at <= $1 AND (o.lease_expires IS NULL OR o.lease_expires <= $1)";

/// The hooks with rows in the outbox, one index seek each however many rows they have.
constexpr std::string_view queued_hooks =
    "WITH RECURSIVE queued (hook_id) AS ("
    " SELECT (SELECT min(hook_id) FROM @schema.outbox)"
    " UNION ALL"
    " SELECT (SELECT min(o.hook_id) FROM @schema.outbox o WHERE o.hook_id > q.hook_id) FROM queued q"
    " WHERE q.hook_id IS NOT NULL) ";

/// Moves the events that SQL `deliver_event` committed from the inbox to deliveries and outbox
/// rows for the hooks active now, taking inbox rows other claimers are not taking.
constexpr std::string_view fan_out_inbox =
    "WITH taken AS (DELETE FROM @schema.event_inbox WHERE event_id IN (SELECT event_id FROM @schema.event_inbox "
    " ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING event_id), "
    "added AS (INSERT INTO @schema.deliveries (event_id, hook_id, state, attempt_count, response_status, "
    " response_body, response_time_us, last_failure, last_error, next_attempt_at, created, modified) "
    " SELECT e.id, h.id, 'pending', 0, 0, '', 0, 'none', '', e.created, e.created, e.created FROM taken t "
    " JOIN @schema.events e ON e.id = t.event_id JOIN @schema.hooks h ON h.event_type = e.event_type AND h.is_active "
    " ORDER BY e.id, h.id RETURNING id, hook_id, created) "
    "INSERT INTO @schema.outbox (delivery_id, hook_id, due_at) SELECT id, hook_id, created FROM added";

/// A hook with claimable rows, and what this claim asks and took of it.
struct Candidate {
    std::int64_t hook_id = 0;
    std::int64_t first_due = 0;
    std::string owner;
    std::string origin;
    std::size_t limit = 0; ///< Rows this claim may take of it.
    std::size_t taken = 0;
    bool exhausted = false; ///< Gave fewer rows than asked: none left.
    bool asked = false;     ///< Had its first turn.
};

} // namespace

// --- events and deliveries ---------------------------------------------------------------------

std::vector<EnqueuedEvent> PostgresStore::enqueue_events(std::span<const NewEvent> events)
{
    if (events.empty())
        return {};
    // The whole batch in one statement (its events, their deliveries and outbox rows, leased at
    // once for the hooks handed off), parameters as arrays: one plan and one trigger firing per
    // batch, not per event. `i` holds the events in order, `d` their deliveries by event number.
    const std::string insert_sql = impl_->sql(
        "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], "
        " $7::boolean[], $8::bigint[], $9::text[], $10::bigint[]) WITH ORDINALITY AS i (uuid, event_type, body, "
        " object_ref, idempotency_key, created, replayed, due, worker, expires, n)), "
        "d AS (SELECT * FROM unnest($11::bigint[], $12::bigint[], $13::boolean[], $14::boolean[]) WITH ORDINALITY "
        " AS d (event_n, hook_id, check_active, handoff, m)), "
        "ev AS (INSERT INTO @schema.events (uuid, event_type, body, object_ref, idempotency_key, created) "
        " SELECT i.uuid, i.event_type, i.body, i.object_ref, i.idempotency_key, i.created FROM i "
        " WHERE NOT (i.replayed AND EXISTS (SELECT 1 FROM @schema.events e WHERE e.uuid = i.uuid)) ORDER BY i.n "
        " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, uuid), "
        "dl AS (INSERT INTO @schema.deliveries (event_id, hook_id, state, attempt_count, response_status, response_body, "
        " response_time_us, last_failure, last_error, next_attempt_at, created, modified) "
        " SELECT ev.id, d.hook_id, 'pending', 0, 0, '', 0, 'none', '', i.due, i.created, i.created "
        " FROM d JOIN i ON i.n = d.event_n JOIN ev ON ev.uuid = i.uuid "
        " WHERE NOT d.check_active OR EXISTS (SELECT 1 FROM @schema.hooks h WHERE h.id = d.hook_id AND h.is_active) "
        " ORDER BY d.m RETURNING id, hook_id, event_id), "
        "dn AS (SELECT dl.id, dl.hook_id, i.n, i.due, i.worker, i.expires, "
        " d.handoff AND EXISTS (SELECT 1 FROM @schema.hooks h WHERE h.id = dl.hook_id AND h.is_active) AS leased "
        " FROM dl JOIN ev ON ev.id = dl.event_id JOIN i ON i.uuid = ev.uuid "
        " JOIN d ON d.event_n = i.n AND d.hook_id = dl.hook_id), "
        "ob AS (INSERT INTO @schema.outbox (delivery_id, hook_id, due_at, lease_owner, lease_expires) "
        " SELECT dn.id, dn.hook_id, dn.due, CASE WHEN dn.leased THEN dn.worker END, "
        " CASE WHEN dn.leased THEN dn.expires END FROM dn ORDER BY dn.id RETURNING delivery_id) "
        "SELECT i.n, ev.id, w.id, w.hook_id, w.leased FROM i LEFT JOIN ev ON ev.uuid = i.uuid "
        "LEFT JOIN (SELECT dn.* FROM dn JOIN ob ON ob.delivery_id = dn.id) w ON w.n = i.n ORDER BY i.n, w.id");
    const std::string uuid_by_key_sql = impl_->sql(
        "SELECT k.key, e.uuid FROM unnest($1::text[]) AS k (key) JOIN @schema.events e ON e.idempotency_key = k.key");

    std::set<std::int64_t> handoff_hooks;
    for (const NewEvent& event : events)
        handoff_hooks.insert(event.handoff_hook_ids.begin(), event.handoff_hook_ids.end());
    const std::vector<std::int64_t> handoff_list(handoff_hooks.begin(), handoff_hooks.end());

    std::vector<std::string> uuids, types, bodies, refs;
    std::vector<std::optional<std::string>> keys, workers;
    std::vector<std::int64_t> created, due, d_event, d_hook;
    std::vector<std::optional<std::int64_t>> expires;
    std::vector<bool> replayed, d_check, d_handoff;
    std::vector<std::string> used_keys;
    std::map<std::string, std::vector<Subscriber>, std::less<>> subscribers;
    const TimePoint now = Clock::now();
    for (std::size_t n = 0; n < events.size(); ++n) {
        const NewEvent& event = events[n];
        uuids.push_back(event.uuid);
        types.push_back(event.event_type);
        bodies.push_back(event.body);
        refs.push_back(event.object_ref);
        keys.push_back(event.idempotency_key);
        if (event.idempotency_key)
            used_keys.push_back(*event.idempotency_key);
        created.push_back(to_micros(event.created));
        replayed.push_back(event.replayed);
        due.push_back(to_micros(event.due));
        const bool handing_off = !event.handoff_hook_ids.empty();
        workers.push_back(handing_off ? std::optional{event.handoff_worker} : std::nullopt);
        // From the write, not the call: the event may have waited for the store meanwhile.
        expires.push_back(handing_off ? std::optional{to_micros(now + event.handoff_lease)} : std::nullopt);
        std::vector<std::int64_t> hook_ids;
        if (event.hook_ids) {
            hook_ids = *event.hook_ids;
        } else {
            auto found = subscribers.find(event.event_type);
            if (found == subscribers.end())
                found = subscribers.emplace(event.event_type, impl_->subscribers(event.event_type)).first;
            for (const Subscriber& subscriber : found->second)
                if (owner_matches(subscriber.owner, event.owners) &&
                    config_matches(subscriber.config, event.config_filter))
                    hook_ids.push_back(subscriber.hook_id);
        }
        // Each hook once: a delivery per hook and event.
        std::set<std::int64_t> seen;
        for (std::int64_t hook_id : hook_ids) {
            if (!seen.insert(hook_id).second)
                continue;
            d_event.push_back(static_cast<std::int64_t>(n + 1));
            d_hook.push_back(hook_id);
            d_check.push_back(!event.hook_ids.has_value());
            d_handoff.push_back(std::find(event.handoff_hook_ids.begin(), event.handoff_hook_ids.end(), hook_id) !=
                                event.handoff_hook_ids.end());
        }
    }

    PostgresBatch batch;
    // The planner cannot see how many rows the arrays hold and would join them by nested loops
    // in an order that multiplies rows. Joined in the order written, by hash, every join is on a
    // key of one side (event number, uuid, id). Its estimates, far above the rows, would also
    // have the server compile the plan to machine code (JIT): a second and more for 1,000 events,
    // where running the plan takes milliseconds.
    batch.add("SET LOCAL join_collapse_limit = 1");
    batch.add("SET LOCAL enable_nestloop = off");
    batch.add("SET LOCAL jit = off");
    // Notified inside the transaction, concurrent enqueues would commit one at a time.
    batch.notify_after_commit(impl_->schema_ + ".due");
    constexpr std::size_t inserted = 3, uuids_by_key = 4; // Results of the statements below.
    batch.add(insert_sql, {pg_text_array<std::string>(uuids), pg_text_array<std::string>(types),
                           pg_text_array<std::string>(bodies), pg_text_array<std::string>(refs),
                           pg_text_array<std::optional<std::string>>(keys), pg_array(created), pg_bool_array(replayed),
                           pg_array(due), pg_text_array<std::optional<std::string>>(workers), pg_optional_array(expires),
                           pg_array(d_event), pg_array(d_hook), pg_bool_array(d_check), pg_bool_array(d_handoff)});
    if (!used_keys.empty())
        batch.add(uuid_by_key_sql, {pg_text_array<std::string>(used_keys)});
    if (!handoff_list.empty())
        batch.add(impl_->sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h WHERE h.id = ANY($1) "
                             "AND h.is_active"),
                  {pg_array(handoff_list)});
    std::vector<PostgresResult> results = impl_->run("enqueue events", batch);

    std::map<std::string, std::string, std::less<>> uuid_of_key;
    if (!used_keys.empty())
        for (int i = 0; i < results[uuids_by_key].rows(); ++i)
            uuid_of_key.emplace(std::string(results[uuids_by_key].text(i, 0)), std::string(results[uuids_by_key].text(i, 1)));
    std::map<std::int64_t, std::optional<Hook>> hooks;
    if (!handoff_list.empty()) {
        const PostgresResult& rows = results.back();
        for (int i = 0; i < rows.rows(); ++i) {
            PostgresRow row{rows, i};
            const std::int64_t id = PostgresRow{rows, i}.int64();
            try {
                hooks[id] = read_hook(row, impl_->box(), now);
            } catch (const StoreError&) {
                // Unreadable: its leased row waits for the lease to run out, and the claim that
                // meets it then deactivates the hook with the reason.
                hooks[id] = std::nullopt;
            }
        }
    }

    std::vector<EnqueuedEvent> enqueued(events.size());
    for (std::size_t n = 0; n < events.size(); ++n) {
        enqueued[n].uuid = events[n].uuid;
        enqueued[n].duplicate = true; // Until a row says it was written.
    }
    const PostgresResult& rows = results[inserted];
    for (int r = 0; r < rows.rows(); ++r) {
        const auto n = static_cast<std::size_t>(rows.integer(r, 0) - 1);
        EnqueuedEvent& out = enqueued.at(n);
        if (rows.is_null(r, 1))
            continue;
        out.duplicate = false;
        if (rows.is_null(r, 2))
            continue;
        PostgresRow row{rows, r, 2};
        const std::int64_t delivery_id = row.int64();
        const std::int64_t hook_id = row.int64();
        const bool leased = row.boolean();
        out.delivery_ids.push_back(delivery_id);
        if (!leased)
            continue;
        auto hook = hooks.find(hook_id);
        if (hook == hooks.end() || !hook->second)
            continue;
        const NewEvent& event = events[n];
        ClaimedDelivery delivery;
        delivery.delivery_id = delivery_id;
        delivery.event_uuid = event.uuid;
        delivery.event_type = event.event_type;
        delivery.body = event.body;
        delivery.hook = *hook->second;
        delivery.created = stored_time(event.created);
        out.handed_off.push_back(std::move(delivery));
    }
    for (std::size_t n = 0; n < events.size(); ++n)
        if (enqueued[n].duplicate && events[n].idempotency_key)
            if (auto found = uuid_of_key.find(*events[n].idempotency_key); found != uuid_of_key.end())
                enqueued[n].uuid = found->second;
    return enqueued;
}

std::optional<Delivery> PostgresStore::find_delivery(std::int64_t id, bool with_attempts)
{
    PostgresBatch batch;
    batch.add(impl_->sql("SELECT " + std::string(delivery_columns) + " FROM " + std::string(pg_delivery_tables) +
                         " WHERE d.id = $1"),
              {pg_param(id)});
    if (with_attempts)
        batch.add(impl_->sql("SELECT " + std::string(attempt_columns) +
                             " FROM @schema.attempts WHERE delivery_id = $1 ORDER BY id DESC"),
                  {pg_param(id)});
    std::vector<PostgresResult> results = impl_->run("find a delivery", batch, false);
    if (results[0].rows() == 0)
        return std::nullopt;
    PostgresRow row{results[0], 0};
    Delivery delivery = read_delivery(row);
    if (with_attempts)
        for (int i = 0; i < results[1].rows(); ++i) {
            PostgresRow attempt{results[1], i};
            delivery.attempts.push_back(read_attempt(attempt));
        }
    return delivery;
}

AttemptPage PostgresStore::list_attempts(std::int64_t delivery_id, const AttemptQuery& query)
{
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);
    PostgresBatch batch;
    batch.add(impl_->sql("SELECT count(*) FROM @schema.attempts WHERE delivery_id = $1"), {pg_param(delivery_id)});
    batch.add(impl_->sql("SELECT id, " + std::string(attempt_columns) +
                         " FROM @schema.attempts WHERE delivery_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"),
              {pg_param(delivery_id),
               pg_param(query.before > 0 ? query.before : std::numeric_limits<std::int64_t>::max()),
               std::to_string(page_size + 1)});
    std::vector<PostgresResult> results = impl_->run("list the attempts of a delivery", batch, false);
    AttemptPage page;
    page.stored = static_cast<std::size_t>(results[0].integer(0, 0));
    std::int64_t last_id = 0;
    for (int i = 0; i < results[1].rows(); ++i) {
        if (page.items.size() == page_size) {
            page.next = last_id;
            break;
        }
        PostgresRow row{results[1], i};
        last_id = row.int64();
        page.items.push_back(read_attempt(row));
    }
    return page;
}

std::vector<Delivery> PostgresStore::deliveries_of_event(const std::string& event_uuid)
{
    PostgresResult rows = impl_->query("list the deliveries of an event",
                                       impl_->sql("SELECT " + std::string(delivery_columns) + " FROM " +
                                                  std::string(pg_delivery_tables) + " WHERE e.uuid = $1 ORDER BY d.id"),
                                       {event_uuid});
    std::vector<Delivery> deliveries;
    for (int i = 0; i < rows.rows(); ++i) {
        PostgresRow row{rows, i};
        deliveries.push_back(read_delivery(row));
    }
    return deliveries;
}

Page<Delivery> PostgresStore::list_deliveries(const DeliveryQuery& query)
{
    PostgresConditions where;
    where.add("d.id > $?", pg_param(query.after));
    if (query.owner && !query.owner->empty())
        where.add("h.owner = $?", *query.owner);
    if (query.event_type)
        where.add("e.event_type = $?", *query.event_type);
    if (query.event_uuid)
        where.add("e.uuid = $?", *query.event_uuid);
    if (query.response_status)
        where.add("d.response_status = $?", pg_param(std::int64_t{*query.response_status}));
    if (query.delivered)
        where.add(*query.delivered ? "d.state = $?" : "d.state <> $?", std::string(to_string(DeliveryState::delivered)));
    if (query.created_from)
        where.add("d.created >= $?", pg_param(*query.created_from));
    if (query.created_until)
        where.add("d.created <= $?", pg_param(*query.created_until));
    if (query.hook_id)
        where.add("d.hook_id = $?", pg_param(*query.hook_id));
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);
    const std::string limit = where.next(std::to_string(page_size + 1));
    PostgresResult rows = impl_->query("list deliveries",
                                       impl_->sql("SELECT " + std::string(delivery_columns) + " FROM " +
                                                  std::string(pg_delivery_tables) + " WHERE " + where.sql() +
                                                  " ORDER BY d.id LIMIT " + limit),
                                       where.params());
    Page<Delivery> page;
    for (int i = 0; i < rows.rows() && page.items.size() < page_size; ++i) {
        PostgresRow row{rows, i};
        page.items.push_back(read_delivery(row));
    }
    if (static_cast<std::size_t>(rows.rows()) > page_size)
        page.next = page.items.back().id;
    return page;
}

namespace {

/// Puts the deliveries `$1` selects back in the outbox, due at `$2`, pending; `$3` is now.
std::string requeue_sql(std::string_view selected)
{
    return "WITH picked AS (" + std::string(selected) +
           "), queued AS (INSERT INTO @schema.outbox (delivery_id, hook_id, due_at) SELECT id, hook_id, $2::bigint FROM picked "
           "ON CONFLICT (delivery_id) DO UPDATE SET due_at = excluded.due_at, lease_owner = NULL, lease_expires = NULL "
           "RETURNING delivery_id) "
           "UPDATE @schema.deliveries SET state = 'pending', next_attempt_at = $2, modified = $3 "
           "WHERE id IN (SELECT delivery_id FROM queued) RETURNING id";
}

} // namespace

bool PostgresStore::requeue(std::int64_t delivery_id, TimePoint due)
{
    const std::string sql = impl_->sql(requeue_sql("SELECT id, hook_id FROM @schema.deliveries WHERE id = $1"));
    return impl_->query("requeue a delivery", sql, {pg_param(delivery_id), pg_param(due), pg_param(Clock::now())})
               .rows() > 0;
}

std::size_t PostgresStore::requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until, TimePoint due,
                                          std::size_t limit)
{
    const std::string sql = impl_->sql(
        requeue_sql("SELECT id, hook_id FROM @schema.deliveries WHERE hook_id = $1 AND state = 'failed' "
                    "AND created BETWEEN $4 AND $5 ORDER BY id LIMIT $6"));
    return static_cast<std::size_t>(impl_
                                        ->query("requeue failed deliveries", sql,
                                                {pg_param(hook_id), pg_param(due), pg_param(Clock::now()),
                                                 pg_param(since), pg_param(until), limit_param(limit)})
                                        .rows());
}

// --- the outbox --------------------------------------------------------------------------------

std::vector<ClaimedDelivery> PostgresStore::claim_due(const ClaimRequest& request)
{
    if (request.limit == 0)
        return {};
    std::map<std::int64_t, std::size_t> own_limits;
    for (const HookClaimLimit& entry : request.hook_limits)
        own_limits[entry.hook_id] = entry.limit;
    auto limit_of = [&](std::int64_t hook_id) {
        auto found = own_limits.find(hook_id);
        return found == own_limits.end() ? request.per_hook_limit : found->second;
    };
    const std::optional<std::string> now = pg_param(request.now);

    // The inbox first, then each active hook with claimable rows and its oldest one's due time:
    // a seek per hook with rows, whatever its backlog.
    const std::string walk_sql = impl_->sql(
        std::string(queued_hooks) +
        "SELECT q.hook_id, f.due_at, h.owner, h.target_url FROM queued q JOIN @schema.hooks h ON h.id = q.hook_id "
        "AND h.is_active CROSS JOIN LATERAL (SELECT o.due_at FROM @schema.outbox o WHERE o.hook_id = q.hook_id AND " +
        std::string(claimable) + " ORDER BY o.due_at LIMIT 1) f");
    PostgresBatch walk;
    walk.commit_without_flush(); // Undone by a crash, the inbox's events are moved again.
    walk.add(impl_->sql(fan_out_inbox), {std::to_string(inbox_batch)});
    walk.add(walk_sql, {now});
    std::vector<Candidate> candidates;
    {
        std::vector<PostgresResult> results = impl_->run("find the hooks with due deliveries", walk);
        const PostgresResult& rows = results[1];
        for (int i = 0; i < rows.rows(); ++i) {
            PostgresRow row{rows, i};
            Candidate candidate;
            candidate.hook_id = row.int64();
            candidate.first_due = row.int64();
            candidate.owner = row.text();
            candidate.origin = target_origin(row.text());
            candidate.limit = limit_of(candidate.hook_id);
            if (candidate.limit > 0)
                candidates.push_back(std::move(candidate));
        }
    }
    if (candidates.empty())
        return {};
    // The hooks waiting longest go first; each takes an equal share (at least `min_share`), then
    // those that had more rows take the room left.
    std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
        return std::tie(a.first_due, a.hook_id) < std::tie(b.first_due, b.hook_id);
    });

    const std::string lease_sql = impl_->sql(
        "WITH wanted AS (SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS w (hook_id, n)), "
        "picked AS (SELECT p.delivery_id FROM wanted w CROSS JOIN LATERAL (SELECT o.delivery_id FROM @schema.outbox o "
        " WHERE o.hook_id = w.hook_id AND " +
        std::string(claimable) +
        " ORDER BY o.due_at LIMIT w.n FOR UPDATE SKIP LOCKED) p), "
        "leased AS (UPDATE @schema.outbox o SET lease_owner = $4, lease_expires = $5 FROM picked "
        " WHERE o.delivery_id = picked.delivery_id RETURNING o.delivery_id, o.hook_id, o.due_at) "
        "SELECT l.delivery_id, l.hook_id, l.due_at, e.uuid, e.event_type, e.body, d.attempt_count, d.created "
        "FROM leased l JOIN @schema.deliveries d ON d.id = l.delivery_id JOIN @schema.events e ON e.id = d.event_id");
    const std::string hooks_sql =
        impl_->sql("SELECT " + std::string(hook_columns) + " FROM @schema.hooks h WHERE h.id = ANY($1)");
    const std::optional<std::string> expires = pg_param(request.now + request.lease);

    GroupRoom room(request);
    std::size_t claimed_count = 0;
    std::vector<std::pair<std::int64_t, ClaimedDelivery>> claimed; // due_at, delivery
    std::map<std::int64_t, std::optional<Hook>> hooks;
    std::map<std::int64_t, std::string> unreadable;
    // Leases what `asks` says of each candidate in one round trip; updates what each took.
    auto lease = [&](const std::vector<std::pair<Candidate*, std::size_t>>& asks) {
        std::vector<std::int64_t> ids;
        std::vector<std::int64_t> counts;
        std::vector<std::int64_t> new_hooks;
        for (const auto& [candidate, n] : asks) {
            ids.push_back(candidate->hook_id);
            counts.push_back(static_cast<std::int64_t>(n));
            if (!hooks.contains(candidate->hook_id))
                new_hooks.push_back(candidate->hook_id);
        }
        PostgresBatch batch;
        batch.commit_without_flush(); // Undone by a crash, the lease is gone: sent once more.
        batch.add(lease_sql, {now, pg_array(ids), pg_array(counts), request.worker, expires});
        if (!new_hooks.empty())
            batch.add(hooks_sql, {pg_array(new_hooks)});
        std::vector<PostgresResult> results = impl_->run("claim due deliveries", batch);
        if (!new_hooks.empty()) {
            for (std::int64_t id : new_hooks)
                hooks[id] = std::nullopt;
            for (int i = 0; i < results[1].rows(); ++i) {
                PostgresRow row{results[1], i};
                const std::int64_t id = PostgresRow{results[1], i}.int64();
                try {
                    hooks[id] = read_hook(row, impl_->box(), request.now);
                } catch (const StoreError& e) { // The row's content, not the machine, is at fault.
                    unreadable[id] = e.what();
                }
            }
        }
        std::map<std::int64_t, std::size_t> got;
        const PostgresResult& rows = results[0];
        for (int i = 0; i < rows.rows(); ++i) {
            PostgresRow row{rows, i};
            ClaimedDelivery delivery;
            delivery.delivery_id = row.int64();
            const std::int64_t hook_id = row.int64();
            const std::int64_t due_at = row.int64();
            delivery.event_uuid = row.text();
            delivery.event_type = row.text();
            delivery.body = row.text();
            delivery.attempt_count = row.count();
            delivery.created = row.time();
            delivery.hook.id = hook_id;
            ++got[hook_id];
            claimed.emplace_back(due_at, std::move(delivery));
        }
        for (const auto& [candidate, n] : asks) {
            const std::size_t took = got[candidate->hook_id];
            candidate->taken += took;
            candidate->exhausted = took < n;
            room.took(*candidate, took);
            claimed_count += took;
        }
    };

    // First turns: an equal share each, within its own, its owner's and its origin's limits,
    // for as many as the room asked for allows. Then, with what they actually gave known, the
    // hooks left out take their turns (rows asked of a hook with fewer did not use its owner's
    // room), and the room left goes to the hooks that gave all they were asked, waiting longest
    // first.
    const std::size_t share = std::max({std::size_t{1}, request.min_share, request.limit / candidates.size()});
    for (int round = 0; round < 2 && claimed_count < request.limit; ++round) {
        GroupRoom asked = room;
        std::size_t asking = claimed_count;
        std::vector<std::pair<Candidate*, std::size_t>> asks;
        auto ask = [&](Candidate& candidate, std::size_t most) {
            const std::size_t n = std::min({most, request.limit - asking, asked.left(candidate)});
            if (n == 0)
                return;
            candidate.asked = true;
            asked.took(candidate, n);
            asking += n;
            asks.emplace_back(&candidate, n);
        };
        for (Candidate& candidate : candidates)
            if (!candidate.asked && asking < request.limit)
                ask(candidate, std::min(candidate.limit, share));
        if (round == 1)
            for (Candidate& candidate : candidates)
                if (candidate.taken > 0 && !candidate.exhausted && candidate.taken < candidate.limit &&
                    asking < request.limit && std::none_of(asks.begin(), asks.end(), [&](const auto& a) {
                        return a.first == &candidate;
                    }))
                    ask(candidate, candidate.limit - candidate.taken);
        if (asks.empty())
            break;
        lease(asks);
    }

    // A hook that cannot be read (a damaged secret or setting) cannot be sent, but must not stop
    // every other hook's deliveries: it is deactivated with the reason, and its rows wait in the
    // outbox, unleased, until it is mended and active again.
    std::vector<std::int64_t> released;
    std::vector<ClaimedDelivery> deliveries;
    std::stable_sort(claimed.begin(), claimed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto& [due_at, delivery] : claimed) {
        auto hook = hooks.find(delivery.hook.id);
        if (hook == hooks.end() || !hook->second) {
            released.push_back(delivery.delivery_id);
            continue;
        }
        delivery.hook = *hook->second;
        deliveries.push_back(std::move(delivery));
    }
    if (!released.empty()) {
        release_leases(request.worker, released);
        for (const auto& [hook_id, reason] : unreadable)
            deactivate_hook(hook_id, "Its stored settings cannot be read: " + reason);
    }
    return deliveries;
}

void PostgresStore::renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids,
                                 TimePoint until)
{
    if (delivery_ids.empty())
        return;
    // The rows locked in delivery id order, as record_attempts locks them: an UPDATE over
    // `= ANY($2)` locks in the plan's order (heap order for a bitmap scan), and a worker whose
    // lease ran out renews rows that another worker is recording, which deadlocked.
    PostgresBatch batch;
    batch.commit_without_flush();
    batch.add(impl_->sql("UPDATE @schema.outbox o SET lease_expires = $1 FROM (SELECT delivery_id FROM "
                         "@schema.outbox WHERE delivery_id = ANY($2) AND lease_owner = $3 ORDER BY delivery_id "
                         "FOR UPDATE) l WHERE o.delivery_id = l.delivery_id AND o.lease_owner = $3"),
              {pg_param(until), pg_array(delivery_ids), worker});
    impl_->run("renew leases", batch);
}

void PostgresStore::release_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids)
{
    if (delivery_ids.empty())
        return;
    // In delivery id order, as renew_leases.
    PostgresBatch batch;
    batch.commit_without_flush();
    batch.add(impl_->sql("UPDATE @schema.outbox o SET lease_owner = NULL, lease_expires = NULL FROM (SELECT "
                         "delivery_id FROM @schema.outbox WHERE delivery_id = ANY($1) AND lease_owner = $2 "
                         "ORDER BY delivery_id FOR UPDATE) l WHERE o.delivery_id = l.delivery_id "
                         "AND o.lease_owner = $2"),
              {pg_array(delivery_ids), worker});
    impl_->run("release leases", batch);
}

void PostgresStore::record_attempts(std::span<const AttemptRecord> records)
{
    if (records.empty())
        return;
    // All in one transaction and one round trip: per round, one statement records the attempts
    // and applies the verdicts of a set of distinct deliveries (parameters as arrays); then one
    // statement per record moves its hook's health. A retry or failed verdict applies when the
    // worker holds the lease or nobody does; from a worker that lost its lease it records the
    // attempt only. A delivery reported twice in one batch is applied in two rounds, in order.
    const std::string apply_sql = impl_->sql(
        "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::bigint[], "
        " $6::bigint[], $7::integer[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[]) WITH ORDINALITY "
        " AS r (delivery_id, worker, verdict, number, started_at, duration_us, status, body, failure, error, "
        " trigger, next_at, k)), "
        // The deliveries that exist, locked in id order.
        "ex AS (SELECT r.* FROM r JOIN (SELECT d.id FROM @schema.deliveries d WHERE d.id IN (SELECT delivery_id FROM r) "
        " ORDER BY d.id FOR UPDATE) locked ON locked.id = r.delivery_id), "
        "at AS (INSERT INTO @schema.attempts (delivery_id, number, started_at, duration_us, response_status, "
        " response_body, failure, error, \"trigger\") SELECT delivery_id, number, started_at, duration_us, status, body, "
        " failure, error, trigger FROM ex ORDER BY k RETURNING 1), "
        "applies AS (SELECT ex.* FROM ex WHERE ex.verdict = 'delivered' OR EXISTS (SELECT 1 FROM @schema.outbox o "
        " WHERE o.delivery_id = ex.delivery_id AND (o.lease_owner IS NULL OR o.lease_owner = ex.worker))), "
        // GREATEST: a late report of an earlier attempt must not make the count go back.
        "up AS (UPDATE @schema.deliveries d SET state = CASE a.verdict WHEN 'retry' THEN 'pending' ELSE a.verdict END, "
        " attempt_count = GREATEST(d.attempt_count, a.number), response_status = a.status, response_body = a.body, "
        " response_time_us = a.duration_us, last_failure = a.failure, last_error = a.error, "
        " next_attempt_at = CASE WHEN a.verdict = 'retry' THEN a.next_at END, modified = $13 "
        " FROM applies a WHERE d.id = a.delivery_id RETURNING 1), "
        "gone AS (DELETE FROM @schema.outbox o USING applies a WHERE o.delivery_id = a.delivery_id "
        " AND a.verdict <> 'retry' RETURNING 1), "
        "moved AS (UPDATE @schema.outbox o SET due_at = a.next_at, lease_owner = NULL, lease_expires = NULL "
        " FROM applies a WHERE o.delivery_id = a.delivery_id AND a.verdict = 'retry' RETURNING 1) "
        "SELECT (SELECT count(*) FROM at), (SELECT count(*) FROM up), (SELECT count(*) FROM gone), "
        "(SELECT count(*) FROM moved)");
    const std::string prune_attempts = impl_->sql(
        "DELETE FROM @schema.attempts WHERE id IN (SELECT id FROM @schema.attempts WHERE delivery_id = $1 "
        "ORDER BY id DESC OFFSET $2)");
    // Every hook's health moved by all its reports at once, in the order reported (`k`): a
    // success resets it, and the failures after a hook's last success count up from there (or,
    // with no success among them, from what is stored). Reports of deliveries that no longer
    // exist do not count. Only rows that change are locked and written, in hook id order: a
    // success of a healthy hook leaves its row alone.
    const std::string health = impl_->sql(
        "WITH r AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[], $4::bigint[]) WITH ORDINALITY "
        " AS r (hook_id, delivery_id, failed, started_at, k)), "
        "x AS (SELECT COALESCE(r.hook_id, d.hook_id) AS hook_id, r.failed, r.started_at, r.k FROM r "
        " JOIN @schema.deliveries d ON d.id = r.delivery_id), "
        "last_ok AS (SELECT hook_id, max(k) FILTER (WHERE NOT failed) AS k FROM x GROUP BY hook_id), "
        "a AS (SELECT x.hook_id, bool_or(NOT x.failed) AS reset, "
        " count(*) FILTER (WHERE x.failed AND x.k > COALESCE(l.k, 0)) AS failures, "
        " min(x.started_at) FILTER (WHERE x.failed AND x.k > COALESCE(l.k, 0)) AS since "
        " FROM x JOIN last_ok l ON l.hook_id = x.hook_id GROUP BY x.hook_id), "
        "locked AS MATERIALIZED (SELECT h.id FROM @schema.hooks h JOIN a ON a.hook_id = h.id "
        " WHERE a.failures > 0 OR h.failing_since IS NOT NULL OR h.failed_attempts <> 0 ORDER BY h.id FOR UPDATE OF h) "
        "UPDATE @schema.hooks h SET "
        "failing_since = CASE WHEN a.failures = 0 THEN NULL WHEN a.reset THEN a.since "
        " ELSE COALESCE(h.failing_since, a.since) END, "
        "failed_attempts = CASE WHEN a.reset THEN a.failures ELSE h.failed_attempts + a.failures END "
        "FROM a JOIN locked ON locked.id = a.hook_id WHERE h.id = a.hook_id");

    // Rows locked in one order (deliveries by id, then hooks by id), so that two processes
    // recording together never wait on each other in a cycle.
    std::vector<const AttemptRecord*> ordered;
    for (const AttemptRecord& record : records)
        ordered.push_back(&record);
    std::stable_sort(ordered.begin(), ordered.end(),
                     [](const AttemptRecord* a, const AttemptRecord* b) { return a->delivery_id < b->delivery_id; });
    // Round k holds the k-th report of each delivery.
    std::vector<std::vector<const AttemptRecord*>> rounds;
    for (std::size_t i = 0, seen = 0; i < ordered.size(); ++i) {
        seen = i > 0 && ordered[i]->delivery_id == ordered[i - 1]->delivery_id ? seen + 1 : 0;
        if (rounds.size() <= seen)
            rounds.resize(seen + 1);
        rounds[seen].push_back(ordered[i]);
    }

    const std::optional<std::string> now = pg_param(Clock::now());
    const std::size_t body_limit = impl_->options_.response_body_limit;
    PostgresBatch batch;
    // Undone by a crash, the attempts were never recorded: their deliveries are sent once more.
    batch.commit_without_flush();
    for (const auto& round : rounds) {
        std::vector<std::int64_t> ids, started, durations;
        std::vector<std::optional<std::string>> workers;
        std::vector<std::string> verdicts, bodies, failures, errors, triggers;
        std::vector<std::int64_t> numbers, statuses;
        std::vector<std::optional<std::int64_t>> next;
        for (const AttemptRecord* record : round) {
            const Attempt& attempt = record->attempt;
            ids.push_back(record->delivery_id);
            workers.push_back(record->worker);
            switch (record->verdict) {
            case AttemptVerdict::delivered: verdicts.emplace_back(to_string(DeliveryState::delivered)); break;
            case AttemptVerdict::retry: verdicts.emplace_back("retry"); break;
            case AttemptVerdict::failed: verdicts.emplace_back(to_string(DeliveryState::failed)); break;
            }
            numbers.push_back(attempt.number);
            started.push_back(to_micros(attempt.started_at));
            durations.push_back(static_cast<std::int64_t>(attempt.duration.count()));
            statuses.push_back(attempt.response_status);
            const std::string text = pg_text(capped(attempt.response_body, body_limit));
            bodies.emplace_back(capped(text, body_limit));
            failures.emplace_back(to_string(attempt.failure));
            errors.push_back(pg_text(attempt.error));
            triggers.emplace_back(to_string(attempt.trigger));
            next.push_back(record->verdict == AttemptVerdict::retry
                               ? std::optional{to_micros(record->next_attempt_at.value_or(Clock::now()))}
                               : std::nullopt);
        }
        batch.add(apply_sql, {pg_array(ids), pg_text_array<std::optional<std::string>>(workers),
                              pg_text_array<std::string>(verdicts), pg_array(numbers), pg_array(started),
                              pg_array(durations), pg_array(statuses), pg_text_array<std::string>(bodies),
                              pg_text_array<std::string>(failures), pg_text_array<std::string>(errors),
                              pg_text_array<std::string>(triggers), pg_optional_array(next), now});
        for (const AttemptRecord* record : round)
            if (record->attempt.number > impl_->options_.max_attempts_kept)
                batch.add(prune_attempts,
                          {pg_param(record->delivery_id), limit_param(impl_->options_.max_attempts_kept)});
    }
    std::vector<std::optional<std::int64_t>> hook_ids;
    std::vector<std::int64_t> delivery_ids, started;
    std::vector<bool> failed;
    for (const AttemptRecord& record : records) {
        hook_ids.push_back(record.hook_id != 0 ? std::optional{record.hook_id} : std::nullopt);
        delivery_ids.push_back(record.delivery_id);
        failed.push_back(!record.attempt.succeeded());
        started.push_back(to_micros(record.attempt.started_at));
    }
    batch.add(health, {pg_optional_array(hook_ids), pg_array(delivery_ids), pg_bool_array(failed), pg_array(started)});
    impl_->run("record attempts", batch);
}

std::optional<TimePoint> PostgresStore::next_due()
{
    // Events waiting in the inbox are due now; then each active hook's first unleased row (rows
    // of inactive hooks are never claimed, so they must not wake anyone), and the leased rows,
    // the ones in flight, by when their lease runs out.
    const std::string sql = impl_->sql(
        std::string(queued_hooks) +
        "SELECT LEAST("
        " (SELECT $1::bigint WHERE EXISTS (SELECT 1 FROM @schema.event_inbox)),"
        " (SELECT min((SELECT o.due_at FROM @schema.outbox o WHERE o.hook_id = q.hook_id AND o.lease_expires IS NULL"
        "   ORDER BY o.due_at LIMIT 1)) FROM queued q JOIN @schema.hooks h ON h.id = q.hook_id WHERE h.is_active),"
        " (SELECT min(GREATEST(due_at, lease_expires)) FROM @schema.outbox WHERE lease_expires IS NOT NULL))");
    PostgresResult next = impl_->query("find the next due delivery", sql, {pg_param(Clock::now())});
    if (next.is_null(0, 0))
        return std::nullopt;
    return from_micros(next.integer(0, 0));
}

Page<OutboxEntry> PostgresStore::list_outbox(const OutboxQuery& query)
{
    PostgresConditions where;
    where.add("o.delivery_id > $?", pg_param(query.after));
    if (query.owner && !query.owner->empty())
        where.add("h.owner = $?", *query.owner);
    const std::size_t page_size = std::clamp<std::size_t>(query.limit, 1, max_page_size);
    const std::string limit = where.next(std::to_string(page_size + 1));
    PostgresResult rows = impl_->query(
        "list the outbox", impl_->sql("SELECT " + std::string(outbox_entry_columns) + " FROM " +
                                      std::string(pg_delivery_tables) + " JOIN @schema.outbox o ON o.delivery_id = d.id WHERE " +
                                      where.sql() + " ORDER BY o.delivery_id LIMIT " + limit),
        where.params());
    Page<OutboxEntry> page;
    for (int i = 0; i < rows.rows() && page.items.size() < page_size; ++i) {
        PostgresRow row{rows, i};
        page.items.push_back(read_outbox_entry(row));
    }
    if (static_cast<std::size_t>(rows.rows()) > page_size)
        page.next = page.items.back().delivery_id;
    return page;
}

} // namespace whisperer
