// The journal of events that deliver_event accepted before the store has them.
#ifndef WHISPERER_DETAIL_EVENT_JOURNAL_HPP
#define WHISPERER_DETAIL_EVENT_JOURNAL_HPP

#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace whisperer::detail {

/// Append-only files of events accepted by `deliver_event` and not yet known to be in the store.
///
/// `append` writes one record with a single write() call: once it returns, the event survives a
/// crash of the process (the kernel holds it), which is what a SQLite commit with
/// synchronous=NORMAL promises too; neither survives a power loss before the OS writes the page
/// back. A record costs a few microseconds where a commit costs tens, and the commits of many
/// records then share one transaction. `settle` marks records as stored; a file whose records are
/// all stored is deleted.
///
/// Files ("segments") are named `<prefix>-<worker>-<n>` and hold an exclusive `flock` while their
/// journal is open. `replay` reads the segments nobody holds (their process died or stopped before
/// storing everything) into the store. A torn last record, from a crash inside write(), is
/// ignored: its `deliver_event` never returned. Thread-safe.
class EventJournal {
public:
    struct Segment;
    /// Names the segment a record went to, for `settle`.
    using Ticket = std::shared_ptr<Segment>;

    /// Segments start at the first `append`; a new one begins once one reaches `segment_bytes`.
    EventJournal(std::string prefix, std::string worker, std::size_t segment_bytes = 16 * 1024 * 1024);
    /// Deletes the segments whose records are all settled and releases the others for `replay`.
    ~EventJournal();
    EventJournal(const EventJournal&) = delete;
    EventJournal& operator=(const EventJournal&) = delete;

    /// Writes `event` (its uuid, type, body, object_ref, times and chosen `hook_ids`) and returns
    /// once the kernel has it. Throws `StoreError` when the file cannot be written; then nothing
    /// of the event counts as accepted.
    Ticket append(const NewEvent& event);

    /// Records that the event behind `ticket` is in the store.
    void settle(const Ticket& ticket);

    /// Waits until every appended record is settled, or `timeout` passed; true when all are.
    bool wait_settled(std::chrono::milliseconds timeout);

    /// Deletes the file being written when all its records are settled (a stopped dispatcher
    /// leaves no file behind); the next `append` starts a new one.
    void close_settled();

    /// Reads every segment under `prefix` that no open journal holds, hands its events to `store`
    /// in batches (marked `replayed`, so events already stored are skipped) and deletes it.
    /// Returns how many events were handed over. What `store` throws propagates; the segment it
    /// failed on stays for the next replay.
    static std::size_t replay(const std::string& prefix,
                              const std::function<void(std::span<const NewEvent>)>& store);

private:
    /// Opens the next segment; expects `mutex_` held.
    void open_segment();
    /// Deletes `segment`'s file when it is sealed and settled; expects `mutex_` held.
    void retire_if_done(Segment& segment);

    std::string prefix_;
    std::string worker_;
    std::size_t segment_bytes_;
    std::mutex mutex_;
    std::condition_variable settled_;
    Ticket current_;
    std::vector<Ticket> sealed_; // Segments no longer written, with records not yet settled.
    std::size_t next_number_ = 0;
    std::size_t unsettled_ = 0;
};

/// The bytes of one journal record holding `event` (exposed for tests).
std::string encode_journal_record(const NewEvent& event);

/// The events of the complete records at the start of `bytes`; stops at the first torn or
/// corrupt record (exposed for tests).
std::vector<NewEvent> decode_journal_records(std::string_view bytes);

} // namespace whisperer::detail

#endif
