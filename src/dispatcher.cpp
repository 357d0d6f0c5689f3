#include <whisperer/dispatcher.hpp>

#include "detail/delivery_request.hpp"
#include "detail/delivery_slots.hpp"
#include "detail/event_journal.hpp"
#include "detail/group_commit.hpp"
#include "detail/json_depth.hpp"
#include "detail/target_auth.hpp"

#include <whisperer/envelope.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace whisperer {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

/// How often a busy dispatcher looks at the outbox for rows no completion will bring it to.
constexpr std::chrono::milliseconds busy_poll{100};
/// How often the store's housekeeping (`SubscriptionStore::checkpoint`) runs while started.
constexpr std::chrono::milliseconds checkpoint_interval{250};

std::string_view to_string(LogLevel level) noexcept
{
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    }
    return "info";
}

namespace {

HttpClientOptions client_options(const DispatcherOptions& o)
{
    HttpClientOptions c;
    c.connect_timeout = o.connect_timeout;
    c.total_timeout = o.request_timeout;
    c.response_body_limit = o.response_body_limit;
    c.max_connections_per_origin = o.max_connections_per_origin;
    c.ca_file = o.ca_file;
    c.address_filter = address_filter_or_default(o.address_filter);
    return c;
}

std::string random_worker_id()
{
    return "worker-" + new_event_uuid().substr(16); // The random half.
}

/// Deliveries of one hook in flight at most: a quarter of the slots (at least two per
/// connection), so that a few hooks whose receivers stall leave most slots to the rest while one
/// busy hook still gets batches deep enough to keep its connections full.
std::size_t hook_quota_of(const DispatcherOptions& o)
{
    return std::max(o.max_connections_per_origin * 2, o.max_in_flight / 4);
}

/// The slots' limits: in all, per hook, and per owner and origin (half the slots unless set).
detail::SlotQuotas slot_quotas(const DispatcherOptions& o)
{
    const auto or_half = [&](std::size_t quota) { return quota > 0 ? quota : std::max<std::size_t>(1, o.max_in_flight / 2); };
    return {.total = o.max_in_flight,
            .hook = hook_quota_of(o),
            .owner = or_half(o.max_in_flight_per_owner),
            .origin = or_half(o.max_in_flight_per_origin)};
}

/// What a claim may take of a group (hook, owner or origin) that holds `held` of `quota`: the
/// rest, or nothing once less than a quarter is left, so that a busy group takes its rows in
/// batches rather than one by one.
std::size_t claim_room(std::size_t held, std::size_t quota)
{
    const std::size_t left = held < quota ? quota - held : 0;
    return left < quota / 4 ? 0 : left;
}

/// How log lines name where a hook sends: its origin only, since Slack, Discord and Teams URLs
/// carry their secret in the path, and others in the query.
std::string origin_for_log(std::string_view url)
{
    std::string origin = target_origin(url);
    return origin.empty() ? std::string("(invalid URL)") : origin;
}

std::int64_t unix_seconds(TimePoint t)
{
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

} // namespace

/// State shared by the dispatcher and every operation it has started. Worker state (the maps,
/// the pending records, the timers) is touched only on `strand`.
struct Dispatcher::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::any_io_executor ex, const Registry& reg, SubscriptionStore& st, DispatcherOptions opts)
        : executor(ex),
          strand(asio::make_strand(ex)),
          registry(reg),
          store(st),
          options(std::move(opts)),
          client(ex, client_options(options)),
          slots(slot_quotas(options)),
          commits(st, [this](std::function<void()> job) { asio::post(executor, std::move(job)); }),
          worker(random_worker_id()),
          journal_prefix(st.journal_prefix()),
          wake_timer(strand),
          renew_timer(strand),
          retention_timer(strand),
          batch_timer(strand),
          record_timer(strand),
          stop_timer(strand),
          checkpoint_timer(strand)
    {
        if (options.journal && !journal_prefix.empty())
            journal = std::make_unique<detail::EventJournal>(journal_prefix, worker);
    }

    // --- shared, thread-safe ---------------------------------------------------------------------
    asio::any_io_executor executor;
    asio::strand<asio::any_io_executor> strand;
    const Registry& registry;
    SubscriptionStore& store;
    DispatcherOptions options;
    CountdownRegistry builtin_countdowns;
    HttpClient client;
    detail::DeliverySlots slots;
    detail::TargetAuth auth;
    detail::GroupCommit commits;
    const std::string worker;
    std::map<std::string, HookCallback, std::less<>> callbacks; // Written before use only.
    std::set<std::string, std::less<>> callback_names;
    std::atomic<bool> wake_posted{false};
    std::atomic<bool> wake_all{false};        // A wake-up for any rows, not only of woken_hooks.
    std::mutex woken_mutex;
    std::vector<std::int64_t> woken_hooks;    // Hooks with new rows since the last wake-up ran.
    std::atomic<bool> running_for_callers{false}; // Between start() and stop(), as callers see it.
    const std::string journal_prefix;                // Where journals of this store live; may be empty.
    std::unique_ptr<detail::EventJournal> journal;   // Null when events commit before returning.
    std::atomic<bool> journal_closed{false};         // stop() gave up waiting: leave the rest to replay.
    std::atomic<std::int64_t> journal_warned_at{0};  // Seconds; store failures are logged once a second.
    std::atomic<std::size_t> unstored{0};           // Journaled events not yet in the store.
    struct Completion {
        std::shared_ptr<const ClaimedDelivery> delivery;
        Attempt attempt;
        HttpResult result;
    };
    std::mutex completions_mutex;
    std::vector<Completion> completions; // Finished attempts on their way to the strand.
    bool completions_posted = false;     // Guarded by completions_mutex.
    struct {
        std::atomic<std::uint64_t> queued{0}, in_flight{0}, delivered{0}, failed{0}, retried{0}, handed_off{0};
    } count;

    // --- on the strand only ---------------------------------------------------------------------
    bool running = false;
    bool stopping = false;
    bool shutting_down = false; // The stop deadline passed: requests in flight are being cut.
    std::unordered_map<std::int64_t, std::string> in_flight; // delivery id -> origin (its quota's key)
    std::vector<AttemptRecord> pending_records;
    std::size_t pending_held = 0; // Of pending_records, those of deliveries holding a slot.
    std::set<std::int64_t> failing_hooks; // Hooks with a failed attempt among pending_records.
    bool flush_posted = false;
    std::chrono::milliseconds store_backoff{0};
    std::chrono::milliseconds store_pause{0}; // The last pause after a store failure; 0 once it works.
    // Whether the outbox may hold rows the last claim did not see: new events, retries falling due,
    // rows of other processes, or rows a claim left for want of room. Completions alone do not set it.
    bool outbox_unseen = true;
    // Hooks that may have rows left for want of their quota (a claim gave them no room, or they
    // took all it gave, or a wake-up brought them rows while they were that full). Their own
    // completions claim again, once they have room (`hooks_held_back`); others' do not.
    std::unordered_set<std::int64_t> held_back_hooks;
    // Owners and origins that may have rows left for want of their quota, likewise.
    std::unordered_set<std::string> held_back_owners;
    std::unordered_set<std::string> held_back_origins;
    bool hooks_held_back = false; // A hook, owner or origin held back has room again.
    asio::steady_timer wake_timer;
    asio::steady_timer renew_timer;
    asio::steady_timer retention_timer;
    asio::steady_timer batch_timer;
    bool batch_armed = false;
    asio::steady_timer record_timer;
    bool record_armed = false;
    asio::steady_timer stop_timer;
    asio::steady_timer checkpoint_timer;
    std::atomic<bool> checkpointing{false}; // A checkpoint job is queued or running.
    std::mutex checkpoint_mutex;             // With checkpoint_done: stop() waits for that job.
    std::condition_variable checkpoint_done;
    std::shared_ptr<std::promise<void>> stopped;

    void log(LogLevel level, const std::string& message) const
    {
        if (options.log) {
            try {
                options.log(level, message);
            } catch (...) {
            }
        }
    }

    const CountdownRegistry& countdowns() const
    {
        return options.countdowns ? *options.countdowns : builtin_countdowns;
    }

    // --- making and waking ------------------------------------------------------------------------

    /// Lets the workers look at the outbox now (after new rows were written).
    void wake()
    {
        wake_all = true;
        post_wake();
    }

    /// Lets the workers look at the outbox for new rows of `hooks`. A hook that holds so much of
    /// its quota that a claim would give it nothing is left to its own completions instead (one
    /// whose owner or origin does, to theirs): a stalled receiver's new rows then cost no claim
    /// each.
    void wake_hooks(std::vector<std::int64_t> hooks)
    {
        {
            std::lock_guard lock{woken_mutex};
            woken_hooks.insert(woken_hooks.end(), hooks.begin(), hooks.end());
        }
        post_wake();
    }

    void post_wake()
    {
        if (wake_posted.exchange(true))
            return;
        asio::post(strand, [self = shared_from_this()] {
            self->wake_posted = false;
            std::vector<std::int64_t> hooks;
            {
                std::lock_guard lock{self->woken_mutex};
                hooks.swap(self->woken_hooks);
            }
            bool claimable = self->wake_all.exchange(false);
            for (std::int64_t hook : hooks) {
                if (self->quota_held(hook))
                    self->held_back_hooks.insert(hook);
                else if (!self->group_held(hook))
                    claimable = true;
            }
            if (!claimable)
                return;
            self->outbox_unseen = true;
            if (self->in_flight.empty()) {
                self->pump(); // Idle: claim at once, for latency.
                return;
            }
            // Busy: gather the events of the next moment into one claim instead of one each.
            if (self->batch_armed)
                return;
            self->batch_armed = true;
            self->batch_timer.expires_after(self->options.batch_window);
            self->batch_timer.async_wait([self](boost::system::error_code ec) {
                self->batch_armed = false;
                if (!ec)
                    self->pump();
            });
        });
    }

    /// The event row of new data: uuid, envelope (customised by the event class), checks.
    NewEvent make_event(json::value data, std::string_view event_type, const DeliverOptions& opts, TimePoint now) const
    {
        const EventBase& event = registry.get(event_type);
        if (detail::nested_deeper_than(data, options.max_data_depth))
            throw ValidationError("data", "data may nest arrays and objects at most " +
                                              std::to_string(options.max_data_depth) + " levels deep.");
        NewEvent ev;
        ev.uuid = new_event_uuid();
        ev.event_type = std::string(event_type);
        json::object envelope = make_envelope(event_type, ev.uuid, std::move(data), options.data_key);
        event.customize_payload(envelope);
        ev.body = json::serialize(envelope);
        if (ev.body.size() > options.max_payload_bytes)
            throw Error(errc::payload_too_large, "The event's payload is " + std::to_string(ev.body.size()) +
                                                     " bytes; the limit is " +
                                                     std::to_string(options.max_payload_bytes) + ".");
        ev.object_ref = opts.object_ref;
        if (!opts.idempotency_key.empty())
            ev.idempotency_key = opts.idempotency_key;
        ev.config_filter = opts.config_filter;
        ev.owners = opts.owners;
        ev.created = now;
        ev.due = now;
        return ev;
    }

    // --- the journal ---------------------------------------------------------------------------

    /// Whether a new event may go through the journal rather than commit first.
    bool may_journal(const NewEvent& event, const DeliverOptions& opts) const
    {
        return journal && !opts.sync && !opts.wait_stored && !event.idempotency_key &&
               unstored.load(std::memory_order_relaxed) < options.max_unstored_events;
    }

    /// Accepts `event` through the journal: its hooks are chosen now, it is durable on return, and
    /// it reaches the store in the background.
    DeliverResult accept(NewEvent event)
    {
        event.hook_ids = store.subscriber_ids(event.event_type, event.config_filter, event.owners);
        DeliverResult result;
        result.event_uuid = event.uuid;
        result.hook_count = event.hook_ids->size();
        // Deliveries that fit in this dispatcher's slots are written leased to it and sent as
        // soon as they are stored, without a claim.
        if (running_for_callers && !event.hook_ids->empty()) {
            event.handoff_hook_ids = slots.reserve(*event.hook_ids);
            if (!event.handoff_hook_ids.empty()) {
                event.handoff_worker = worker;
                event.handoff_lease = options.lease;
            }
        }
        detail::EventJournal::Ticket ticket;
        try {
            ticket = journal->append(event);
        } catch (...) {
            slots.unreserve(event.handoff_hook_ids);
            throw;
        }
        count.queued += result.hook_count;
        ++unstored;
        store_accepted(std::move(event), std::move(ticket));
        return result;
    }

    /// The hooks of `hook_ids` that no delivery of `handed_off` is for: of an event's hooks, those
    /// a claim must send; of its reserved slots, those the store did not use.
    static std::vector<std::int64_t> hooks_not_handed_off(std::vector<std::int64_t> hook_ids,
                                                          const std::vector<ClaimedDelivery>& handed_off)
    {
        std::vector<std::int64_t> taken;
        taken.reserve(handed_off.size());
        for (const ClaimedDelivery& d : handed_off)
            taken.push_back(d.hook.id);
        std::sort(hook_ids.begin(), hook_ids.end());
        std::sort(taken.begin(), taken.end());
        std::vector<std::int64_t> left;
        std::set_difference(hook_ids.begin(), hook_ids.end(), taken.begin(), taken.end(), std::back_inserter(left));
        return left;
    }

    /// Writes a journaled event to the store, again and again until that works.
    void store_accepted(NewEvent accepted, detail::EventJournal::Ticket ticket)
    {
        commits.commit_async(std::move(accepted), [self = shared_from_this(), ticket = std::move(ticket)](
                                                   std::exception_ptr error, EnqueuedEvent written,
                                                   NewEvent event) mutable {
            if (!error) {
                --self->unstored;
                const bool all_handed_off = written.handed_off.size() == written.delivery_ids.size();
                std::vector<std::int64_t> claim_hooks;
                if (!all_handed_off && event.hook_ids)
                    claim_hooks = hooks_not_handed_off(*event.hook_ids, written.handed_off);
                self->take_handoff(event.handoff_hook_ids, std::move(written.handed_off), std::move(ticket));
                if (written.delivery_ids.empty() || all_handed_off)
                    return;
                if (event.hook_ids)
                    self->wake_hooks(std::move(claim_hooks));
                else
                    self->wake();
                return;
            }
            self->slots.unreserve(std::exchange(event.handoff_hook_ids, {}));
            if (self->journal_closed)
                return; // Stopped: the journal file keeps the event for the next start.
            self->warn_store_failure(error, event.uuid);
            // It may have been stored after all (a failure reported after the commit).
            event.replayed = true;
            auto timer = std::make_shared<asio::steady_timer>(self->executor, 250ms);
            timer->async_wait([self, timer, event = std::move(event), ticket = std::move(ticket)](
                                  boost::system::error_code) mutable {
                self->store_accepted(std::move(event), std::move(ticket));
            });
        });
    }

    /// Starts the deliveries the store wrote leased to this dispatcher, gives back the slots
    /// reserved for hooks it did not hand off (no longer active, or a duplicate event), and then
    /// settles the event's journal record: `stop()` waits for that, so nothing here touches the
    /// store after `stop()` returned.
    void take_handoff(const std::vector<std::int64_t>& reserved, std::vector<ClaimedDelivery> handed_off,
                      detail::EventJournal::Ticket ticket)
    {
        if (reserved.empty()) {
            journal->settle(ticket);
            return;
        }
        slots.unreserve(hooks_not_handed_off(reserved, handed_off));
        if (handed_off.empty()) {
            journal->settle(ticket);
            return;
        }
        asio::post(strand, [self = shared_from_this(), handed_off = std::move(handed_off),
                            ticket = std::move(ticket)]() mutable {
            if (!self->running || self->stopping) {
                // Stopped meanwhile: the leases go back, so another dispatcher need not wait them out.
                std::vector<std::int64_t> ids;
                std::vector<std::int64_t> hooks;
                for (const ClaimedDelivery& d : handed_off) {
                    ids.push_back(d.delivery_id);
                    hooks.push_back(d.hook.id);
                }
                self->slots.unreserve(hooks);
                try {
                    self->store.release_leases(self->worker, ids);
                } catch (const std::exception& e) {
                    self->log(LogLevel::warning, std::string("could not release leases: ") + e.what());
                }
                self->journal->settle(ticket);
                return;
            }
            self->slots.started_reserved(handed_off.size());
            self->count.handed_off += handed_off.size();
            self->start(std::move(handed_off));
            self->journal->settle(ticket);
        });
    }

    void warn_store_failure(const std::exception_ptr& error, const std::string& uuid)
    {
        const std::int64_t now = unix_seconds(Clock::now());
        std::int64_t last = journal_warned_at.load();
        if (last == now || !journal_warned_at.compare_exchange_strong(last, now))
            return;
        std::string reason = "unknown error";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            reason = e.what();
        } catch (...) {
        }
        log(LogLevel::warning, "journaled events cannot be stored yet (event " + uuid + "): " + reason +
                                   "; trying again every 250 ms");
    }

    /// Stores the events that dispatchers which are gone left in their journals.
    void replay_journals()
    {
        if (journal_prefix.empty())
            return;
        try {
            const std::size_t replayed = detail::EventJournal::replay(
                journal_prefix, [this](std::span<const NewEvent> events) {
                    for (const EnqueuedEvent& written : store.enqueue_events(events))
                        count.queued += written.delivery_ids.size();
                });
            if (replayed > 0)
                log(LogLevel::info, "read " + std::to_string(replayed) +
                                        " events from the journal of an earlier run into the store"
                                        " (those it had stored already were skipped)");
        } catch (const std::exception& e) {
            log(LogLevel::error, std::string("cannot store the events of an earlier run's journal yet: ") + e.what());
        }
    }

    // --- one attempt -------------------------------------------------------------------------------

    using AttemptDone = std::function<void(Attempt, HttpResult)>;

    /// Sends one attempt of `delivery` with `http` and reports it; runs on `http`'s executor.
    void send(std::shared_ptr<const ClaimedDelivery> delivery, HttpClient& http, AttemptTrigger trigger,
              AttemptDone done)
    {
        auth.async_authorization(delivery->hook, http, [self = shared_from_this(), delivery, &http, trigger,
                                                        done = std::move(done)](std::string authorization,
                                                                                std::string error) mutable {
            TimePoint started = Clock::now();
            unsigned number = delivery->attempt_count + 1;
            if (!error.empty()) {
                Attempt attempt;
                attempt.number = number;
                attempt.started_at = started;
                attempt.trigger = trigger;
                attempt.failure = FailureClass::io;
                attempt.error = std::move(error);
                done(std::move(attempt), HttpResult{});
                return;
            }
            HttpRequest request = detail::make_delivery_request(*delivery, unix_seconds(started), authorization);
            http.async_send(std::move(request), [self, delivery, number, started, trigger,
                                                 done = std::move(done)](HttpResult result) {
                Attempt attempt = detail::to_attempt(result, number, started, trigger);
                if (result.status == 401)
                    self->auth.invalidate(delivery->hook);
                done(std::move(attempt), std::move(result));
            });
        });
    }

    /// What to do after `attempt`, as a record for the store.
    AttemptRecord judge(const ClaimedDelivery& delivery, Attempt attempt, const HttpResult& result)
    {
        AttemptRecord record;
        record.delivery_id = delivery.delivery_id;
        record.hook_id = delivery.hook.id;
        record.worker = worker;
        TimePoint now = Clock::now();
        if (attempt.succeeded()) {
            record.verdict = AttemptVerdict::delivered;
            count.delivered++;
        } else if (attempt.number >= options.max_attempts) {
            record.verdict = AttemptVerdict::failed;
            count.failed++;
        } else {
            record.verdict = AttemptVerdict::retry;
            count.retried++;
            std::chrono::milliseconds wait = countdown_delay(delivery.hook, attempt.number);
            if (auto asked = detail::retry_after(result, now, options.max_retry_after))
                wait = std::max<std::chrono::milliseconds>(wait, *asked);
            record.next_attempt_at = now + wait;
        }
        if (result.status == 410)
            disable_hook(delivery.hook.id, "The receiver answered 410 Gone.");
        log_outcome(delivery, attempt, record);
        record.attempt = std::move(attempt);
        return record;
    }

    /// One line per attempt: what was sent to which hook and origin, and what came of it. Never
    /// the whole URL: Slack, Discord and Teams URLs carry their secret in the path, others in
    /// the query.
    void log_outcome(const ClaimedDelivery& delivery, const Attempt& attempt, const AttemptRecord& record) const
    {
        if (!options.log)
            return;
        std::string line = "delivery " + std::to_string(delivery.delivery_id) + " (" + delivery.event_type + " " +
                           delivery.event_uuid + ") to hook " + std::to_string(delivery.hook.id) + " at " +
                           origin_for_log(delivery.hook.target_url) + ", attempt " +
                           std::to_string(attempt.number) + ": ";
        if (attempt.succeeded())
            line += "delivered, HTTP " + std::to_string(attempt.response_status);
        else
            line += std::string(to_string(attempt.failure)) + " (" + attempt.error + ")";
        line += " in " + std::to_string(attempt.duration.count() / 1000) + " ms";
        if (record.verdict == AttemptVerdict::retry)
            line += "; next attempt in " +
                    std::to_string(std::chrono::duration_cast<std::chrono::seconds>(*record.next_attempt_at -
                                                                                    Clock::now()).count()) +
                    " s";
        else if (record.verdict == AttemptVerdict::failed)
            line += "; out of attempts, failed";
        log(attempt.succeeded() ? LogLevel::info : LogLevel::warning, line);
    }

    std::chrono::milliseconds countdown_delay(const Hook& hook, unsigned failures) const
    {
        try {
            return countdowns().parse(hook.retry_countdown_config).delay(failures);
        } catch (const std::exception& e) {
            log(LogLevel::error, "hook " + std::to_string(hook.id) + " has an unusable countdown (" + e.what() +
                                     "); retrying in 60 s");
            return 60s;
        }
    }

    /// Deactivates an active hook with `reason` and tells the host; its deliveries stay pending.
    void disable_hook(std::int64_t hook_id, const std::string& reason)
    {
        try {
            // Several failures may ask at once; the first one disables and reports.
            auto hook = store.find_hook(hook_id);
            if (!hook || !hook->is_active || !store.deactivate_hook(hook_id, reason))
                return;
            log(LogLevel::warning, "hook " + std::to_string(hook_id) + " at " + origin_for_log(hook->target_url) +
                                       " disabled: " + reason);
        } catch (const std::exception& e) {
            log(LogLevel::error, "could not disable hook " + std::to_string(hook_id) + ": " + e.what());
            return;
        }
        if (!options.on_hook_disabled)
            return;
        asio::post(executor, [self = shared_from_this(), hook_id, reason] {
            try {
                if (auto hook = self->store.find_hook(hook_id))
                    self->options.on_hook_disabled(*hook, reason);
            } catch (const std::exception& e) {
                self->log(LogLevel::error, "on_hook_disabled for hook " + std::to_string(hook_id) + " threw: " + e.what());
            } catch (...) {
                self->log(LogLevel::error, "on_hook_disabled for hook " + std::to_string(hook_id) + " threw");
            }
        });
    }

    /// Endpoint health: disables each of `hooks` that has failed long and often enough. Call
    /// after their failed attempts are recorded (the store keeps the run of failures).
    void check_health(const std::set<std::int64_t>& hooks)
    {
        if (options.disable_after_failures == 0)
            return;
        const TimePoint now = Clock::now();
        for (std::int64_t id : hooks) {
            std::optional<Hook> hook;
            try {
                hook = store.find_hook(id);
            } catch (const std::exception& e) {
                log(LogLevel::warning, "could not check the health of hook " + std::to_string(id) + ": " + e.what());
                continue;
            }
            if (!hook || !hook->is_active || !hook->failing_since ||
                hook->failed_attempts < options.disable_after_failures || now - *hook->failing_since < options.disable_after)
                continue;
            const auto failing_for = std::chrono::duration_cast<std::chrono::seconds>(now - *hook->failing_since);
            disable_hook(id, "No successful attempt for " + std::to_string(failing_for.count()) + " s and " +
                                 std::to_string(hook->failed_attempts) + " failed attempts in a row.");
        }
    }

    /// After `pending_records` were written: forget them and check the hooks that failed.
    void recorded()
    {
        pending_records.clear();
        slots.freed(std::exchange(pending_held, 0));
        check_health(std::exchange(failing_hooks, {}));
    }

    /// Runs the hook's callback, if any, off the strand; a throwing callback is only logged.
    void run_callback(std::shared_ptr<const ClaimedDelivery> delivery, const Attempt& attempt)
    {
        if (delivery->hook.callback.empty())
            return;
        auto it = callbacks.find(delivery->hook.callback);
        if (it == callbacks.end()) {
            log(LogLevel::warning, "hook " + std::to_string(delivery->hook.id) + " names unknown callback \"" +
                                       delivery->hook.callback + "\"");
            return;
        }
        asio::post(executor, [self = shared_from_this(), delivery, attempt, &callback = it->second] {
            boost::system::error_code ec;
            json::value envelope = detail::parse_stored_json(delivery->body, ec);
            json::value instance;
            if (!ec && envelope.is_object())
                if (const json::value* data = envelope.as_object().if_contains(to_string(self->options.data_key)))
                    instance = *data;
            try {
                callback(AttemptReport{delivery->hook, delivery->delivery_id, delivery->event_type, attempt, instance,
                                       delivery->body});
            } catch (const std::exception& e) {
                self->log(LogLevel::error, "callback \"" + delivery->hook.callback + "\" threw: " + e.what());
            } catch (...) {
                self->log(LogLevel::error, "callback \"" + delivery->hook.callback + "\" threw");
            }
        });
    }

    // --- the worker loop (strand) ------------------------------------------------------------------

    void pump()
    {
        if (!running || stopping || store_backoff.count() > 0)
            return;
        // Finished attempts whose outcome is not yet recorded still count: a crash now would
        // send them again, so they bound the duplicates a crash can cause.
        // Slots reserved for deliveries being handed off count too.
        const std::size_t busy = slots.used();
        if (busy >= options.max_in_flight)
            return; // Completions pump again.
        // While busy, wait until a worthwhile batch fits: many tiny claims cost more than they bring.
        std::size_t room = options.max_in_flight - busy;
        if (busy > 0 && room < std::min(options.claim_batch, options.max_in_flight) / 4)
            return;
        // The last claim saw every claimable row and held none back for a hook's quota: nothing
        // a completion frees can be claimed now. New rows come with wake(), and the timer that
        // claim armed looks again for rows of other processes and retries falling due.
        if (!outbox_unseen && !hooks_held_back)
            return;
        ClaimRequest request;
        request.worker = worker;
        request.now = Clock::now();
        request.lease = options.lease;
        // A quarter of the room stays free while the claim runs, for new events handed off
        // meanwhile: a claim's reservation must not send them the long way round.
        request.limit = std::min(options.claim_batch, room - room / 4);
        // The store applies each hook's quota, so a saturated hook's rows are neither claimed nor
        // read through, and whatever is claimed can start.
        const std::size_t quota = hook_quota();
        request.per_hook_limit = quota;
        request.min_share = options.claim_min_share;
        // A hook (owner, origin) this close to its quota waits for its completions, which pump
        // again, rather than taking its rows a few at a time.
        for (const auto& [hook, n] : slots.per_hook())
            request.hook_limits.push_back({hook, claim_room(n, quota)});
        // One owner's hooks, or one origin's, never hold more than their quota of the slots:
        // a tenant whose receivers stall, or a stalled receiver many tenants send to, leaves
        // the rest to the others.
        request.per_owner_limit = slots.owner_quota();
        for (const auto& [owner, n] : slots.per_owner())
            request.owner_limits.push_back({owner, claim_room(n, slots.owner_quota())});
        request.per_origin_limit = slots.origin_quota();
        for (const auto& [origin, n] : slots.per_origin())
            request.origin_limits.push_back({origin, claim_room(n, slots.origin_quota())});
        // Every hook in flight is near its quota and the last claim saw the whole outbox: a claim
        // now would find nothing. Their completions pump again, wake() brings new events, and the
        // timer the last claim armed looks for anything else.
        const bool all_held = !request.hook_limits.empty() &&
                              std::all_of(request.hook_limits.begin(), request.hook_limits.end(),
                                          [](const HookClaimLimit& h) { return h.limit == 0; });
        if (all_held && !outbox_unseen)
            return;
        request.limit = slots.reserve_claim(request.limit);
        if (request.limit == 0)
            return;
        std::vector<ClaimedDelivery> claimed;
        std::optional<TimePoint> next;
        try {
            claimed = store.claim_due(request);
            // Requests in flight pump again as they complete; only an idle dispatcher needs to
            // know when the next row falls due.
            if (claimed.empty() && in_flight.empty())
                next = store.next_due();
            store_pause = 0ms;
        } catch (const std::exception& e) {
            slots.claimed(request.limit, {});
            store_failed(e);
            return;
        }
        std::vector<std::int64_t> claimed_hooks;
        claimed_hooks.reserve(claimed.size());
        for (const ClaimedDelivery& d : claimed)
            claimed_hooks.push_back(d.hook.id);
        slots.claimed(request.limit, claimed_hooks);
        const bool full = claimed.size() == request.limit;
        outbox_unseen = full;
        hooks_held_back = false;
        add_held_back(request, claimed);
        start(std::move(claimed));
        if (full) {
            asio::post(strand, [self = shared_from_this()] { self->pump(); });
            return;
        }
        if (!in_flight.empty() && !next)
            next = request.now + busy_poll; // Rows of other processes, retries falling due.
        sleep_until(next);
    }

    std::size_t hook_quota() const { return slots.hook_quota(); }

    /// Adds to `held_back_hooks` (owners, origins) the hooks (owners, origins) `request` may
    /// have left claimable rows of for want of their quota: one it gave no room, or one that took
    /// all the room it had.
    void add_held_back(const ClaimRequest& request, const std::vector<ClaimedDelivery>& claimed)
    {
        std::unordered_map<std::int64_t, std::size_t> taken;
        std::unordered_map<std::string, std::size_t> owners_taken;
        std::unordered_map<std::string, std::size_t> origins_taken;
        for (const ClaimedDelivery& d : claimed) {
            ++taken[d.hook.id];
            ++owners_taken[d.hook.owner];
            ++origins_taken[target_origin(d.hook.target_url)];
        }
        for (const HookClaimLimit& h : request.hook_limits)
            if (h.limit == 0 || taken[h.hook_id] >= h.limit)
                held_back_hooks.insert(h.hook_id);
        for (const auto& [hook, n] : taken)
            if (n >= request.per_hook_limit)
                held_back_hooks.insert(hook);
        add_held_back_groups(request.owner_limits, request.per_owner_limit, owners_taken, held_back_owners);
        add_held_back_groups(request.origin_limits, request.per_origin_limit, origins_taken, held_back_origins);
    }

    static void add_held_back_groups(const std::vector<GroupClaimLimit>& limits, std::size_t per_group,
                                     std::unordered_map<std::string, std::size_t>& taken,
                                     std::unordered_set<std::string>& held_back)
    {
        for (const GroupClaimLimit& g : limits)
            if (g.limit == 0 || taken[g.key] >= g.limit)
                held_back.insert(g.key);
        for (const auto& [key, n] : taken)
            if (n >= per_group)
                held_back.insert(key);
    }

    /// After a delivery of `owner` to `origin` finished: a held-back owner or origin with room
    /// again lets the next pump claim.
    void release_held_back_groups(const std::string& owner, const std::string& origin)
    {
        if (auto it = held_back_owners.find(owner);
            it != held_back_owners.end() && claim_room(slots.held_by_owner(owner), slots.owner_quota()) > 0) {
            held_back_owners.erase(it);
            hooks_held_back = true;
        }
        if (auto it = held_back_origins.find(origin);
            it != held_back_origins.end() && claim_room(slots.held_by_origin(origin), slots.origin_quota()) > 0) {
            held_back_origins.erase(it);
            hooks_held_back = true;
        }
    }

    /// Whether `hook` holds so much of its quota that a claim would give it no room (see pump()).
    bool quota_held(std::int64_t hook) const
    {
        const std::size_t quota = hook_quota();
        return slots.held_by(hook) > quota - quota / 4;
    }

    /// Whether the owner or origin of `hook`'s last delivery holds so much of its quota that a
    /// claim would give it no room; if so, that group is held back until its completions free
    /// room (see pump()).
    bool group_held(std::int64_t hook)
    {
        const auto group = slots.group_of(hook);
        if (!group)
            return false;
        bool held = false;
        if (claim_room(slots.held_by_owner(group->first), slots.owner_quota()) == 0) {
            held_back_owners.insert(group->first);
            held = true;
        }
        if (claim_room(slots.held_by_origin(group->second), slots.origin_quota()) == 0) {
            held_back_origins.insert(group->second);
            held = true;
        }
        return held;
    }

    /// Arms the wake-up timer for the next due row (or the idle poll, whichever comes first).
    void sleep_until(std::optional<TimePoint> next)
    {
        auto wait = options.idle_poll;
        if (next) {
            auto until_due = std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now());
            wait = std::clamp(until_due + 1ms, 0ms, wait);
        }
        wake_timer.expires_after(wait);
        wake_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec)
                return;
            self->outbox_unseen = true;
            self->pump();
        });
    }

    /// Counts `claimed` as in flight and sends them off the strand: signing and writing the
    /// requests runs on the executor's other threads while the strand claims and records. Their
    /// slots are already held. A delivery whose owner or origin holds its quota (a hand-off of a
    /// hook the slots did not know yet) gives its lease back instead, for a later claim.
    void start(std::vector<ClaimedDelivery> claimed)
    {
        if (claimed.empty())
            return;
        std::vector<std::shared_ptr<const ClaimedDelivery>> batch;
        batch.reserve(claimed.size());
        std::vector<std::int64_t> refused;
        for (ClaimedDelivery& delivery : claimed) {
            std::string origin = target_origin(delivery.hook.target_url);
            if (!slots.admit(delivery.hook.id, delivery.hook.owner, origin)) {
                slots.refused(delivery.hook.id);
                refused.push_back(delivery.delivery_id);
                held_back_owners.insert(delivery.hook.owner);
                held_back_origins.insert(std::move(origin));
                continue;
            }
            in_flight.emplace(delivery.delivery_id, std::move(origin));
            batch.push_back(std::make_shared<const ClaimedDelivery>(std::move(delivery)));
        }
        if (!refused.empty()) {
            try {
                store.release_leases(worker, refused);
            } catch (const std::exception& e) {
                log(LogLevel::warning, std::string("could not release leases (they run out instead): ") + e.what());
            }
        }
        if (batch.empty())
            return;
        count.in_flight += batch.size();
        asio::post(executor, [self = shared_from_this(), batch = std::move(batch)] {
            for (const auto& delivery : batch)
                self->send(delivery, self->client, AttemptTrigger::scheduled,
                           [self, delivery](Attempt attempt, HttpResult result) {
                               self->completed(delivery, std::move(attempt), std::move(result));
                           });
        });
    }

    /// Hands a finished attempt to the strand. Attempts that finish while the strand is busy
    /// reach it together, in one hand-off.
    void completed(std::shared_ptr<const ClaimedDelivery> delivery, Attempt attempt, HttpResult result)
    {
        bool post = false;
        {
            std::lock_guard lock{completions_mutex};
            completions.push_back({std::move(delivery), std::move(attempt), std::move(result)});
            post = !std::exchange(completions_posted, true);
        }
        if (!post)
            return;
        asio::post(strand, [self = shared_from_this()] {
            std::vector<Completion> done;
            {
                std::lock_guard lock{self->completions_mutex};
                done.swap(self->completions);
                self->completions_posted = false;
            }
            for (Completion& c : done)
                self->finished(c.delivery, std::move(c.attempt), c.result);
        });
    }

    void finished(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt, const HttpResult& result)
    {
        std::string origin;
        if (auto entry = in_flight.find(delivery->delivery_id); entry != in_flight.end()) {
            origin = std::move(entry->second);
            in_flight.erase(entry);
        }
        slots.finished(delivery->hook.id, delivery->hook.owner, origin);
        if (auto held = held_back_hooks.find(delivery->hook.id);
            held != held_back_hooks.end() && !quota_held(delivery->hook.id)) {
            held_back_hooks.erase(held);
            hooks_held_back = true;
        }
        release_held_back_groups(delivery->hook.owner, origin);
        count.in_flight--;
        if (shutting_down && result.failure == FailureClass::io) {
            // Cut by stop(): not an attempt of the receiver's; the lease is released instead.
            std::int64_t id = delivery->delivery_id;
            try {
                store.release_leases(worker, std::span(&id, 1));
            } catch (const std::exception& e) {
                log(LogLevel::warning, std::string("could not release a lease: ") + e.what());
            }
            slots.freed(1);
        } else {
            run_callback(delivery, attempt);
            if (!attempt.succeeded())
                failing_hooks.insert(delivery->hook.id);
            pending_records.push_back(judge(*delivery, std::move(attempt), result));
            ++pending_held;
        }
        post_flush();
    }

    /// Has the finished attempts recorded soon. Outcomes that arrive within `record_window` of
    /// each other share a transaction: a commit writes every page it changed, so a few large
    /// ones cost far less than many small ones. Nothing in flight, a full batch or a stop
    /// records at once.
    void post_flush()
    {
        const bool now = in_flight.empty() || stopping || pending_records.size() >= options.record_batch ||
                         options.record_window.count() == 0;
        if (now) {
            if (flush_posted)
                return;
            flush_posted = true;
            record_timer.cancel();
            record_armed = false; // A later completion may arm it again; the cancelled wait ends unheard.
            asio::post(strand, [self = shared_from_this()] {
                self->flush_posted = false;
                self->flush();
            });
            return;
        }
        if (record_armed || flush_posted)
            return;
        record_armed = true;
        record_timer.expires_after(options.record_window);
        record_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec)
                return;
            self->record_armed = false;
            if (!self->flush_posted)
                self->flush();
        });
    }

    /// Records every finished attempt in one transaction, then looks for more work.
    void flush()
    {
        if (!pending_records.empty()) {
            // A retry is a row the last claim did not see, due at its countdown.
            if (std::any_of(pending_records.begin(), pending_records.end(),
                            [](const AttemptRecord& r) { return r.verdict == AttemptVerdict::retry; }))
                outbox_unseen = true;
            try {
                store.record_attempts(pending_records);
                store_backoff = 0ms;
                store_pause = 0ms;
                recorded();
            } catch (const std::exception& e) {
                store_failed(e);
                return;
            }
        }
        if (stopping) {
            if (in_flight.empty())
                finish_stop();
            return;
        }
        pump();
    }

    /// The store refused: log, keep what is pending, and try again with growing pauses.
    void store_failed(const std::exception& e)
    {
        // The pause grows over consecutive failures, whichever call failed, until one succeeds.
        store_pause = std::clamp(store_pause * 2, 100ms, 5000ms);
        store_backoff = store_pause;
        log(LogLevel::error, std::string("store failure, retrying in ") + std::to_string(store_backoff.count()) +
                                 " ms: " + e.what());
        wake_timer.expires_after(store_backoff);
        wake_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec)
                return;
            // Try again the normal way: a new failure comes back here with a longer pause.
            self->store_backoff = 0ms;
            self->outbox_unseen = true;
            self->flush();
        });
    }

    void renew()
    {
        renew_timer.expires_after(options.lease / 3);
        renew_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || !self->running)
                return;
            if (!self->in_flight.empty()) {
                std::vector<std::int64_t> ids;
                ids.reserve(self->in_flight.size());
                for (const auto& entry : self->in_flight)
                    ids.push_back(entry.first);
                try {
                    self->store.renew_leases(self->worker, ids, Clock::now() + self->options.lease);
                } catch (const std::exception& e) {
                    self->log(LogLevel::warning, std::string("could not renew leases: ") + e.what());
                }
            }
            self->renew();
        });
    }

    /// Runs the store's checkpoint on the executor, off the strand and outside every store call,
    /// so that neither the workers nor `deliver_event` wait for the log to be moved.
    void schedule_checkpoint()
    {
        checkpoint_timer.expires_after(checkpoint_interval);
        checkpoint_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || !self->running)
                return;
            if (!self->checkpointing.exchange(true))
                asio::post(self->executor, [self] {
                    try {
                        self->store.checkpoint();
                    } catch (const std::exception& e) {
                        self->log(LogLevel::warning, std::string("store checkpoint failed: ") + e.what());
                    }
                    {
                        std::lock_guard lock{self->checkpoint_mutex};
                        self->checkpointing = false;
                    }
                    self->checkpoint_done.notify_all();
                });
            self->schedule_checkpoint();
        });
    }

    /// Deletes old finished deliveries, a bounded batch per turn so the strand is never held long.
    void sweep_retention(std::chrono::milliseconds wait)
    {
        if (options.retention.count() <= 0)
            return;
        retention_timer.expires_after(wait);
        retention_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec || !self->running)
                return;
            constexpr std::size_t batch = 1000;
            std::size_t deleted = 0;
            try {
                deleted = self->store.delete_finished_before(Clock::now() - self->options.retention, batch);
            } catch (const std::exception& e) {
                self->log(LogLevel::warning, std::string("retention sweep failed: ") + e.what());
            }
            if (deleted > 0)
                self->log(LogLevel::debug, "retention deleted " + std::to_string(deleted) + " old deliveries");
            self->sweep_retention(deleted == batch ? std::chrono::milliseconds(10) : std::chrono::milliseconds(1h));
        });
    }

    // --- stopping (strand) ---------------------------------------------------------------------------

    void begin_stop(std::chrono::milliseconds deadline, std::shared_ptr<std::promise<void>> done)
    {
        stopped = std::move(done);
        if (stopping && !running) {
            stopped->set_value();
            return;
        }
        stopping = true;
        wake_timer.cancel();
        if (in_flight.empty()) {
            flush();
            if (in_flight.empty() && stopped)
                finish_stop();
            return;
        }
        stop_timer.expires_after(deadline);
        stop_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec)
                return;
            self->shutting_down = true;
            self->client.shutdown();
        });
    }

    void finish_stop()
    {
        if (!stopped)
            return;
        if (!pending_records.empty()) {
            try {
                store.record_attempts(pending_records);
                pending_records.clear();
                slots.freed(std::exchange(pending_held, 0));
            } catch (const std::exception& e) {
                log(LogLevel::error, std::string("outcomes not recorded at stop (their deliveries will be sent "
                                                 "again once their leases run out): ") + e.what());
            }
        }
        running = false;
        client.shutdown(); // Closes the idle keep-alive connections.
        stop_timer.cancel();
        renew_timer.cancel();
        retention_timer.cancel();
        checkpoint_timer.cancel();
        batch_timer.cancel();
        record_timer.cancel();
        wake_timer.cancel();
        std::exchange(stopped, nullptr)->set_value();
    }

    // --- synchronous attempts, in the caller's thread ---------------------------------------------

    std::shared_ptr<const ClaimedDelivery> load(std::int64_t delivery_id)
    {
        auto delivery = store.find_delivery(delivery_id);
        if (!delivery)
            throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
        auto hook = store.find_hook(delivery->hook_id);
        if (!hook)
            throw WebhookDoesNotExist("Webhook " + std::to_string(delivery->hook_id) + " does not exist.");
        auto claimed = std::make_shared<ClaimedDelivery>();
        claimed->delivery_id = delivery->id;
        claimed->event_uuid = delivery->event_uuid;
        claimed->event_type = delivery->event_type;
        claimed->body = std::move(delivery->request_body);
        claimed->attempt_count = delivery->attempt_count;
        claimed->hook = std::move(*hook);
        claimed->created = delivery->created;
        return claimed;
    }

    /// How long a delivery attempted in the caller's thread is kept from the workers.
    std::chrono::milliseconds sync_hold() const
    {
        return options.connect_timeout + options.request_timeout + options.lease;
    }

    /// Attempts every delivery at once on a private io_context in the calling thread, records
    /// the outcomes, and returns them.
    std::vector<HookResult> attempt_now(const std::vector<std::shared_ptr<const ClaimedDelivery>>& deliveries,
                                        AttemptTrigger trigger)
    {
        asio::io_context io;
        HttpClient http(io.get_executor(), client_options(options));
        std::vector<HookResult> results(deliveries.size());
        std::vector<AttemptRecord> records(deliveries.size());
        std::set<std::int64_t> failed_hooks;
        std::size_t remaining = deliveries.size();
        for (std::size_t i = 0; i < deliveries.size(); ++i) {
            send(deliveries[i], http, trigger,
                 [this, i, &results, &records, &failed_hooks, &remaining, &io,
                  d = deliveries[i]](Attempt attempt, HttpResult result) {
                     results[i] = HookResult{d->hook.id, d->delivery_id, attempt};
                     run_callback(d, attempt);
                     if (!attempt.succeeded())
                         failed_hooks.insert(d->hook.id);
                     records[i] = judge(*d, std::move(attempt), result);
                     if (--remaining == 0)
                         io.stop(); // Idle keep-alive connections would keep io.run() going.
                 });
        }
        io.run();
        store.record_attempts(records);
        check_health(failed_hooks);
        return results;
    }
};

