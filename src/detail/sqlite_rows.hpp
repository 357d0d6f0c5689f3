// SqliteStore's rows: reading a statement's columns, binding a hook's, reading a page.
#ifndef WHISPERER_DETAIL_SQLITE_ROWS_HPP
#define WHISPERER_DETAIL_SQLITE_ROWS_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/subscription_store.hpp>

#include "detail/store_rows.hpp"
#include "detail/json_depth.hpp"
#include "detail/secret_box.hpp"

#include <SQLiteCpp/Column.h>
#include <SQLiteCpp/Statement.h>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer::detail {

/// Reads the columns of a statement's current row from left to right.
class RowReader {
public:
    explicit RowReader(const SQLite::Statement& statement) noexcept : statement_(statement) {}

    std::int64_t int64() { return statement_.getColumn(next_++).getInt64(); }
    int integer() { return statement_.getColumn(next_++).getInt(); }
    unsigned count() { return static_cast<unsigned>(int64()); }
    bool boolean() { return int64() != 0; }
    std::string text() { return statement_.getColumn(next_++).getString(); }
    TimePoint time() { return from_micros(int64()); }

    std::optional<TimePoint> optional_time()
    {
        const auto column = statement_.getColumn(next_++);
        if (column.isNull())
            return std::nullopt;
        return from_micros(column.getInt64());
    }

    /// A JSON object column; throws `StoreError` when the text is not one.
    boost::json::object object()
    {
        const auto column = statement_.getColumn(next_++);
        boost::system::error_code ec;
        auto value = parse_stored_json(column.getString(), ec);
        if (ec || !value.is_object())
            throw StoreError(std::string("SQLite store: column ") + column.getName() +
                             " does not hold a JSON object");
        return std::move(value.as_object());
    }

private:
    const SQLite::Statement& statement_;
    int next_ = 0;
};

/// Binds the named parameters of every hook column that a caller may set, from `hook` as it is
/// to be stored (see `stored_form`).
inline void bind_hook_fields(SQLite::Statement& statement, const Hook& hook)
{
    statement.bind(":owner", hook.owner);
    statement.bind(":target_url", hook.target_url);
    statement.bind(":event_type", hook.event_type);
    statement.bind(":is_active", hook.is_active ? 1 : 0);
    statement.bind(":secret_key", hook.secret_key);
    statement.bind(":callback", hook.callback);
    statement.bind(":retry_countdown_config", boost::json::serialize(hook.retry_countdown_config));
    statement.bind(":additional_headers", boost::json::serialize(hook.additional_headers));
    statement.bind(":config", boost::json::serialize(hook.config));
    statement.bind(":disabled_reason", hook.disabled_reason);
    if (hook.disabled_at)
        statement.bind(":disabled_at", to_micros(*hook.disabled_at));
    else
        statement.bind(":disabled_at");
}

/// A page of at most `page_size` rows read by `read`, from a statement that asked for one more
/// row than that to know whether another page follows.
template <class T, class Read>
Page<T> read_page(SQLite::Statement& statement, std::size_t page_size, Read read)
{
    Page<T> page;
    while (statement.executeStep()) {
        RowReader row{statement};
        page.items.push_back(read(row));
    }
    if (page.items.size() > page_size) {
        page.items.resize(page_size);
        page.next = cursor_of(page.items.back());
    }
    return page;
}

} // namespace whisperer::detail

#endif
