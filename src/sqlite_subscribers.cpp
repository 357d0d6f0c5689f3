#include "detail/sqlite_subscribers.hpp"

#include "detail/sqlite_rows.hpp"

#include <algorithm>

namespace whisperer::detail {

bool config_matches(const boost::json::object& config, const boost::json::object& filter)
{
    return std::all_of(filter.begin(), filter.end(), [&](const auto& entry) {
        const auto* value = config.if_contains(entry.key());
        return value != nullptr && *value == entry.value();
    });
}

bool owner_matches(const std::string& owner, const std::vector<std::string>& owners)
{
    return owners.empty() || std::find(owners.begin(), owners.end(), owner) != owners.end();
}

SqliteSubscribers::SqliteSubscribers(const std::string& path)
    : db_(path, SQLite::OPEN_READONLY),
      generation_(db_, "SELECT n FROM hooks_generation"),
      select_(db_, "SELECT h.id, h.owner, h.config FROM hooks h "
                   "WHERE h.is_active = 1 AND h.event_type = :event_type ORDER BY h.id")
{
}

std::vector<std::int64_t> SqliteSubscribers::ids(const std::string& event_type, const boost::json::object& filter,
                                                 const std::vector<std::string>& owners)
{
    std::lock_guard lock{mutex_};
    // Each statement runs as its own read transaction; a reset ends it, so the connection never
    // holds a snapshot that would stop the WAL from being checkpointed.
    generation_.reset();
    generation_.executeStep();
    const std::int64_t generation = generation_.getColumn(0).getInt64();
    generation_.reset();
    if (generation != generation_seen_) {
        by_type_.clear();
        generation_seen_ = generation;
    }
    auto found = by_type_.find(event_type);
    if (found == by_type_.end()) {
        std::vector<Subscriber> subscribers;
        select_.reset();
        select_.bind(":event_type", event_type);
        while (select_.executeStep()) {
            RowReader row{select_};
            Subscriber subscriber;
            subscriber.hook_id = row.int64();
            subscriber.owner = row.text();
            subscriber.config = row.object();
            subscribers.push_back(std::move(subscriber));
        }
        select_.reset();
        found = by_type_.emplace(event_type, std::move(subscribers)).first;
    }
    std::vector<std::int64_t> ids;
    ids.reserve(found->second.size());
    for (const Subscriber& subscriber : found->second)
        if (owner_matches(subscriber.owner, owners) && config_matches(subscriber.config, filter))
            ids.push_back(subscriber.hook_id);
    return ids;
}

} // namespace whisperer::detail