Dispatcher::Dispatcher(asio::any_io_executor executor, const Registry& registry, SubscriptionStore& store,
                       DispatcherOptions options)
    : impl_(std::make_shared<Impl>(executor, registry, store, std::move(options))), executor_(executor)
{
}

Dispatcher::~Dispatcher()
{
    try {
        stop();
    } catch (...) {
    }
}

void Dispatcher::start()
{
    impl_->replay_journals();
    impl_->running_for_callers = true;
    asio::post(impl_->strand, [self = impl_] {
        if (self->running)
            return;
        self->running = true;
        self->stopping = false;
        self->shutting_down = false;
        self->log(LogLevel::info, "dispatcher " + self->worker + " started");
        self->renew();
        self->schedule_checkpoint();
        self->sweep_retention(std::chrono::milliseconds(0));
        self->pump();
    });
}

void Dispatcher::stop(std::chrono::milliseconds deadline)
{
    if (impl_->running_for_callers.exchange(false))
        stop_workers(deadline);
    // Started or not: what was accepted goes to the store before the dispatcher goes.
    if (impl_->journal) {
        if (impl_->journal->wait_settled(deadline)) {
            impl_->journal->close_settled();
        } else {
            impl_->journal_closed = true;
            impl_->log(LogLevel::warning, "stop: some accepted events are not in the store yet; "
                                          "they stay in the journal for the next start");
        }
    }
    // A checkpoint job the timer queued before the stop may still be running: the store must
    // outlive it.
    std::unique_lock lock{impl_->checkpoint_mutex};
    impl_->checkpoint_done.wait_for(lock, deadline, [&] { return !impl_->checkpointing; });
}

