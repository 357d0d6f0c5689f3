// Outcome recording: verdicts written to the store in batches.
#ifndef WHISPERER_SRC_DISPATCH_OUTCOME_RECORDER_HPP
#define WHISPERER_SRC_DISPATCH_OUTCOME_RECORDER_HPP

#include "dispatch/keep_alive.hpp"
#include "dispatch/log_lines.hpp"
#include "dispatch/store_runner.hpp"

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace whisperer::dispatch {

/// What one write of outcomes did, for the stages that wait on it.
struct RecordedOutcomes {
    std::size_t held = 0;                  ///< Of the records written, those whose delivery held a slot.
    std::set<std::int64_t> failing_hooks;  ///< Hooks with a failed attempt among them (for endpoint health).
    bool retries = false;                  ///< Some are retries: rows the last claim did not see.
};

/// Collects verdicts and writes them with one `record_attempts` call per batch, on the store
/// runner: at once when asked (nothing in flight, or a stop), else `record_window` after the
/// first or once `record_batch` wait. One write runs at a time; records that arrive meanwhile
/// wait for the next. A failed write keeps its records for the next. Every member runs on the
/// dispatcher's strand, and so do the sinks.
class OutcomeRecorder {
public:
    struct Sinks {
        std::function<void(RecordedOutcomes)> written; ///< After a write, or a flush with nothing to write.
        std::function<void(const std::string& error)> failed; ///< A write failed; `flush` again later.
    };

    OutcomeRecorder(boost::asio::strand<boost::asio::any_io_executor> strand, StoreRunner& runner,
                    SubscriptionStore& store, const DispatcherOptions& options, Logger log, KeepAlive keep_alive,
                    Sinks sinks);

    /// Adds a verdict; `holds_slot` when its delivery holds one of the dispatcher's slots.
    void add(AttemptRecord record, bool holds_slot);

    /// Has what is pending written soon, or at once when `at_once`.
    void flush_soon(bool at_once);

    /// Writes what is pending now (after the write in progress, if any).
    void flush();

    /// At stop, with no write in progress: writes what is pending (a failure is logged: those
    /// deliveries go out again once their leases run out), then calls `then`.
    void write_last(std::function<void(RecordedOutcomes)> then);

    bool writing() const noexcept { return writing_; }
    void cancel_timer();

private:
    /// Takes what is pending as the batch to write.
    std::vector<AttemptRecord> take(RecordedOutcomes& outcome);
    void written(std::vector<AttemptRecord> batch, RecordedOutcomes outcome, std::string error);

    boost::asio::strand<boost::asio::any_io_executor> strand_;
    StoreRunner& runner_;
    SubscriptionStore& store_;
    const DispatcherOptions& options_;
    Logger log_;
    KeepAlive keep_alive_;
    Sinks sinks_;
    std::vector<AttemptRecord> pending_;
    std::size_t pending_held_ = 0;
    std::set<std::int64_t> failing_hooks_;
    bool writing_ = false;
    bool again_ = false; // A flush was asked for while writing.
    bool flush_posted_ = false;
    bool timer_armed_ = false;
    boost::asio::steady_timer timer_;
};

} // namespace whisperer::dispatch

#endif
