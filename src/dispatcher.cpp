#include <whisperer/dispatcher.hpp>

#include "detail/delivery_slots.hpp"
#include "dispatch/admission.hpp"
#include "dispatch/attempt_sender.hpp"
#include "dispatch/claim_plan.hpp"
#include "dispatch/counters.hpp"
#include "dispatch/endpoint_health.hpp"
#include "dispatch/hook_callbacks.hpp"
#include "dispatch/log_lines.hpp"
#include "dispatch/maintenance.hpp"
#include "dispatch/outcome_recorder.hpp"
#include "dispatch/store_runner.hpp"
#include "dispatch/sync_delivery.hpp"
#include "dispatch/verdict.hpp"

#include <whisperer/envelope.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace whisperer {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

/// How often a busy dispatcher looks at the outbox for rows no completion will bring it to.
constexpr std::chrono::milliseconds busy_poll{100};

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

} // namespace

/// The dispatcher's pipeline, wired: admission -> claims -> sending -> verdict -> recording, with
/// endpoint health and maintenance beside it. This owner runs the claim loop and the stop
/// protocol on `strand`; the stages hand it values through the sinks it gives them, and every
/// store call of theirs runs on `runner` (docs/DISPATCHER.md).
struct Dispatcher::Impl : std::enable_shared_from_this<Impl> {
    Impl(asio::any_io_executor ex, const Registry& reg, SubscriptionStore& st, DispatcherOptions opts)
        : executor(ex),
          strand(asio::make_strand(ex)),
          registry(reg),
          store(st),
          options(std::move(opts)),
          log(options.log),
          worker(random_worker_id()),
          runner(options.store_threads),
          slots(slot_quotas(options)),
          client(ex, dispatch::client_options(options)),
          callbacks(ex, options.data_key, log, keep_alive()),
          health(st, runner, ex, options, log),
          admission(st, runner, ex, reg, options, slots, count, worker, log, keep_alive(),
                    {.hand_off = [this](std::vector<ClaimedDelivery> d, std::function<void()> settle) {
                         take_handoff(std::move(d), std::move(settle));
                     },
                     .new_rows = [this](std::optional<std::vector<std::int64_t>> hooks) {
                         if (hooks)
                             wake_hooks(std::move(*hooks));
                         else
                             wake();
                     }}),
          recorder(strand, runner, st, options, log, keep_alive(),
                   {.written = [this](dispatch::RecordedOutcomes o) { recorded(std::move(o)); },
                    .failed = [this](const std::string& error) { store_failed(error); }}),
          maintenance(strand, runner, st, options, worker, log, keep_alive(), [this] { return leases_in_flight(); }),
          sync(st, options, sender, callbacks, health,
               [this](const ClaimedDelivery& d, Attempt a, const HttpResult& r) { return judge(d, std::move(a), r); }),
          wake_timer(strand),
          batch_timer(strand),
          stop_timer(strand)
    {
    }

    ~Impl() { runner.join(); }

    // --- shared, thread-safe ---------------------------------------------------------------------
    asio::any_io_executor executor;
    asio::strand<asio::any_io_executor> strand;
    const Registry& registry;
    SubscriptionStore& store;
    DispatcherOptions options;
    CountdownRegistry builtin_countdowns;
    dispatch::Logger log;
    const std::string worker;
    dispatch::Counters count;
    dispatch::StoreRunner runner;
    detail::DeliverySlots slots;
    HttpClient client;
    dispatch::AttemptSender sender;
    dispatch::HookCallbacks callbacks;
    dispatch::EndpointHealth health;
    dispatch::Admission admission;
    dispatch::OutcomeRecorder recorder;
    dispatch::Maintenance maintenance;
    dispatch::SyncDelivery sync;
    std::atomic<bool> wake_posted{false};
    std::atomic<bool> wake_all{false};        // A wake-up for any rows, not only of woken_hooks.
    std::mutex woken_mutex;
    std::vector<std::int64_t> woken_hooks;    // Hooks with new rows since the last wake-up ran.
    std::atomic<bool> running_for_callers{false}; // Between start() and stop(), as callers see it.
    struct Completion {
        std::shared_ptr<const ClaimedDelivery> delivery;
        Attempt attempt;
        HttpResult result;
    };
    std::mutex completions_mutex;
    std::vector<Completion> completions; // Finished attempts on their way to the strand.
    bool completions_posted = false;     // Guarded by completions_mutex.

