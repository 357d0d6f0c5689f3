#include "dispatch/outcome_recorder.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <iterator>

namespace whisperer::dispatch {

OutcomeRecorder::OutcomeRecorder(boost::asio::strand<boost::asio::any_io_executor> strand, StoreRunner& runner,
                                 SubscriptionStore& store, const DispatcherOptions& options, Logger log,
                                 KeepAlive keep_alive, Sinks sinks)
    : strand_(strand), runner_(runner), store_(store), options_(options), log_(std::move(log)),
      keep_alive_(std::move(keep_alive)), sinks_(std::move(sinks)), timer_(strand)
{
}

void OutcomeRecorder::add(AttemptRecord record, bool holds_slot)
{
    if (!record.attempt.succeeded())
        failing_hooks_.insert(record.hook_id);
    pending_.push_back(std::move(record));
    if (holds_slot)
        ++pending_held_;
}

void OutcomeRecorder::flush_soon(bool at_once)
{
    // Outcomes that arrive within `record_window` of each other share a transaction: a commit
    // writes every page it changed, so a few large ones cost far less than many small ones.
    at_once = at_once || pending_.size() >= options_.record_batch || options_.record_window.count() == 0;
    if (at_once) {
        if (flush_posted_)
            return;
        flush_posted_ = true;
        timer_.cancel();
        timer_armed_ = false; // A later completion may arm it again; the cancelled wait ends unheard.
        boost::asio::post(strand_, [this, life = keep_alive_()] {
            flush_posted_ = false;
            flush();
        });
        return;
    }
    if (timer_armed_ || flush_posted_)
        return;
    timer_armed_ = true;
    timer_.expires_after(options_.record_window);
    timer_.async_wait([this, life = keep_alive_()](boost::system::error_code ec) {
        if (ec)
            return;
        timer_armed_ = false;
        if (!flush_posted_)
            flush();
    });
}

std::vector<AttemptRecord> OutcomeRecorder::take(RecordedOutcomes& outcome)
{
    outcome.held = std::exchange(pending_held_, 0);
    outcome.failing_hooks = std::exchange(failing_hooks_, {});
    outcome.retries = std::any_of(pending_.begin(), pending_.end(),
                                  [](const AttemptRecord& r) { return r.verdict == AttemptVerdict::retry; });
    return std::exchange(pending_, {});
}

void OutcomeRecorder::flush()
{
    if (writing_) {
        again_ = true;
        return;
    }
    if (pending_.empty()) {
        sinks_.written({});
        return;
    }
    writing_ = true;
    RecordedOutcomes outcome;
    std::vector<AttemptRecord> batch = take(outcome);
    runner_.post([this, life = keep_alive_(), batch = std::move(batch), outcome = std::move(outcome)]() mutable {
        std::string error;
        try {
            store_.record_attempts(batch);
        } catch (const std::exception& e) {
            error = e.what();
            if (error.empty())
                error = "unknown error";
        }
        boost::asio::post(strand_, [this, life, batch = std::move(batch), outcome = std::move(outcome),
                                    error = std::move(error)]() mutable {
            written(std::move(batch), std::move(outcome), std::move(error));
        });
    });
}

void OutcomeRecorder::written(std::vector<AttemptRecord> batch, RecordedOutcomes outcome, std::string error)
{
    writing_ = false;
    const bool again = std::exchange(again_, false);
    if (!error.empty()) {
        // Kept, in their order, ahead of those that came meanwhile.
        pending_.insert(pending_.begin(), std::make_move_iterator(batch.begin()), std::make_move_iterator(batch.end()));
        pending_held_ += outcome.held;
        failing_hooks_.merge(outcome.failing_hooks);
        sinks_.failed(error);
        return;
    }
    sinks_.written(std::move(outcome));
    if (again && !writing_)
        flush();
}

void OutcomeRecorder::write_last(std::function<void(RecordedOutcomes)> then)
{
    if (pending_.empty()) {
        then({});
        return;
    }
    writing_ = true;
    RecordedOutcomes outcome;
    std::vector<AttemptRecord> batch = take(outcome);
    runner_.post([this, life = keep_alive_(), batch = std::move(batch), outcome = std::move(outcome),
                  then = std::move(then)]() mutable {
        try {
            store_.record_attempts(batch);
        } catch (const std::exception& e) {
            log_(LogLevel::error, std::string("outcomes not recorded at stop (their deliveries will be sent "
                                              "again once their leases run out): ") + e.what());
        }
        boost::asio::post(strand_, [this, life, outcome = std::move(outcome), then = std::move(then)]() mutable {
            writing_ = false;
            then(std::move(outcome));
        });
    });
}

void OutcomeRecorder::cancel_timer()
{
    timer_.cancel();
    timer_armed_ = false;
}

} // namespace whisperer::dispatch