void Dispatcher::stop_workers(std::chrono::milliseconds deadline)
{
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    asio::post(impl_->strand, [self = impl_, deadline, done] {
        if (!self->running) {
            done->set_value();
            return;
        }
        self->begin_stop(deadline, done);
    });
    // If the executor no longer runs, nothing more happens anyway: leases run out and the next
    // dispatcher takes over.
    if (future.wait_for(deadline + 5s) != std::future_status::ready)
        impl_->log(LogLevel::warning, "stop: the executor did not finish in time");
}

bool Dispatcher::wait_stored(std::chrono::milliseconds timeout)
{
    return !impl_->journal || impl_->journal->wait_settled(timeout);
}

void Dispatcher::wake()
{
    impl_->wake();
}

void Dispatcher::register_callback(std::string name, HookCallback callback)
{
    impl_->callback_names.insert(name);
    impl_->callbacks[std::move(name)] = std::move(callback);
}

const std::set<std::string, std::less<>>& Dispatcher::callback_names() const noexcept
{
    return impl_->callback_names;
}

DispatcherCounters Dispatcher::counters() const noexcept
{
    const auto& c = impl_->count;
    return {c.queued.load(),  c.in_flight.load(), c.delivered.load(),
            c.failed.load(),  c.retried.load(),   c.handed_off.load()};
}