    // --- on the strand only ---------------------------------------------------------------------
    bool running = false;
    bool stopping = false;
    bool shutting_down = false; // The stop deadline passed: requests in flight are being cut.
    bool finishing = false;     // The last outcomes are being written before the stop completes.
    bool claiming = false;      // A claim is on the store runner.
    std::unordered_map<std::int64_t, std::string> in_flight; // delivery id -> origin (its quota's key)
    std::chrono::milliseconds store_backoff{0};
    std::chrono::milliseconds store_pause{0}; // The last pause after a store failure; 0 once it works.
    // Whether the outbox may hold rows the last claim did not see: new events, retries falling due,
    // rows of other processes, or rows a claim left for want of room. Completions alone do not set it.
    bool outbox_unseen = true;
    // Hooks, owners and origins that may have rows left for want of their quota (a claim gave
    // them no room, or they took all it gave, or a wake-up brought them rows while they were that
    // full). Their own completions claim again, once they have room (`hooks_held_back`).
    dispatch::HeldBack held_back;
    bool hooks_held_back = false; // A hook, owner or origin held back has room again.
    asio::steady_timer wake_timer;
    asio::steady_timer batch_timer;
    bool batch_armed = false;
    asio::steady_timer stop_timer;
    std::shared_ptr<std::promise<void>> stopped;

    dispatch::KeepAlive keep_alive()
    {
        return [this] { return std::shared_ptr<const void>(shared_from_this()); };
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
        asio::post(strand, [self = shared_from_this()] { self->woken(); });
    }

