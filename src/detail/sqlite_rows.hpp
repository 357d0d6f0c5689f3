// Conversions between whisperer's records and SqliteStore's rows.
#ifndef WHISPERER_DETAIL_SQLITE_ROWS_HPP
#define WHISPERER_DETAIL_SQLITE_ROWS_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/subscription_store.hpp>

#include "detail/hook_credentials.hpp"
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

/// Microseconds since the epoch: the resolution every store keeps (PostgreSQL's too).
inline std::int64_t to_micros(TimePoint t) noexcept
{
    return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

inline TimePoint from_micros(std::int64_t micros) noexcept
{
    return TimePoint{std::chrono::duration_cast<Clock::duration>(std::chrono::microseconds{micros})};
}

/// `t` cut to what the store keeps, so a returned record equals the one read back later.
inline TimePoint stored_time(TimePoint t) noexcept
{
    return from_micros(to_micros(t));
}

/// At most `limit` bytes of `body`, never ending inside a UTF-8 sequence.
inline std::string_view capped(std::string_view body, std::size_t limit) noexcept
{
    if (body.size() <= limit)
        return body;
    std::size_t end = limit;
    while (end > 0 && (static_cast<unsigned char>(body[end]) & 0xC0) == 0x80)
        --end;
    return body.substr(0, end);
}

inline std::string_view to_string(AttemptTrigger trigger) noexcept
{
    return trigger == AttemptTrigger::manual ? "manual" : "scheduled";
}

inline AttemptTrigger attempt_trigger_from_string(std::string_view s) noexcept
{
    return s == "manual" ? AttemptTrigger::manual : AttemptTrigger::scheduled;
}

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

/// The columns `read_hook` expects, from the table aliased `h`.
inline constexpr std::string_view hook_columns =
    "h.id, h.owner, h.target_url, h.event_type, h.is_active, h.secret_key, h.callback, "
    "h.retired_secrets, h.retry_countdown_config, h.additional_headers, h.config, h.created, "
    "h.modified, h.disabled_reason, h.disabled_at, h.failing_since, h.failed_attempts";

/// The `retired_secrets` column of `retired` (sealed already, when they are to be):
/// `[{"secret": stored text, "expires": micros}]`.
inline std::string retired_secrets_text(const std::vector<RetiredSecret>& retired)
{
    boost::json::array out;
    out.reserve(retired.size());
    for (const RetiredSecret& old : retired)
        out.push_back(boost::json::object{{"secret", old.secret}, {"expires", to_micros(old.expires)}});
    return boost::json::serialize(out);
}

/// The secrets of a `retired_secrets` column that have not expired at `now`, as stored (sealed
/// or not). Throws `StoreError` when the text is not such a column.
inline std::vector<RetiredSecret> read_retired_secrets(std::string_view text, TimePoint now, std::int64_t hook_id)
{
    std::vector<RetiredSecret> retired;
    if (text == "[]")
        return retired;
    boost::system::error_code ec;
    auto value = boost::json::parse(text, ec);
    if (ec || !value.is_array())
        throw StoreError("SQLite store: retired_secrets of hook " + std::to_string(hook_id) +
                         " does not hold a JSON array");
    const std::int64_t now_micros = to_micros(now);
    for (const boost::json::value& entry : value.as_array()) {
        const auto* object = entry.if_object();
        const auto* secret = object ? object->if_contains("secret") : nullptr;
        const auto* expires = object ? object->if_contains("expires") : nullptr;
        if (secret == nullptr || !secret->is_string() || expires == nullptr || !expires->is_int64())
            throw StoreError("SQLite store: retired_secrets of hook " + std::to_string(hook_id) +
                             " holds an entry without secret and expires");
        if (expires->as_int64() <= now_micros)
            continue;
        retired.push_back({std::string(secret->as_string()), from_micros(expires->as_int64())});
    }
    return retired;
}

/// Reads a hook from `hook_columns` as stored: credentials as they are (sealed or not), retired
/// secrets that expired at `now` left out. `read_hook` opens them.
inline Hook read_stored_hook(RowReader& row, TimePoint now)
{
    Hook hook;
    hook.id = row.int64();
    hook.owner = row.text();
    hook.target_url = row.text();
    hook.event_type = row.text();
    hook.is_active = row.boolean();
    hook.secret_key = row.text();
    hook.callback = row.text();
    hook.retired_secrets = read_retired_secrets(row.text(), now, hook.id);
    hook.retry_countdown_config = row.object();
    hook.additional_headers = row.object();
    hook.config = row.object();
    hook.created = row.time();
    hook.modified = row.time();
    hook.disabled_reason = row.text();
    hook.disabled_at = row.optional_time();
    hook.failing_since = row.optional_time();
    hook.failed_attempts = row.count();
    return hook;
}

/// Reads a hook from `hook_columns`: its credentials opened with `box` (those stored in clear as
/// they are), retired secrets that expired at `now` left out. Throws `StoreError` when a column
/// or a credential cannot be read.
inline Hook read_hook(RowReader& row, const SecretBox* box, TimePoint now)
{
    Hook hook = read_stored_hook(row, now);
    open_credentials(hook, box);
    return hook;
}

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

/// The joined tables that `delivery_columns` reads from.
inline constexpr std::string_view delivery_tables =
    "deliveries d JOIN events e ON e.id = d.event_id JOIN hooks h ON h.id = d.hook_id";

/// The columns `read_delivery` expects, from `delivery_tables`.
inline constexpr std::string_view delivery_columns =
    "d.id, e.uuid, d.hook_id, h.owner, e.event_type, e.body, e.object_ref, d.state, "
    "d.attempt_count, d.response_status, d.response_body, d.response_time_us, d.last_failure, "
    "d.last_error, d.next_attempt_at, d.created, d.modified";

inline Delivery read_delivery(RowReader& row)
{
    Delivery delivery;
    delivery.id = row.int64();
    delivery.event_uuid = row.text();
    delivery.hook_id = row.int64();
    delivery.owner = row.text();
    delivery.event_type = row.text();
    delivery.request_body = row.text();
    delivery.object_ref = row.text();
    delivery.state = delivery_state_from_string(row.text());
    delivery.attempt_count = row.count();
    delivery.response_status = row.integer();
    delivery.response_body = row.text();
    delivery.response_time = std::chrono::microseconds{row.int64()};
    delivery.last_failure = failure_class_from_string(row.text());
    delivery.last_error = row.text();
    delivery.next_attempt_at = row.optional_time();
    delivery.created = row.time();
    delivery.modified = row.time();
    return delivery;
}

/// The columns `read_attempt` expects, from `attempts`.
inline constexpr std::string_view attempt_columns =
    "number, started_at, duration_us, response_status, response_body, failure, error, trigger";

inline Attempt read_attempt(RowReader& row)
{
    Attempt attempt;
    attempt.number = row.count();
    attempt.started_at = row.time();
    attempt.duration = std::chrono::microseconds{row.int64()};
    attempt.response_status = row.integer();
    attempt.response_body = row.text();
    attempt.failure = failure_class_from_string(row.text());
    attempt.error = row.text();
    attempt.trigger = attempt_trigger_from_string(row.text());
    return attempt;
}

/// The columns `read_outbox_entry` expects, from `delivery_tables` joined to outbox `o`.
inline constexpr std::string_view outbox_entry_columns =
    "o.delivery_id, o.hook_id, h.owner, e.uuid, e.event_type, d.attempt_count, o.due_at, "
    "o.lease_expires, d.created";

inline OutboxEntry read_outbox_entry(RowReader& row)
{
    OutboxEntry entry;
    entry.delivery_id = row.int64();
    entry.hook_id = row.int64();
    entry.owner = row.text();
    entry.event_uuid = row.text();
    entry.event_type = row.text();
    entry.attempt_count = row.count();
    entry.due = row.time();
    entry.lease_expires = row.optional_time();
    entry.created = row.time();
    return entry;
}

/// The id a listing's `after` continues from.
inline std::int64_t cursor_of(const Hook& hook) noexcept { return hook.id; }
inline std::int64_t cursor_of(const Delivery& delivery) noexcept { return delivery.id; }
inline std::int64_t cursor_of(const OutboxEntry& entry) noexcept { return entry.delivery_id; }

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
