#include "detail/event_journal.hpp"

#include "detail/sqlite_rows.hpp"

#include <whisperer/error.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>

namespace whisperer::detail {

/// One file of the journal. Guarded by the journal's mutex.
struct EventJournal::Segment {
    std::string path;
    int fd = -1;
    std::size_t bytes = 0;
    std::size_t appended = 0;
    std::size_t settled = 0;
    bool sealed = false;

    void close_file() noexcept
    {
        if (fd >= 0)
            ::close(fd);
        fd = -1;
    }
    ~Segment() { close_file(); }
};

namespace {

constexpr std::uint32_t record_magic = 0x3152'4a57; // "WJR1" read as little-endian bytes
constexpr std::size_t header_bytes = 16;           // magic, payload length, checksum
constexpr std::size_t replay_batch = 1000;

std::uint64_t checksum(std::string_view bytes) noexcept
{
    std::uint64_t hash = 0xcbf2'9ce4'8422'2325ULL; // FNV-1a
    for (unsigned char c : bytes) {
        hash ^= c;
        hash *= 0x0000'0100'0000'01b3ULL;
    }
    return hash;
}

template <class Integer>
void put(std::string& out, Integer value)
{
    char bytes[sizeof(Integer)];
    std::memcpy(bytes, &value, sizeof(Integer));
    out.append(bytes, sizeof(Integer));
}

void put_text(std::string& out, std::string_view text)
{
    put(out, static_cast<std::uint32_t>(text.size()));
    out.append(text);
}

/// Reads what `put` wrote; every read fails softly once the input runs out.
class Reader {
public:
    explicit Reader(std::string_view bytes) : bytes_(bytes) {}

    template <class Integer>
    std::optional<Integer> get()
    {
        if (bytes_.size() < sizeof(Integer))
            return std::nullopt;
        Integer value;
        std::memcpy(&value, bytes_.data(), sizeof(Integer));
        bytes_.remove_prefix(sizeof(Integer));
        return value;
    }

    std::optional<std::string> text()
    {
        auto size = get<std::uint32_t>();
        if (!size || bytes_.size() < *size)
            return std::nullopt;
        std::string value(bytes_.substr(0, *size));
        bytes_.remove_prefix(*size);
        return value;
    }

    std::string_view rest() const { return bytes_; }

private:
    std::string_view bytes_;
};

std::optional<NewEvent> decode_payload(std::string_view payload)
{
    Reader in(payload);
    NewEvent event;
    auto uuid = in.text();
    auto event_type = in.text();
    auto body = in.text();
    auto object_ref = in.text();
    auto created = in.get<std::int64_t>();
    auto due = in.get<std::int64_t>();
    auto hooks = in.get<std::uint32_t>();
    if (!uuid || !event_type || !body || !object_ref || !created || !due || !hooks ||
        in.rest().size() != std::size_t{*hooks} * sizeof(std::int64_t))
        return std::nullopt;
    event.uuid = std::move(*uuid);
    event.event_type = std::move(*event_type);
    event.body = std::move(*body);
    event.object_ref = std::move(*object_ref);
    event.created = from_micros(*created);
    event.due = from_micros(*due);
    event.hook_ids.emplace();
    event.hook_ids->reserve(*hooks);
    for (std::uint32_t i = 0; i < *hooks; ++i)
        event.hook_ids->push_back(*in.get<std::int64_t>());
    event.replayed = true;
    return event;
}

std::string error_text(int error)
{
    return std::error_code(error, std::generic_category()).message();
}

/// Writes all of `bytes` at `offset`; false with errno set when it cannot.
bool write_at(int fd, std::string_view bytes, std::size_t offset)
{
    while (!bytes.empty()) {
        const ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        bytes.remove_prefix(static_cast<std::size_t>(written));
        offset += static_cast<std::size_t>(written);
    }
    return true;
}

std::optional<std::string> read_all(int fd)
{
    std::string bytes;
    char buffer[65536];
    for (;;) {
        const ssize_t got = ::read(fd, buffer, sizeof buffer);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return std::nullopt;
        }
        if (got == 0)
            return bytes;
        bytes.append(buffer, static_cast<std::size_t>(got));
    }
}

/// True when `fd` is still the file at `path` (a replay elsewhere may have deleted it).
bool still_linked(int fd, const std::string& path)
{
    struct stat open_file {};
    struct stat named {};
    return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &named) == 0 &&
           open_file.st_dev == named.st_dev && open_file.st_ino == named.st_ino;
}

} // namespace

std::string encode_journal_record(const NewEvent& event)
{
    std::string payload;
    payload.reserve(64 + event.uuid.size() + event.event_type.size() + event.body.size() +
                    event.object_ref.size() + (event.hook_ids ? event.hook_ids->size() * 8 : 0));
    put_text(payload, event.uuid);
    put_text(payload, event.event_type);
    put_text(payload, event.body);
    put_text(payload, event.object_ref);
    put(payload, to_micros(event.created));
    put(payload, to_micros(event.due));
    const std::size_t hooks = event.hook_ids ? event.hook_ids->size() : 0;
    put(payload, static_cast<std::uint32_t>(hooks));
    for (std::size_t i = 0; i < hooks; ++i)
        put(payload, (*event.hook_ids)[i]);

    std::string record;
    record.reserve(header_bytes + payload.size());
    put(record, record_magic);
    put(record, static_cast<std::uint32_t>(payload.size()));
    put(record, checksum(payload));
    record += payload;
    return record;
}

