// The dispatcher's owner: the stages of its pipeline, wired, with the claim loop and the stop protocol.
#ifndef WHISPERER_SRC_DISPATCH_PIPELINE_HPP
#define WHISPERER_SRC_DISPATCH_PIPELINE_HPP

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

#include <whisperer/dispatcher.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

namespace whisperer {

/// The dispatcher's pipeline, wired: admission -> claims -> sending -> verdict -> recording, with
/// endpoint health and maintenance beside it. This owner runs the claim loop and the stop
/// protocol on `strand`; the stages hand it values through the sinks it gives them, and every
/// store call of theirs runs on `runner` (docs/DISPATCHER.md).
struct Dispatcher::Impl : std::enable_shared_from_this<Impl> {
    Impl(boost::asio::any_io_executor ex, const Registry& reg, SubscriptionStore& st, DispatcherOptions opts);

    ~Impl() { runner.join(); }

    // --- shared, thread-safe ---------------------------------------------------------------------
    boost::asio::any_io_executor executor;
    boost::asio::strand<boost::asio::any_io_executor> strand;
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
    // While positive, the store failed and nothing calls it until `store_retry_timer` fires.
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
    boost::asio::steady_timer wake_timer;
    // Ends a store pause. A timer of its own: a claim that was running when the store failed
    // re-arms `wake_timer` as it completes, which would cancel the pause's end and leave the
    // dispatcher paused for good.
    boost::asio::steady_timer store_retry_timer;
    boost::asio::steady_timer batch_timer;
    bool batch_armed = false;
    boost::asio::steady_timer stop_timer;
    std::shared_ptr<std::promise<void>> stopped;

    dispatch::KeepAlive keep_alive();

    const CountdownRegistry& countdowns() const;

    // --- making and waking ------------------------------------------------------------------------

    /// Lets the workers look at the outbox now (after new rows were written).
    void wake();

    /// Lets the workers look at the outbox for new rows of `hooks`. A hook that holds so much of
    /// its quota that a claim would give it nothing is left to its own completions instead (one
    /// whose owner or origin does, to theirs): a stalled receiver's new rows then cost no claim
    /// each.
    void wake_hooks(std::vector<std::int64_t> hooks);

    void post_wake();

    void woken();

    /// Starts the deliveries admission handed off, on the strand, then settles their journal
    /// record; a stopped dispatcher gives their leases back instead.
    void take_handoff(std::vector<ClaimedDelivery> handed_off, std::function<void()> settle);

    /// Gives up the leases of `ids` on the store runner (another dispatcher may claim them at
    /// once), then runs `then` there.
    void release_leases(std::vector<std::int64_t> ids, std::function<void()> then = {});

    // --- claims (strand) ---------------------------------------------------------------------------

    dispatch::SlotsSnapshot slots_now() const;

    /// Claims what `dispatch::plan_claim` says is worth claiming now, on the store runner.
    void pump();

    void claim_done(const ClaimRequest& request, std::vector<ClaimedDelivery> claimed, std::optional<TimePoint> next,
                    const std::string& error);

    /// After a delivery of `owner` to `origin` finished: a held-back owner or origin with room
    /// again lets the next pump claim.
    void release_held_back_groups(const std::string& owner, const std::string& origin);

    /// Whether `hook` holds so much of its quota that a claim would give it no room (see pump()).
    bool quota_held(std::int64_t hook) const;

    /// Whether the owner or origin of `hook`'s last delivery holds so much of its quota that a
    /// claim would give it no room; if so, that group is held back until its completions free
    /// room (see pump()).
    bool group_held(std::int64_t hook);

    /// Arms the wake-up timer for the next due row (or the idle poll, whichever comes first).
    void sleep_until(std::optional<TimePoint> next);

    // --- sending (strand, then the executor) -------------------------------------------------------

    /// Counts `claimed` as in flight and sends them off the strand: signing and writing the
    /// requests runs on the executor's other threads while the strand claims and records. Their
    /// slots are already held. A delivery whose owner or origin holds its quota (a hand-off of a
    /// hook the slots did not know yet) gives its lease back instead, for a later claim.
    void start(std::vector<ClaimedDelivery> claimed);

    /// Hands a finished attempt to the strand. Attempts that finish while the strand is busy
    /// reach it together, in one hand-off.
    void completed(std::shared_ptr<const ClaimedDelivery> delivery, Attempt attempt, HttpResult result);

    void finished(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt, const HttpResult& result);

    // --- verdicts and recording --------------------------------------------------------------------

    /// The record of `attempt` of `delivery`: its verdict (`dispatch::decide`), counted and logged.
    dispatch::SyncDelivery::Judged judge(const ClaimedDelivery& delivery, Attempt attempt, const HttpResult& result);

    /// Tells the host's callback, judges the attempt and hands the record to the recorder.
    void record(const std::shared_ptr<const ClaimedDelivery>& delivery, Attempt attempt, const HttpResult& result,
                bool holds_slot);

    /// After the recorder wrote outcomes (or had none to write): free their slots, check the
    /// hooks that failed, and look for more work.
    void recorded(dispatch::RecordedOutcomes outcome);

    /// The store refused: log, keep what is pending, and try again with growing pauses.
    void store_failed(const std::string& error);

    std::vector<std::int64_t> leases_in_flight() const;

    // --- stopping (strand) ---------------------------------------------------------------------------

    void begin_stop(std::chrono::milliseconds deadline, std::shared_ptr<std::promise<void>> done);

    /// Finishes the stop once nothing is in flight, claimed or being written.
    void maybe_finish_stop();
};

} // namespace whisperer

#endif
