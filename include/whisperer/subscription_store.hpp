#ifndef WHISPERER_SUBSCRIPTION_STORE_HPP
#define WHISPERER_SUBSCRIPTION_STORE_HPP

#include <whisperer/api_token_record.hpp>
#include <whisperer/delivery.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/secret_rotation.hpp>

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace whisperer {

/// One page of a listing; pass `next` back as `after` to get the following page.
template <class T>
struct Page {
    std::vector<T> items;
    std::optional<std::int64_t> next; ///< Absent on the last page.
};

/// Filters of `list_hooks`. An empty `owner` lists every owner's hooks (an admin's view).
struct HookQuery {
    std::optional<std::string> owner;
    std::optional<std::string> target_url;
    std::optional<std::string> event_type;
    std::optional<bool> is_active;
    std::int64_t after = 0;  ///< Cursor: only ids greater than this.
    std::size_t limit = 50;
};

/// Filters of `list_deliveries`.
struct DeliveryQuery {
    std::optional<std::string> owner;
    std::optional<std::string> event_type;
    std::optional<std::string> event_uuid;
    std::optional<int> response_status;
    std::optional<bool> delivered;
    std::optional<TimePoint> created_from;  ///< Inclusive.
    std::optional<TimePoint> created_until; ///< Inclusive.
    std::optional<std::int64_t> hook_id;
    std::int64_t after = 0;
    std::size_t limit = 50;
};

/// A pending outbox row as `/event_queues/` shows it.
struct OutboxEntry {
    std::int64_t delivery_id = 0;
    std::int64_t hook_id = 0;
    std::string owner;
    std::string event_uuid;
    std::string event_type;
    unsigned attempt_count = 0;
    TimePoint due{};
    std::optional<TimePoint> lease_expires; ///< Set while a worker holds it.
    TimePoint created{};
};

/// Which attempts of one delivery `list_attempts` returns: newest first, from `before`.
struct AttemptQuery {
    std::int64_t before = 0; ///< Cursor: only attempts older than this one (0: from the newest).
    std::size_t limit = 20;
};

/// One page of a delivery's attempts, newest first; pass `next` back as `before`.
struct AttemptPage {
    std::vector<Attempt> items;
    std::optional<std::int64_t> next; ///< Absent on the last page.
    std::size_t stored = 0;           ///< The delivery's attempts kept in the store, in all.
};

/// Filters of `list_outbox`.
struct OutboxQuery {
    std::optional<std::string> owner;
    std::int64_t after = 0;  ///< Cursor over delivery ids.
    std::size_t limit = 50;
};

/// A new event to fan out: written with its deliveries and outbox rows in one transaction.
struct NewEvent {
    std::string uuid;                       ///< 32 lowercase hex digits.
    std::string event_type;
    std::string body;                       ///< The exact envelope bytes every hook receives.
    std::string object_ref;
    std::optional<std::string> idempotency_key; ///< A second event with the same key is not created.
    boost::json::object config_filter;      ///< Only hooks whose `config[k] == v` for every key.
    std::vector<std::string> owners;        ///< Only hooks of these owners; empty: any owner.
    TimePoint created{};
    TimePoint due{};                        ///< When the first attempt may start.
    /// When set, exactly these hooks receive the event (they were chosen when it was accepted),
    /// instead of the active hooks that match `event_type`, `config_filter` and `owners` at the write.
    std::optional<std::vector<std::int64_t>> hook_ids;
    /// The event may be stored already (it is replayed from a journal after a crash): when its
    /// uuid exists, nothing is written and the result is a duplicate.
    bool replayed = false;
    /// Hooks of `hook_ids` whose deliveries a dispatcher will send at once: they are written
    /// leased to `handoff_worker` for `handoff_lease` from the write, so no claim is needed, and
    /// returned in `EnqueuedEvent::handed_off`. A hook no longer active is written unleased.
    /// A store may ignore this (and hand nothing off); the deliveries are then claimed as usual.
    std::vector<std::int64_t> handoff_hook_ids;
    std::string handoff_worker;
    std::chrono::milliseconds handoff_lease{0};
};

/// A delivery a worker has leased, with everything needed to send it.
struct ClaimedDelivery {
    std::int64_t delivery_id = 0;
    std::string event_uuid;
    std::string event_type;
    std::string body;
    unsigned attempt_count = 0;             ///< Attempts made before this one.
    Hook hook;
    TimePoint created{};
};

/// What `enqueue_events` did with one `NewEvent`.
struct EnqueuedEvent {
    std::string uuid;                       ///< The new uuid, or the first event's for a duplicate.
    std::vector<std::int64_t> delivery_ids; ///< One per matching active hook (empty for a duplicate).
    bool duplicate = false;                 ///< The idempotency key was already used.
    /// The deliveries of `NewEvent::handoff_hook_ids` written leased, ready to send.
    std::vector<ClaimedDelivery> handed_off;
};

/// How many rows one claim may take of one hook.
struct HookClaimLimit {
    std::int64_t hook_id = 0;
    std::size_t limit = 0;                  ///< Zero leaves the hook's rows alone.
};

/// How many rows one claim may take of the hooks of one owner, or of one origin.
struct GroupClaimLimit {
    std::string key;                        ///< The owner, or the origin (`target_origin`).
    std::size_t limit = 0;                  ///< Zero leaves the group's rows alone.
};

/// Parameters of `claim_due`.
struct ClaimRequest {
    std::string worker;                     ///< Lease owner; unique per dispatcher instance.
    TimePoint now{};
    std::chrono::milliseconds lease{10000};
    std::size_t limit = 64;                 ///< Rows in all.
    /// Rows of any one hook, unless `hook_limits` gives the hook a limit of its own.
    std::size_t per_hook_limit = std::numeric_limits<std::size_t>::max();
    /// Hooks with a limit of their own, such as what is left of a dispatcher's quota for a hook
    /// that has deliveries in flight. At most one entry per hook.
    std::vector<HookClaimLimit> hook_limits;
    /// Rows of the hooks of any one owner together, unless `owner_limits` gives the owner a limit
    /// of its own (what is left of a dispatcher's quota for an owner with deliveries in flight).
    std::size_t per_owner_limit = std::numeric_limits<std::size_t>::max();
    std::vector<GroupClaimLimit> owner_limits; ///< At most one entry per owner.
    /// Rows of the hooks of any one origin together (the `target_origin` of their target URL,
    /// whoever owns them), unless `origin_limits` gives the origin a limit of its own.
    std::size_t per_origin_limit = std::numeric_limits<std::size_t>::max();
    std::vector<GroupClaimLimit> origin_limits; ///< At most one entry per origin.
    /// Rows a hook's turn takes at least (within its limit), when there are more hooks waiting
    /// than `limit` gives each one row: the hooks waiting longest then take this many each and
    /// the others wait for the next claim. A hook's rows sit together in the store's indexes, so
    /// rows claimed (and later recorded) together cost fewer writes than one row of each hook.
    std::size_t min_share = 1;
};

/// What to do with a delivery after an attempt.
enum class AttemptVerdict {
    delivered,  ///< Mark delivered, remove from the outbox.
    retry,      ///< Keep pending, due again at `next_attempt_at`, lease released.
    failed,     ///< Out of attempts: mark failed, remove from the outbox.
};

/// One attempt's outcome as a worker reports it.
struct AttemptRecord {
    std::int64_t delivery_id = 0;
    std::int64_t hook_id = 0;               ///< The delivery's hook; 0 lets the store look it up.
    std::string worker;                     ///< Must still hold the lease for retry/failed to apply.
    Attempt attempt;
    AttemptVerdict verdict = AttemptVerdict::failed;
    std::optional<TimePoint> next_attempt_at; ///< For `retry`.
};

/// Persistent state of whisperer: hooks, events, deliveries and their attempts, the outbox and
/// the API tokens.
///
/// Every operation is atomic: it commits entirely or changes nothing and throws (`StoreError`,
/// or the domain error named in its comment). Implementations must be safe to call from several
/// threads at once, and from several processes when they say so (SQLite: several processes on one
/// machine; PostgreSQL: several machines). Batch operations run in one transaction.
class SubscriptionStore {
public:
    virtual ~SubscriptionStore() = default;

    // --- hooks -----------------------------------------------------------------------------
    /// Inserts `hook` (id, created and modified are set). Throws `WebhookAlreadyRegistered`
    /// (webhook_100_2) when an active hook has the same (owner, target_url, event_type), and
    /// `TooManyHooks` when the hook is active and its owner already has as many active hooks as
    /// the store allows. Validation of the fields is the caller's job (`validate_hook`).
    virtual Hook create_hook(const Hook& hook) = 0;
    virtual std::optional<Hook> find_hook(std::int64_t id) = 0;
    /// Replaces every field but id, created and the health fields (`failing_since`,
    /// `failed_attempts`, which only attempts change). An active hook is stored without
    /// `disabled_reason` and `disabled_at`, and re-activating an inactive one also clears its
    /// health. Throws `WebhookDoesNotExist`, `WebhookAlreadyRegistered` when the change would
    /// duplicate another active hook, or `TooManyHooks` when it would give an owner more active
    /// hooks than the store allows (re-activating the hook, or moving it to another owner).
    virtual Hook update_hook(const Hook& hook) = 0;
    /// Sets is_active false (soft delete), recording `reason` when whisperer disables it.
    /// Returns false when no such hook exists.
    virtual bool deactivate_hook(std::int64_t id, const std::string& reason = {}) = 0;
    /// Replaces the hook's secret as `rotation` says (`apply_rotation`), in one transaction, and
    /// returns the hook with the new secret in clear: the only time a generated one is seen.
    /// Throws `ValidationError` for a grace period out of range ("grace_period") or a new secret
    /// equal to the current one ("secret_key"), or `WebhookDoesNotExist`, changing nothing.
    /// Checking a chosen secret against the host's `HookRules` is the caller's job
    /// (`validate_rotation`), as for `create_hook`.
    virtual Hook rotate_secret(std::int64_t id, const SecretRotation& rotation) = 0;
    virtual Page<Hook> list_hooks(const HookQuery& query) = 0;
    /// Active hooks of `event_type` whose config matches every key of `config_filter` and, when
    /// `owners` is not empty, whose owner is one of `owners`.
    virtual std::vector<Hook> active_hooks(const std::string& event_type,
                                           const boost::json::object& config_filter = {},
                                           const std::vector<std::string>& owners = {}) = 0;
    /// The ids of the hooks `active_hooks` would return, in id order. Runs on every
    /// `deliver_event`, so implementations should answer from a cache, which must still reflect
    /// every committed change to hooks (from any process) by the time of the call. The default
    /// calls `active_hooks`.
    virtual std::vector<std::int64_t> subscriber_ids(const std::string& event_type,
                                                     const boost::json::object& config_filter = {},
                                                     const std::vector<std::string>& owners = {});
    /// Where a dispatcher may keep its journal of accepted events: a path prefix beside the
    /// store's data, on the same disk, or empty (the default) for none. A store returns empty
    /// when its commits promise more than a journal's write() does (SQLite's `full` durability)
    /// or when it keeps nothing on disk.
    virtual std::string journal_prefix() const { return {}; }
    /// Housekeeping a dispatcher runs on its executor every few hundred milliseconds, outside
    /// every other call's transaction, so that no caller's commit pays for it (SQLite: moving
    /// the write-ahead log into the database file). Must not block other calls for long. The
    /// default does nothing.
    virtual void checkpoint() {}

    // --- events and deliveries ------------------------------------------------------------------
    /// Writes every event with one delivery and one outbox row per matching active hook, all in
    /// one transaction (the group commit of concurrent `deliver_event` calls).
    virtual std::vector<EnqueuedEvent> enqueue_events(std::span<const NewEvent> events) = 0;
    /// Loads a delivery, with its attempts (newest first) when asked.
    virtual std::optional<Delivery> find_delivery(std::int64_t id, bool with_attempts = false) = 0;
    /// One page of a delivery's attempts, newest first, and how many are stored; empty for a
    /// delivery that does not exist. A store may keep only the newest attempts of a delivery.
    virtual AttemptPage list_attempts(std::int64_t delivery_id, const AttemptQuery& query) = 0;
    virtual std::vector<Delivery> deliveries_of_event(const std::string& event_uuid) = 0;
    virtual Page<Delivery> list_deliveries(const DeliveryQuery& query) = 0;
    /// Puts a delivery back in the outbox, due at `due` and state pending (for re-sends and
    /// recovery). Returns false when no such delivery exists.
    virtual bool requeue(std::int64_t delivery_id, TimePoint due) = 0;
    /// Requeues every failed delivery of a hook created in [since, until], at most `limit`.
    /// Returns how many.
    virtual std::size_t requeue_failed(std::int64_t hook_id, TimePoint since, TimePoint until,
                                       TimePoint due, std::size_t limit = 10000) = 0;

    // --- the outbox, for dispatchers -------------------------------------------------------------
    /// Leases up to `limit` due rows whose lease is free or expired, of active hooks only, and
    /// no more of one hook than its limit (`hook_limits`, else `per_hook_limit`), of one owner's
    /// hooks than the owner's, of one origin's than the origin's. Hooks take
    /// turns by their oldest due row, so the hooks waiting longest are served first: each takes
    /// an equal share of `limit` (at least `min_share`), then hooks with more rows take the room
    /// left. The rows
    /// come back in due order. Must not read through the backlog of a hook it takes nothing from
    /// (an inactive hook, or one whose limit is zero): its cost grows with the rows it returns
    /// and the hooks that have rows, not with the rows waiting. A store may order the turns of a
    /// full claim by what it saw of the hooks a moment before (SQLite: up to 100 ms, and never
    /// past another writer's commit), but a claim it cannot fill sees every claimable row. A
    /// hook whose stored secret or settings cannot be read is deactivated, with the reason,
    /// rather than failing the claim for every hook.
    virtual std::vector<ClaimedDelivery> claim_due(const ClaimRequest& request) = 0;
    /// Extends the leases `worker` holds on `delivery_ids` to `until`.
    virtual void renew_leases(const std::string& worker, std::span<const std::int64_t> delivery_ids,
                              TimePoint until) = 0;
    /// Gives up leases without an attempt (a stopping dispatcher), so others claim them at once.
    virtual void release_leases(const std::string& worker,
                                std::span<const std::int64_t> delivery_ids) = 0;
    /// Records attempts and applies their verdicts, all in one transaction. A `retry` or
    /// `failed` verdict applies when `worker` holds the lease or nobody does (attempts made outside
    /// the workers); from a worker that lost its lease to another it records the attempt only.
    /// Every attempt also moves its hook's health in the same transaction: a failure starts
    /// (`failing_since` = its start) or extends (`failed_attempts` + 1) the hook's run of
    /// failures, a success ends it. A success of a hook without such a run need not write it.
    virtual void record_attempts(std::span<const AttemptRecord> records) = 0;
    /// When the next outbox row becomes claimable (due, or its lease expires); nullopt when empty.
    virtual std::optional<TimePoint> next_due() = 0;
    virtual Page<OutboxEntry> list_outbox(const OutboxQuery& query) = 0;

    // --- API tokens --------------------------------------------------------------------------------
    /// Stores a token under the SHA-256 (hex) of its key and returns its id (`token.id` is
    /// ignored). Ids are never reused, even after a revocation. Adding a hash stored already
    /// replaces that token's owner, rights and times and keeps its id.
    virtual std::int64_t add_token(const std::string& key_sha256, const ApiToken& token) = 0;
    /// The token stored under the hash, expired or not, as every process sees it now (no cache):
    /// a revocation by any process is seen by the next call.
    virtual std::optional<ApiToken> find_token(const std::string& key_sha256) = 0;
    /// Every token (expired ones too), by id.
    virtual std::vector<ApiToken> list_tokens() = 0;
    /// Deletes the token; false when there is none with this id.
    virtual bool revoke_token(std::int64_t id) = 0;
    /// Sets the token's `last_used` to `at` unless it is later already; nothing when it is gone.
    virtual void record_token_use(std::int64_t id, TimePoint at) = 0;

    // --- retention -----------------------------------------------------------------------------------
    /// Deletes up to `limit` finished (delivered or failed) deliveries created before `before`,
    /// with their attempts and events left without deliveries, and the inactive (deleted or
    /// disabled) hooks last changed before `before` that have no deliveries left. Pending
    /// deliveries are never deleted.
    /// Returns how many deliveries were deleted; call again until it returns less than `limit`.
    virtual std::size_t delete_finished_before(TimePoint before, std::size_t limit = 1000) = 0;
};

} // namespace whisperer

#endif