std::vector<NewEvent> decode_journal_records(std::string_view bytes)
{
    std::vector<NewEvent> events;
    Reader in(bytes);
    for (;;) {
        auto magic = in.get<std::uint32_t>();
        auto size = in.get<std::uint32_t>();
        auto sum = in.get<std::uint64_t>();
        if (!magic || !size || !sum || *magic != record_magic || in.rest().size() < *size)
            break;
        std::string_view payload = in.rest().substr(0, *size);
        if (checksum(payload) != *sum)
            break;
        auto event = decode_payload(payload);
        if (!event)
            break;
        events.push_back(std::move(*event));
        in = Reader(in.rest().substr(*size));
    }
    return events;
}

EventJournal::EventJournal(std::string prefix, std::string worker, std::size_t segment_bytes)
    : prefix_(std::move(prefix)), worker_(std::move(worker)), segment_bytes_(segment_bytes)
{
}

EventJournal::~EventJournal()
{
    std::lock_guard lock{mutex_};
    if (current_) {
        current_->sealed = true;
        retire_if_done(*current_);
        current_->close_file();
    }
    for (const Ticket& segment : sealed_)
        segment->close_file(); // Unsettled: the lock goes, the records stay for `replay`.
}

void EventJournal::open_segment()
{
    auto segment = std::make_shared<Segment>();
    segment->path = prefix_ + "-" + worker_ + "-" + std::to_string(next_number_++);
    segment->fd = ::open(segment->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (segment->fd < 0)
        throw StoreError("event journal: cannot create '" + segment->path + "': " + error_text(errno));
    if (::flock(segment->fd, LOCK_EX | LOCK_NB) != 0) {
        const int error = errno;
        ::unlink(segment->path.c_str());
        throw StoreError("event journal: cannot lock '" + segment->path + "': " + error_text(error));
    }
    current_ = std::move(segment);
}

void EventJournal::retire_if_done(Segment& segment)
{
    if (!segment.sealed || segment.settled != segment.appended || segment.fd < 0)
        return;
    ::unlink(segment.path.c_str());
    segment.close_file();
}

EventJournal::Ticket EventJournal::append(const NewEvent& event)
{
    const std::string record = encode_journal_record(event);
    std::lock_guard lock{mutex_};
    if (current_ && current_->bytes >= segment_bytes_) {
        current_->sealed = true;
        retire_if_done(*current_);
        if (current_->fd >= 0)
            sealed_.push_back(current_);
        current_.reset();
    }
    if (!current_)
        open_segment();
    // A failed write leaves at most a torn tail that the next record overwrites and that a
    // replay, finding no valid record there, ignores.
    if (!write_at(current_->fd, record, current_->bytes))
        throw StoreError("event journal: cannot write '" + current_->path + "': " + error_text(errno));
    current_->bytes += record.size();
    current_->appended++;
    unsettled_++;
    return current_;
}

void EventJournal::settle(const Ticket& ticket)
{
    std::lock_guard lock{mutex_};
    ticket->settled++;
    unsettled_--;
    if (ticket->sealed && ticket->settled == ticket->appended) {
        retire_if_done(*ticket);
        std::erase(sealed_, ticket);
    }
    if (unsettled_ == 0)
        settled_.notify_all();
}

bool EventJournal::wait_settled(std::chrono::milliseconds timeout)
{
    std::unique_lock lock{mutex_};
    return settled_.wait_for(lock, timeout, [&] { return unsettled_ == 0; });
}

void EventJournal::close_settled()
{
    std::lock_guard lock{mutex_};
    if (!current_ || current_->settled != current_->appended)
        return;
    current_->sealed = true;
    retire_if_done(*current_);
    current_.reset();
}

std::size_t EventJournal::replay(const std::string& prefix,
                                 const std::function<void(std::span<const NewEvent>)>& store)
{
    const std::filesystem::path base(prefix);
    const std::filesystem::path directory = base.has_parent_path() ? base.parent_path() : ".";
    const std::string name_start = base.filename().string() + "-";
    std::vector<std::string> paths;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(directory, error))
        if (entry.path().filename().string().starts_with(name_start))
            paths.push_back(entry.path().string());
    std::sort(paths.begin(), paths.end());

    std::size_t replayed = 0;
    for (const std::string& path : paths) {
        Segment segment;
        segment.path = path;
        segment.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (segment.fd < 0)
            continue; // Deleted meanwhile by its writer or another replay.
        if (::flock(segment.fd, LOCK_EX | LOCK_NB) != 0 || !still_linked(segment.fd, path))
            continue; // Its journal is open, or another replay took it.
        auto bytes = read_all(segment.fd);
        if (!bytes)
            throw StoreError("event journal: cannot read '" + path + "': " + error_text(errno));
        const std::vector<NewEvent> events = decode_journal_records(*bytes);
        for (std::size_t first = 0; first < events.size(); first += replay_batch) {
            const std::size_t count = std::min(replay_batch, events.size() - first);
            store(std::span<const NewEvent>(events.data() + first, count));
        }
        ::unlink(path.c_str());
        replayed += events.size();
    }
    return replayed;
}

} // namespace whisperer::detail