const Registry& Dispatcher::registry() const noexcept { return impl_->registry; }
SubscriptionStore& Dispatcher::store() noexcept { return impl_->store; }
const DispatcherOptions& Dispatcher::options() const noexcept { return impl_->options; }

namespace {

/// Checks that `delivery` may be sent again now.
void check_resendable(const Delivery& delivery, bool force)
{
    if (force)
        return;
    if (delivery.state == DeliveryState::delivered)
        throw EventAlreadyDelivered("Event " + delivery.event_uuid + " is already delivered to hook " +
                                    std::to_string(delivery.hook_id) + ".");
    if (delivery.state == DeliveryState::pending && delivery.attempt_count > 0)
        throw EventStillRetrying("Event " + delivery.event_uuid + " is still in retry process for hook " +
                                 std::to_string(delivery.hook_id) + ".");
}

} // namespace

DeliverResult Dispatcher::deliver_data(json::value data, std::string_view event_type, const DeliverOptions& options)
{
    Impl& impl = *impl_;
    DeliverResult result;
    TimePoint now = Clock::now();

    if (!options.event_uuid.empty()) {
        auto deliveries = impl.store.deliveries_of_event(options.event_uuid);
        if (deliveries.empty())
            throw WebhookEventDoesNotExist("Event " + options.event_uuid + " does not exist.");
        for (const Delivery& d : deliveries)
            check_resendable(d, options.force);
        result.event_uuid = options.event_uuid;
        result.hook_count = deliveries.size();
        TimePoint due = options.sync ? now + impl.sync_hold() : now;
        for (const Delivery& d : deliveries)
            impl.store.requeue(d.id, due);
        if (options.sync) {
            std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
            for (const Delivery& d : deliveries)
                loaded.push_back(impl.load(d.id));
            result.results = impl.attempt_now(loaded, AttemptTrigger::manual);
        }
        impl.wake();
        return result;
    }

    NewEvent ev = impl.make_event(std::move(data), event_type, options, now);
    if (impl.may_journal(ev, options))
        return impl.accept(std::move(ev));
    if (options.sync)
        ev.due = now + impl.sync_hold();

    EnqueuedEvent written = impl.commits.commit(std::move(ev));
    result.event_uuid = written.uuid;
    result.duplicate = written.duplicate;
    result.hook_count = written.delivery_ids.size();
    impl.count.queued += written.delivery_ids.size();
    if (written.delivery_ids.empty())
        return result;
    if (options.sync) {
        std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
        for (std::int64_t id : written.delivery_ids)
            loaded.push_back(impl.load(id));
        result.results = impl.attempt_now(loaded, AttemptTrigger::scheduled);
        impl.wake(); // Failed ones are due again by their countdown.
        return result;
    }
    impl.wake();
    return result;
}