    void woken()
    {
        wake_posted = false;
        std::vector<std::int64_t> hooks;
        {
            std::lock_guard lock{woken_mutex};
            hooks.swap(woken_hooks);
        }
        bool claimable = wake_all.exchange(false);
        for (std::int64_t hook : hooks) {
            if (quota_held(hook))
                held_back.hooks.insert(hook);
            else if (!group_held(hook))
                claimable = true;
        }
        if (!claimable)
            return;
        outbox_unseen = true;
        if (in_flight.empty()) {
            pump(); // Idle: claim at once, for latency.
            return;
        }
        // Busy: gather the events of the next moment into one claim instead of one each.
        if (batch_armed)
            return;
        batch_armed = true;
        batch_timer.expires_after(options.batch_window);
        batch_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            self->batch_armed = false;
            if (!ec)
                self->pump();
        });
    }

    /// Starts the deliveries admission handed off, on the strand, then settles their journal
    /// record; a stopped dispatcher gives their leases back instead.
    void take_handoff(std::vector<ClaimedDelivery> handed_off, std::function<void()> settle)
    {
        asio::post(strand, [self = shared_from_this(), handed_off = std::move(handed_off),
                            settle = std::move(settle)]() mutable {
            if (!self->running || self->stopping) {
                // Stopped meanwhile: the leases go back, so another dispatcher need not wait them out.
                std::vector<std::int64_t> ids;
                std::vector<std::int64_t> hooks;
                for (const ClaimedDelivery& d : handed_off) {
                    ids.push_back(d.delivery_id);
                    hooks.push_back(d.hook.id);
                }
                self->slots.unreserve(hooks);
                self->release_leases(std::move(ids), std::move(settle));
                return;
            }
            self->slots.started_reserved(handed_off.size());
            self->count.handed_off += handed_off.size();
            self->start(std::move(handed_off));
            settle();
        });
    }

    /// Gives up the leases of `ids` on the store runner (another dispatcher may claim them at
    /// once), then runs `then` there.
    void release_leases(std::vector<std::int64_t> ids, std::function<void()> then = {})
    {
        runner.post([this, ids = std::move(ids), then = std::move(then)] {
            try {
                store.release_leases(worker, ids);
            } catch (const std::exception& e) {
                log(LogLevel::warning, std::string("could not release leases (they run out instead): ") + e.what());
            }
            if (then)
                then();
        });
    }

    // --- claims (strand) ---------------------------------------------------------------------------

    dispatch::SlotsSnapshot slots_now() const
    {
        return {.used = slots.used(),
                .hook_quota = slots.hook_quota(),
                .owner_quota = slots.owner_quota(),
                .origin_quota = slots.origin_quota(),
                .per_hook = slots.per_hook(),
                .per_owner = slots.per_owner(),
                .per_origin = slots.per_origin()};
    }

    /// Claims what `dispatch::plan_claim` says is worth claiming now, on the store runner.
    void pump()
    {
        if (!running || stopping || store_backoff.count() > 0 || claiming)
            return;
        const dispatch::ClaimOptions claim_options{.worker = worker,
                                                   .lease = options.lease,
                                                   .max_in_flight = options.max_in_flight,
                                                   .claim_batch = options.claim_batch,
                                                   .claim_min_share = options.claim_min_share};
        std::optional<ClaimRequest> request =
            dispatch::plan_claim(slots_now(), {.unseen = outbox_unseen, .held_back_has_room = hooks_held_back},
                                 claim_options, Clock::now());
        if (!request)
            return;
        request->limit = slots.reserve_claim(request->limit);
        if (request->limit == 0)
            return;
        claiming = true;
        // What arrives while the claim runs sets these again.
        outbox_unseen = false;
        hooks_held_back = false;
        // Requests in flight claim again as they complete; only an idle dispatcher needs to know
        // when the next row falls due.
        const bool idle = in_flight.empty();
        runner.post([self = shared_from_this(), request = std::move(*request), idle]() mutable {
            std::vector<ClaimedDelivery> claimed;
            std::optional<TimePoint> next;
            std::string error;
            try {
                claimed = self->store.claim_due(request);
                if (claimed.empty() && idle)
                    next = self->store.next_due();
            } catch (const std::exception& e) {
                error = e.what();
                if (error.empty())
                    error = "unknown error";
            }
            auto& loop = self->strand;
            asio::post(loop, [self = std::move(self), request = std::move(request), claimed = std::move(claimed),
                                next, error = std::move(error)]() mutable {
                self->claim_done(request, std::move(claimed), next, error);
            });
        });
    }

    void claim_done(const ClaimRequest& request, std::vector<ClaimedDelivery> claimed, std::optional<TimePoint> next,
                    const std::string& error)
    {
        claiming = false;
        if (!error.empty()) {
            slots.claimed(request.limit, {});
            outbox_unseen = true;
            hooks_held_back = true;
            store_failed(error);
            maybe_finish_stop();
            return;
        }
        store_pause = 0ms;
        std::vector<std::int64_t> claimed_hooks;
        claimed_hooks.reserve(claimed.size());
        for (const ClaimedDelivery& d : claimed)
            claimed_hooks.push_back(d.hook.id);
        slots.claimed(request.limit, claimed_hooks);
        if (!running || stopping) {
            // Stopped while the claim ran: the leases go back at once.
            std::vector<std::int64_t> ids;
            for (const ClaimedDelivery& d : claimed) {
                slots.refused(d.hook.id);
                ids.push_back(d.delivery_id);
            }
            if (!ids.empty())
                release_leases(std::move(ids));
            maybe_finish_stop();
            return;
        }
        const bool full = claimed.size() == request.limit;
        outbox_unseen = outbox_unseen || full;
        dispatch::HeldBack held = dispatch::held_back_by(request, claimed);
        held_back.hooks.merge(held.hooks);
        held_back.owners.merge(held.owners);
        held_back.origins.merge(held.origins);
        start(std::move(claimed));
        if (full || outbox_unseen || hooks_held_back) {
            asio::post(strand, [self = shared_from_this()] { self->pump(); });
            if (full)
                return;
        }
        if (!in_flight.empty() && !next)
            next = request.now + busy_poll; // Rows of other processes, retries falling due.
        sleep_until(next);
    }

    /// After a delivery of `owner` to `origin` finished: a held-back owner or origin with room
    /// again lets the next pump claim.
    void release_held_back_groups(const std::string& owner, const std::string& origin)
    {
        if (auto it = held_back.owners.find(owner); it != held_back.owners.end() &&
            dispatch::claim_room(slots.held_by_owner(owner), slots.owner_quota()) > 0) {
            held_back.owners.erase(it);
            hooks_held_back = true;
        }
        if (auto it = held_back.origins.find(origin); it != held_back.origins.end() &&
            dispatch::claim_room(slots.held_by_origin(origin), slots.origin_quota()) > 0) {
            held_back.origins.erase(it);
            hooks_held_back = true;
        }
    }

    /// Whether `hook` holds so much of its quota that a claim would give it no room (see pump()).
    bool quota_held(std::int64_t hook) const
    {
        const std::size_t quota = slots.hook_quota();
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
        if (dispatch::claim_room(slots.held_by_owner(group->first), slots.owner_quota()) == 0) {
            held_back.owners.insert(group->first);
            held = true;
        }
        if (dispatch::claim_room(slots.held_by_origin(group->second), slots.origin_quota()) == 0) {
            held_back.origins.insert(group->second);
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

    // --- sending (strand, then the executor) -------------------------------------------------------

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
                held_back.owners.insert(delivery.hook.owner);
                held_back.origins.insert(std::move(origin));
                continue;
            }
            in_flight.emplace(delivery.delivery_id, std::move(origin));
            batch.push_back(std::make_shared<const ClaimedDelivery>(std::move(delivery)));
        }
        if (!refused.empty())
            release_leases(std::move(refused));
        if (batch.empty())
            return;
        count.in_flight += batch.size();
        asio::post(executor, [self = shared_from_this(), batch = std::move(batch)] {
            for (const auto& delivery : batch)
                self->sender.send(delivery, self->client, AttemptTrigger::scheduled,
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
        if (auto held = held_back.hooks.find(delivery->hook.id);
            held != held_back.hooks.end() && !quota_held(delivery->hook.id)) {
            held_back.hooks.erase(held);
            hooks_held_back = true;
        }
        release_held_back_groups(delivery->hook.owner, origin);
        count.in_flight--;
        if (shutting_down && result.failure == FailureClass::io) {
            // Cut by stop(): not an attempt of the receiver's; the lease is released instead.
            release_leases({delivery->delivery_id});
            slots.freed(1);
        } else {
            record(delivery, std::move(attempt), result, true);
        }
        recorder.flush_soon(in_flight.empty() || stopping);
    }

    // --- verdicts and recording --------------------------------------------------------------------

    /// The record of `attempt` of `delivery`: its verdict (`dispatch::decide`), counted and logged.
    dispatch::SyncDelivery::Judged judge(const ClaimedDelivery& delivery, Attempt attempt, const HttpResult& result)
    {
        const dispatch::Verdict verdict = dispatch::decide(
            attempt, result, delivery.hook,
            {.max_attempts = options.max_attempts, .max_retry_after = options.max_retry_after, .countdowns = &countdowns()},
            Clock::now());
        if (!verdict.countdown_error.empty())
            log(LogLevel::error, "hook " + std::to_string(delivery.hook.id) + " has an unusable countdown (" +
                                     verdict.countdown_error + "); retrying in 60 s");
        switch (verdict.verdict) {
        case AttemptVerdict::delivered: count.delivered++; break;
        case AttemptVerdict::failed: count.failed++; break;
        case AttemptVerdict::retry: count.retried++; break;
        }
        AttemptRecord record;
        record.delivery_id = delivery.delivery_id;
        record.hook_id = delivery.hook.id;
        record.worker = worker;
        record.verdict = verdict.verdict;
        record.next_attempt_at = verdict.next_attempt_at;
        if (log.enabled())
            log(attempt.succeeded() ? LogLevel::info : LogLevel::warning,
                dispatch::describe_outcome(delivery, attempt, record, Clock::now()));
        record.attempt = std::move(attempt);
        return {std::move(record), verdict.gone};
    }

    /// Tells the host's callback, judges the attempt and hands the record to the recorder.
    void record(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt, const HttpResult& result,
                bool holds_slot)
    {
        callbacks.run(delivery, attempt);
        dispatch::SyncDelivery::Judged judged = judge(*delivery, std::move(attempt), result);
        if (judged.gone)
            health.disable(delivery->hook.id, dispatch::gone_reason);
        recorder.add(std::move(judged.record), holds_slot);
    }

    /// After the recorder wrote outcomes (or had none to write): free their slots, check the
    /// hooks that failed, and look for more work.
    void recorded(dispatch::RecordedOutcomes outcome)
    {
        store_backoff = 0ms;
        store_pause = 0ms;
        slots.freed(outcome.held);
        // A retry is a row the last claim did not see, due at its countdown.
        if (outcome.retries)
            outbox_unseen = true;
        health.check(std::move(outcome.failing_hooks));
        if (stopping) {
            maybe_finish_stop();
            return;
        }
        pump();
    }

    /// The store refused: log, keep what is pending, and try again with growing pauses.
    void store_failed(const std::string& error)
    {
        // The pause grows over consecutive failures, whichever call failed, until one succeeds.
        store_pause = std::clamp(store_pause * 2, 100ms, 5000ms);
        store_backoff = store_pause;
        log(LogLevel::error, "store failure, retrying in " + std::to_string(store_backoff.count()) + " ms: " + error);
        wake_timer.expires_after(store_backoff);
        wake_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec)
                return;
            // Try again the normal way: a new failure comes back here with a longer pause.
            self->store_backoff = 0ms;
            self->outbox_unseen = true;
            self->recorder.flush();
        });
    }

    std::vector<std::int64_t> leases_in_flight() const
    {
        std::vector<std::int64_t> ids;
        ids.reserve(in_flight.size());
        for (const auto& entry : in_flight)
            ids.push_back(entry.first);
        return ids;
    }

    // --- stopping (strand) ---------------------------------------------------------------------------

    void begin_stop(std::chrono::milliseconds deadline, std::shared_ptr<std::promise<void>> done)
    {
        stopped = std::move(done);
        if (stopping && !running) {
            std::exchange(stopped, nullptr)->set_value();
            return;
        }
        stopping = true;
        wake_timer.cancel();
        if (in_flight.empty()) {
            recorder.flush(); // Ends in recorded(), which finishes the stop.
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

    /// Finishes the stop once nothing is in flight, claimed or being written.
    void maybe_finish_stop()
    {
        if (!stopping || !stopped || finishing || !in_flight.empty() || claiming || recorder.writing())
            return;
        finishing = true;
        recorder.write_last([self = shared_from_this()](dispatch::RecordedOutcomes outcome) {
            self->slots.freed(outcome.held);
            self->finishing = false;
            self->running = false;
            self->client.shutdown(); // Closes the idle keep-alive connections.
            self->stop_timer.cancel();
            self->maintenance.stop();
            self->batch_timer.cancel();
            self->recorder.cancel_timer();
            self->wake_timer.cancel();
            if (self->stopped)
                std::exchange(self->stopped, nullptr)->set_value();
        });
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
    // The store runner's threads end here, not in a handler of theirs that drops the last reference.
    impl_->runner.join();
}

void Dispatcher::start()
{
    impl_->admission.replay_journals();
    impl_->running_for_callers = true;
    impl_->admission.set_handing_off(true);
    asio::post(impl_->strand, [self = impl_] {
        if (self->running)
            return;
        self->running = true;
        self->stopping = false;
        self->shutting_down = false;
        self->log(LogLevel::info, "dispatcher " + self->worker + " started");
        self->outbox_unseen = true;
        self->maintenance.start();
        self->pump();
    });
}

void Dispatcher::stop(std::chrono::milliseconds deadline)
{
    if (impl_->running_for_callers.exchange(false)) {
        impl_->admission.set_handing_off(false);
        stop_workers(deadline);
    }
    // Started or not: what was accepted goes to the store before the dispatcher goes.
    impl_->admission.close(deadline);
    // Store calls the stages queued (lease releases and renewals, housekeeping, health checks):
    // the store must outlive them.
    if (!impl_->runner.wait_idle(deadline))
        impl_->log(LogLevel::warning, "stop: store calls still running after the deadline");
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
    return impl_->admission.wait_stored(timeout);
}

void Dispatcher::wake()
{
    impl_->wake();
}

void Dispatcher::register_callback(std::string name, HookCallback callback)
{
    impl_->callbacks.add(std::move(name), std::move(callback));
}

const std::set<std::string, std::less<>>& Dispatcher::callback_names() const noexcept
{
    return impl_->callbacks.names();
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
        TimePoint due = options.sync ? now + impl.sync.hold() : now;
        for (const Delivery& d : deliveries)
            impl.store.requeue(d.id, due);
        if (options.sync) {
            std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
            for (const Delivery& d : deliveries)
                loaded.push_back(impl.sync.load(d.id));
            result.results = impl.sync.attempt_now(loaded, AttemptTrigger::manual);
        }
        impl.wake();
        return result;
    }

    NewEvent ev = impl.admission.make_event(std::move(data), event_type, options, now);
    if (impl.admission.may_journal(ev, options))
        return impl.admission.accept(std::move(ev));
    if (options.sync)
        ev.due = now + impl.sync.hold();

    EnqueuedEvent written = impl.admission.commits().commit(std::move(ev));
    result.event_uuid = written.uuid;
    result.duplicate = written.duplicate;
    result.hook_count = written.delivery_ids.size();
    impl.count.queued += written.delivery_ids.size();
    if (written.delivery_ids.empty())
        return result;
    if (options.sync) {
        std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
        for (std::int64_t id : written.delivery_ids)
            loaded.push_back(impl.sync.load(id));
        result.results = impl.sync.attempt_now(loaded, AttemptTrigger::scheduled);
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
        ev = impl_->admission.make_event(std::move(data), event_type, options, Clock::now());
        if (impl_->admission.may_journal(ev, options)) {
            asio::post(impl_->executor, [handler = std::move(handler), result = impl_->admission.accept(std::move(ev))]() mutable {
                handler({}, std::move(result));
            });
            return;
        }
    } catch (const Error& e) {
        complete_with_error(e);
        return;
    }
    impl_->admission.commits().commit_async(std::move(ev), [self = impl_, handler = std::move(handler)](
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
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync.hold());
    auto results = impl_->sync.attempt_now({impl_->sync.load(delivery_id)}, AttemptTrigger::manual);
    impl_->wake();
    return results.front();
}

void Dispatcher::async_retry_delivery(std::int64_t delivery_id, bool force, std::function<void(HookResult)> handler)
{
    auto delivery = impl_->store.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    check_resendable(*delivery, force);
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync.hold());
    auto claimed = impl_->sync.load(delivery_id);
    impl_->sender.send(claimed, impl_->client, AttemptTrigger::manual,
                       [self = impl_, claimed, handler = std::move(handler)](Attempt attempt, HttpResult result) {
                           HookResult hook_result{claimed->hook.id, claimed->delivery_id, attempt};
                           asio::post(self->strand, [self, claimed, attempt = std::move(attempt),
                                                     result = std::move(result)]() mutable {
                               self->record(claimed, std::move(attempt), result, false);
                               self->recorder.flush_soon(self->in_flight.empty() || self->stopping);
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
