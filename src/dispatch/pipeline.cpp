#include "dispatch/pipeline.hpp"

#include "dispatch/verdict.hpp"

#include <whisperer/envelope.hpp>

#include <boost/asio/post.hpp>

#include <algorithm>

namespace whisperer {

namespace asio = boost::asio;
using namespace std::chrono_literals;

/// How often a busy dispatcher looks at the outbox for rows no completion will bring it to.
constexpr std::chrono::milliseconds busy_poll{100};

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

Dispatcher::Impl::Impl(asio::any_io_executor ex, const Registry& reg, SubscriptionStore& st, DispatcherOptions opts)
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
      store_retry_timer(strand),
      batch_timer(strand),
      stop_timer(strand)
{
}

dispatch::KeepAlive Dispatcher::Impl::keep_alive()
{
    return [this] { return std::shared_ptr<const void>(shared_from_this()); };
}

const CountdownRegistry& Dispatcher::Impl::countdowns() const
{
    return options.countdowns ? *options.countdowns : builtin_countdowns;
}

void Dispatcher::Impl::wake()
{
    wake_all = true;
    post_wake();
}

void Dispatcher::Impl::wake_hooks(std::vector<std::int64_t> hooks)
{
    {
        std::lock_guard lock{woken_mutex};
        woken_hooks.insert(woken_hooks.end(), hooks.begin(), hooks.end());
    }
    post_wake();
}

void Dispatcher::Impl::post_wake()
{
    if (wake_posted.exchange(true))
        return;
    asio::post(strand, [self = shared_from_this()] { self->woken(); });
}

void Dispatcher::Impl::woken()
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

void Dispatcher::Impl::take_handoff(std::vector<ClaimedDelivery> handed_off, std::function<void()> settle)
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

void Dispatcher::Impl::release_leases(std::vector<std::int64_t> ids, std::function<void()> then)
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

dispatch::SlotsSnapshot Dispatcher::Impl::slots_now() const
{
    return {.used = slots.used(),
            .hook_quota = slots.hook_quota(),
            .owner_quota = slots.owner_quota(),
            .origin_quota = slots.origin_quota(),
            .per_hook = slots.per_hook(),
            .per_owner = slots.per_owner(),
            .per_origin = slots.per_origin()};
}

void Dispatcher::Impl::pump()
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

void Dispatcher::Impl::release_held_back_groups(const std::string& owner, const std::string& origin)
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

bool Dispatcher::Impl::quota_held(std::int64_t hook) const
{
    const std::size_t quota = slots.hook_quota();
    return slots.held_by(hook) > quota - quota / 4;
}

bool Dispatcher::Impl::group_held(std::int64_t hook)
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

void Dispatcher::Impl::sleep_until(std::optional<TimePoint> next)
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

void Dispatcher::Impl::start(std::vector<ClaimedDelivery> claimed)
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

void Dispatcher::Impl::completed(std::shared_ptr<const ClaimedDelivery> delivery, Attempt attempt, HttpResult result)
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

void Dispatcher::Impl::finished(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt, const HttpResult& result)
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

dispatch::SyncDelivery::Judged Dispatcher::Impl::judge(const ClaimedDelivery& delivery, Attempt attempt, const HttpResult& result)
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

void Dispatcher::Impl::recorded(dispatch::RecordedOutcomes outcome)
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

void Dispatcher::Impl::store_failed(const std::string& error)
{
    // Calls made before the pause began fail during it too (several store threads, one outage):
    // they are the same failure, and the pause runs on as it is.
    if (store_backoff.count() > 0)
        return;
    // The pause grows over consecutive failures, whichever call failed, until one succeeds.
    store_pause = std::clamp(store_pause * 2, 100ms, 5000ms);
    store_backoff = store_pause;
    log(LogLevel::error, "store failure, retrying in " + std::to_string(store_backoff.count()) + " ms: " + error);
    store_retry_timer.expires_after(store_backoff);
    store_retry_timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (ec)
            return;
        // Try again the normal way: a new failure comes back here with a longer pause.
        self->store_backoff = 0ms;
        self->outbox_unseen = true;
        self->recorder.flush();
    });
}

std::vector<std::int64_t> Dispatcher::Impl::leases_in_flight() const
{
    std::vector<std::int64_t> ids;
    ids.reserve(in_flight.size());
    for (const auto& entry : in_flight)
        ids.push_back(entry.first);
    return ids;
}

void Dispatcher::Impl::begin_stop(std::chrono::milliseconds deadline, std::shared_ptr<std::promise<void>> done)
{
    stopped = std::move(done);
    if (stopping && !running) {
        std::exchange(stopped, nullptr)->set_value();
        return;
    }
    stopping = true;
    wake_timer.cancel();
    // A store pause runs on: its end records what is pending, which the stop waits for.
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

void Dispatcher::Impl::maybe_finish_stop()
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
        self->store_retry_timer.cancel();
        if (self->stopped)
            std::exchange(self->stopped, nullptr)->set_value();
    });
}

void Dispatcher::Impl::claim_done(const ClaimRequest& request, std::vector<ClaimedDelivery> claimed,
                                  std::optional<TimePoint> next, const std::string& error)
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
        boost::asio::post(strand, [self = shared_from_this()] { self->pump(); });
        if (full)
            return;
    }
    if (!in_flight.empty() && !next)
        next = request.now + busy_poll; // Rows of other processes, retries falling due.
    sleep_until(next);
}

void Dispatcher::Impl::record(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt,
                              const HttpResult& result, bool holds_slot)
{
    callbacks.run(delivery, attempt);
    dispatch::SyncDelivery::Judged judged = judge(*delivery, std::move(attempt), result);
    if (judged.gone)
        health.disable(delivery->hook.id, dispatch::gone_reason);
    recorder.add(std::move(judged.record), holds_slot);
}

} // namespace whisperer