void Dispatcher::async_deliver_data(json::value data, std::string_view event_type, DeliverOptions options,
                                    std::function<void(boost::system::error_code, DeliverResult)> handler)
{
    auto complete_with_error = [&](const Error& e) {
        asio::post(impl_->executor, [handler, ec = boost::system::error_code(e.error_code())] {
            handler(ec, DeliverResult{});
        });
    };
    if (options.sync || !options.event_uuid.empty()) {
        // Re-sends and sync attempts touch the store and the network: run them on the executor.
        asio::post(impl_->executor, [this, data = std::move(data), type = std::string(event_type),
                                     options = std::move(options), handler = std::move(handler)]() mutable {
            options.sync = false;
            try {
                handler({}, deliver_data(std::move(data), type, options));
            } catch (const Error& e) {
                handler(boost::system::error_code(e.error_code()), DeliverResult{});
            }
        });
        return;
    }
    NewEvent ev;
    try {
        ev = impl_->make_event(std::move(data), event_type, options, Clock::now());
        if (impl_->may_journal(ev, options)) {
            asio::post(impl_->executor, [handler = std::move(handler), result = impl_->accept(std::move(ev))]() mutable {
                handler({}, std::move(result));
            });
            return;
        }
    } catch (const Error& e) {
        complete_with_error(e);
        return;
    }
    impl_->commits.commit_async(std::move(ev), [self = impl_, handler = std::move(handler)](
                                                   std::exception_ptr error, EnqueuedEvent written, NewEvent) {
        boost::system::error_code ec;
        DeliverResult result;
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const Error& e) {
                ec = e.error_code();
            } catch (...) {
                ec = std::error_code(make_error_code(errc::store_failure));
            }
        } else {
            result.event_uuid = written.uuid;
            result.duplicate = written.duplicate;
            result.hook_count = written.delivery_ids.size();
            self->count.queued += written.delivery_ids.size();
            if (!written.delivery_ids.empty())
                self->wake();
        }
        asio::post(self->executor, [handler, ec, result = std::move(result)]() mutable { handler(ec, std::move(result)); });
    });
}

