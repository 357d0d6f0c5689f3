// Each event type's subscribers, cached and kept fresh through a second SQLite connection.
#ifndef WHISPERER_DETAIL_SQLITE_SUBSCRIBERS_HPP
#define WHISPERER_DETAIL_SQLITE_SUBSCRIBERS_HPP

#include "detail/subscribers.hpp"

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace whisperer::detail {

/// The active hooks of each event type, read once and then served from memory until the
/// `hooks_generation` counter (moved by triggers on every change of who receives what, from any
/// process) says otherwise.
///
/// It reads through its own connection, so `deliver_event` never waits for the store's writer:
/// in WAL mode a reader sees the last commit without taking the write lock. Thread-safe.
class SqliteSubscribers {
public:
    /// Opens `path` for reading; the schema must exist already.
    explicit SqliteSubscribers(const std::string& path);

    /// The ids of the active hooks of `event_type` whose config matches `filter` and whose
    /// owner `owners` admits (`owner_matches`), by id. Throws `SQLite::Exception`.
    std::vector<std::int64_t> ids(const std::string& event_type, const boost::json::object& filter,
                                  const std::vector<std::string>& owners);

private:
    std::mutex mutex_;
    SQLite::Database db_;
    SQLite::Statement generation_;
    SQLite::Statement select_;
    std::optional<std::int64_t> generation_seen_;
    std::map<std::string, std::vector<Subscriber>, std::less<>> by_type_;
};

} // namespace whisperer::detail

#endif
