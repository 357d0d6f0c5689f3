// Admission: new events into the journal and the store, hand-offs, and replay after a crash.
#ifndef WHISPERER_SRC_DISPATCH_ADMISSION_HPP
#define WHISPERER_SRC_DISPATCH_ADMISSION_HPP

#include "detail/delivery_slots.hpp"
#include "detail/event_journal.hpp"
#include "detail/group_commit.hpp"
#include "dispatch/counters.hpp"
#include "dispatch/keep_alive.hpp"
#include "dispatch/log_lines.hpp"
#include "dispatch/store_runner.hpp"

#include <whisperer/dispatcher.hpp>
#include <whisperer/registry.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace whisperer::dispatch {

/// Where admission sends what it stored, to the stages after it.
struct AdmissionSinks {
    /// Deliveries the store wrote leased to this dispatcher, to send now; `settle` must run once
    /// they are started or their leases given back (`stop` waits for it). Called from the store
    /// runner's threads.
    std::function<void(std::vector<ClaimedDelivery> handed_off, std::function<void()> settle)> hand_off;
    /// New rows for `hooks` wait in the outbox, or, for `std::nullopt`, rows of hooks not known.
    std::function<void(std::optional<std::vector<std::int64_t>> hooks)> new_rows;
};

/// Turns data into events and accepts them: through the journal (the caller waits for one
/// write; the event reaches the store moments later, many to a transaction) or by a commit
/// shared with the callers of the moment. Deliveries that fit in the dispatcher's slots are
/// written leased to it and handed to the sending stage without a claim. Every store write runs
/// on the store runner, but the caller's own commit (`commits().commit`) and the choice of a
/// journaled event's hooks, which run in the caller's thread. Thread-safe.
class Admission {
public:
    Admission(SubscriptionStore& store, StoreRunner& runner, boost::asio::any_io_executor host,
              const Registry& registry, const DispatcherOptions& options, detail::DeliverySlots& slots,
              Counters& count, std::string worker, Logger log, KeepAlive keep_alive, AdmissionSinks sinks);

    /// The event row of new data: uuid, envelope (customised by the event class), checks.
    NewEvent make_event(boost::json::value data, std::string_view event_type, const DeliverOptions& opts,
                        TimePoint now) const;

    /// Whether a new event may go through the journal rather than commit first.
    bool may_journal(const NewEvent& event, const DeliverOptions& opts) const;

    /// Accepts `event` through the journal: its hooks are chosen now, it is durable on return,
    /// and it reaches the store in the background.
    DeliverResult accept(NewEvent event);

    /// Commits shared among concurrent callers, for events that do not go through the journal.
    detail::GroupCommit& commits() noexcept { return commits_; }

    /// Whether new events may be handed off (between the dispatcher's start and stop).
    void set_handing_off(bool on) noexcept { handing_off_ = on; }

    /// Stores the events that dispatchers which are gone left in their journals; in the caller's
    /// thread.
    void replay_journals();

    /// Waits until every journaled event is in the store, or `timeout` passed; true when all are.
    bool wait_stored(std::chrono::milliseconds timeout);

    /// At stop: waits up to `deadline` for the journaled events to reach the store; what does
    /// not stays in the journal for the next start.
    void close(std::chrono::milliseconds deadline);

private:
    void store_accepted(NewEvent accepted, detail::EventJournal::Ticket ticket);
    void take_handoff(const std::vector<std::int64_t>& reserved, std::vector<ClaimedDelivery> handed_off,
                      detail::EventJournal::Ticket ticket);
    void warn_store_failure(const std::exception_ptr& error, const std::string& uuid);

    SubscriptionStore& store_;
    boost::asio::any_io_executor host_;
    const Registry& registry_;
    const DispatcherOptions& options_;
    detail::DeliverySlots& slots_;
    Counters& count_;
    const std::string worker_;
    Logger log_;
    KeepAlive keep_alive_;
    AdmissionSinks sinks_;
    detail::GroupCommit commits_;
    const std::string journal_prefix_;              // Where journals of this store live; may be empty.
    std::unique_ptr<detail::EventJournal> journal_; // Null when events commit before returning.
    std::atomic<bool> handing_off_{false};
    std::atomic<bool> journal_closed_{false};        // stop() gave up waiting: leave the rest to replay.
    std::atomic<std::int64_t> journal_warned_at_{0}; // Seconds; store failures are logged once a second.
    std::atomic<std::size_t> unstored_{0};           // Journaled events not yet in the store.
};

} // namespace whisperer::dispatch

#endif