HookResult Dispatcher::retry_delivery(std::int64_t delivery_id, bool force)
{
    auto delivery = impl_->store.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    check_resendable(*delivery, force);
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync_hold());
    auto results = impl_->attempt_now({impl_->load(delivery_id)}, AttemptTrigger::manual);
    impl_->wake();
    return results.front();
}

void Dispatcher::async_retry_delivery(std::int64_t delivery_id, bool force, std::function<void(HookResult)> handler)
{
    auto delivery = impl_->store.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    check_resendable(*delivery, force);
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync_hold());
    auto claimed = impl_->load(delivery_id);
    impl_->send(claimed, impl_->client, AttemptTrigger::manual,
                [self = impl_, claimed, handler = std::move(handler)](Attempt attempt, HttpResult result) {
                    HookResult hook_result{claimed->hook.id, claimed->delivery_id, attempt};
                    self->run_callback(claimed, attempt);
                    asio::post(self->strand, [self, claimed, attempt = std::move(attempt), result = std::move(result)]() mutable {
                        if (!attempt.succeeded())
                            self->failing_hooks.insert(claimed->hook.id);
                        self->pending_records.push_back(self->judge(*claimed, std::move(attempt), result));
                        self->post_flush();
                    });
                    handler(std::move(hook_result));
                });
}

// --- the default dispatcher -------------------------------------------------------------------------

namespace {
std::atomic<Dispatcher*> default_instance{nullptr};
}

void set_default_dispatcher(Dispatcher* dispatcher) noexcept
{
    default_instance.store(dispatcher);
}

Dispatcher& default_dispatcher()
{
    Dispatcher* d = default_instance.load();
    if (d == nullptr)
        throw Error(errc::no_default_dispatcher,
                    "whisperer::deliver_event needs a default dispatcher: call whisperer::set_default_dispatcher first.");
    return *d;
}

} // namespace whisperer
