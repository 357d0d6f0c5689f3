// Conversions between whisperer's records and the rows of its stores, whatever the database:
// times, capped bodies, the column lists and the readers of hooks, deliveries, attempts and
// outbox entries. A reader takes a `Row` with `int64`, `integer`, `count`, `boolean`, `text`,
// `time`, `optional_time` and `object`, which read the row's columns from left to right.
#ifndef WHISPERER_DETAIL_STORE_ROWS_HPP
#define WHISPERER_DETAIL_STORE_ROWS_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/subscription_store.hpp>

#include "detail/hook_credentials.hpp"
#include "detail/secret_box.hpp"

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
        throw StoreError("store: retired_secrets of hook " + std::to_string(hook_id) +
                         " does not hold a JSON array");
    const std::int64_t now_micros = to_micros(now);
    for (const boost::json::value& entry : value.as_array()) {
        const auto* object = entry.if_object();
        const auto* secret = object ? object->if_contains("secret") : nullptr;
        const auto* expires = object ? object->if_contains("expires") : nullptr;
        if (secret == nullptr || !secret->is_string() || expires == nullptr || !expires->is_int64())
            throw StoreError("store: retired_secrets of hook " + std::to_string(hook_id) +
                             " holds an entry without secret and expires");
        if (expires->as_int64() <= now_micros)
            continue;
        retired.push_back({std::string(secret->as_string()), from_micros(expires->as_int64())});
    }
    return retired;
}

/// Reads a hook from `hook_columns` as stored: credentials as they are (sealed or not), retired
/// secrets that expired at `now` left out. `read_hook` opens them.
template <class Row>
Hook read_stored_hook(Row& row, TimePoint now)
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
template <class Row>
Hook read_hook(Row& row, const SecretBox* box, TimePoint now)
{
    Hook hook = read_stored_hook(row, now);
    open_credentials(hook, box);
    return hook;
}

/// The joined tables that `delivery_columns` reads from.
inline constexpr std::string_view delivery_tables =
    "deliveries d JOIN events e ON e.id = d.event_id JOIN hooks h ON h.id = d.hook_id";

/// The columns `read_delivery` expects, from `delivery_tables`.
inline constexpr std::string_view delivery_columns =
    "d.id, e.uuid, d.hook_id, h.owner, e.event_type, e.body, e.object_ref, d.state, "
    "d.attempt_count, d.response_status, d.response_body, d.response_time_us, d.last_failure, "
    "d.last_error, d.next_attempt_at, d.created, d.modified";

template <class Row>
Delivery read_delivery(Row& row)
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

template <class Row>
Attempt read_attempt(Row& row)
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

template <class Row>
OutboxEntry read_outbox_entry(Row& row)
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

/// The columns `read_token` expects, from `tokens`.
inline constexpr std::string_view token_columns = "id, owner, admin, publisher, created, expires, last_used";

template <class Row>
ApiToken read_token(Row& row)
{
    ApiToken token;
    token.id = row.int64();
    token.owner = row.text();
    token.admin = row.boolean();
    token.publisher = row.boolean();
    token.created = row.time();
    token.expires = row.optional_time();
    token.last_used = row.optional_time();
    return token;
}

/// The id a listing's `after` continues from.
inline std::int64_t cursor_of(const Hook& hook) noexcept { return hook.id; }
inline std::int64_t cursor_of(const Delivery& delivery) noexcept { return delivery.id; }
inline std::int64_t cursor_of(const OutboxEntry& entry) noexcept { return entry.delivery_id; }

} // namespace whisperer::detail

#endif
