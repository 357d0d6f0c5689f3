#include "detail/resource_json.hpp"
#include "../detail/json_depth.hpp"

#include <whisperer/error.hpp>

#include <boost/json/parse.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>

namespace whisperer::http::detail {

namespace json = boost::json;
using namespace std::chrono;

namespace {

json::value optional_time(const std::optional<TimePoint>& t)
{
    return t ? json::value(format_time(*t)) : json::value(nullptr);
}

json::value optional_text(const std::string& s)
{
    return s.empty() ? json::value(nullptr) : json::value(s);
}

double seconds_of(microseconds d)
{
    return duration<double>(d).count();
}

/// Reads exactly `width` digits at `pos`.
bool read_digits(std::string_view s, std::size_t& pos, std::size_t width, int& out)
{
    if (pos + width > s.size())
        return false;
    auto [end, ec] = std::from_chars(s.data() + pos, s.data() + pos + width, out);
    if (ec != std::errc() || end != s.data() + pos + width)
        return false;
    pos += width;
    return true;
}

bool expect(std::string_view s, std::size_t& pos, char c)
{
    if (pos >= s.size() || s[pos] != c)
        return false;
    ++pos;
    return true;
}

/// `day` plus `time` (the time of day less the offset), or the first or last instant that
/// TimePoint holds when that lies beyond it. TimePoint counts 64-bit nanoseconds with libstdc++,
/// about the years 1678 to 2261: farther dates ("9999-12-31" as an open bound) filter as meant
/// instead of overflowing. Two days of margin take in the time of day and the offset.
TimePoint clamped_time(sys_days day, microseconds time)
{
    constexpr sys_days first = ceil<days>(TimePoint::min()) + days{2};
    constexpr sys_days last = floor<days>(TimePoint::max()) - days{2};
    if (day < first)
        return TimePoint::min();
    if (day > last)
        return TimePoint::max();
    return TimePoint{day} + duration_cast<TimePoint::duration>(time);
}

ValidationError wrong_type(std::string_view field, std::string_view what)
{
    return ValidationError(std::string(field), std::string(field) + " must be " + std::string(what) + ".");
}

/// The string at `key`, or nullopt when absent; null counts as the empty string when `nullable`.
std::optional<std::string> string_field(const json::object& body, std::string_view key, bool nullable)
{
    const json::value* v = body.if_contains(key);
    if (v == nullptr)
        return std::nullopt;
    if (v->is_null() && nullable)
        return std::string();
    if (!v->is_string())
        throw wrong_type(key, "a string");
    return std::string(v->as_string());
}

/// The object at `key`, or nullopt when absent; null counts as `{}` when `nullable`.
std::optional<json::object> object_field(const json::object& body, std::string_view key, bool nullable)
{
    const json::value* v = body.if_contains(key);
    if (v == nullptr)
        return std::nullopt;
    if (v->is_null() && nullable)
        return json::object();
    if (!v->is_object())
        throw wrong_type(key, "a JSON object");
    return v->as_object();
}

} // namespace

std::string format_time(TimePoint t)
{
    auto us = floor<microseconds>(t);
    auto day = floor<days>(us);
    year_month_day date{day};
    hh_mm_ss<microseconds> time{us - day};
    char out[40];
    std::snprintf(out, sizeof out, "%04d-%02u-%02uT%02d:%02d:%02d.%06lldZ", static_cast<int>(date.year()),
                  static_cast<unsigned>(date.month()), static_cast<unsigned>(date.day()),
                  static_cast<int>(time.hours().count()), static_cast<int>(time.minutes().count()),
                  static_cast<int>(time.seconds().count()), static_cast<long long>(time.subseconds().count()));
    return out;
}

std::optional<TimePoint> parse_time(std::string_view s)
{
    std::size_t pos = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!read_digits(s, pos, 4, y) || !expect(s, pos, '-') || !read_digits(s, pos, 2, mo) || !expect(s, pos, '-') ||
        !read_digits(s, pos, 2, d))
        return std::nullopt;
    year_month_day date{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!date.ok())
        return std::nullopt;
    const sys_days day{date};
    if (pos == s.size())
        return clamped_time(day, {});
    if (s[pos] != 'T' && s[pos] != 't' && s[pos] != ' ')
        return std::nullopt;
    ++pos;
    if (!read_digits(s, pos, 2, h) || !expect(s, pos, ':') || !read_digits(s, pos, 2, mi) || !expect(s, pos, ':') ||
        !read_digits(s, pos, 2, sec) || h > 23 || mi > 59 || sec > 60)
        return std::nullopt;
    microseconds time = hours{h} + minutes{mi} + seconds{sec};
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        long long fraction = 0;
        int scale = 1'000'000;
        std::size_t digits = 0;
        for (; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++digits)
            if (scale > 1) {
                scale /= 10;
                fraction += (s[pos] - '0') * static_cast<long long>(scale);
            }
        if (digits == 0)
            return std::nullopt;
        time += microseconds{fraction};
    }
    if (pos == s.size())
        return clamped_time(day, time);
    if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size())
        return clamped_time(day, time);
    if (s[pos] != '+' && s[pos] != '-')
        return std::nullopt;
    int sign = s[pos] == '+' ? 1 : -1;
    ++pos;
    int oh = 0, om = 0;
    if (!read_digits(s, pos, 2, oh) || !expect(s, pos, ':') || !read_digits(s, pos, 2, om) || pos != s.size() ||
        oh > 23 || om > 59)
        return std::nullopt;
    return clamped_time(day, time - sign * (hours{oh} + minutes{om}));
}

json::object hook_json(const Hook& stored)
{
    // Built from the masked hook only, so no field added later can show a credential in clear.
    const Hook hook = masked_hook(stored);
    json::array retired;
    for (const RetiredSecret& old : hook.retired_secrets)
        retired.push_back(json::object{{"secret_key", old.secret}, {"expires", format_time(old.expires)}});
    return json::object{
        {"id", hook.id},
        {"owner", hook.owner},
        {"target_url", hook.target_url},
        {"event_type", hook.event_type},
        {"is_active", hook.is_active},
        {"secret_key", optional_text(hook.secret_key)},
        {"retired_secrets", std::move(retired)},
        {"callback", optional_text(hook.callback)},
        {"retry_countdown_config", hook.retry_countdown_config},
        {"additional_headers", hook.additional_headers},
        {"config", hook.config},
        {"disabled_reason", optional_text(hook.disabled_reason)},
        {"disabled_at", optional_time(hook.disabled_at)},
        {"failing_since", optional_time(hook.failing_since)},
        {"failed_attempts", hook.failed_attempts},
        {"created_date", format_time(hook.created)},
        {"modified_date", format_time(hook.modified)},
    };
}

json::object attempt_json(const Attempt& attempt)
{
    return json::object{
        {"number", attempt.number},
        {"started_at", format_time(attempt.started_at)},
        {"duration", seconds_of(attempt.duration)},
        {"response_http_status", attempt.response_status == 0 ? json::value(nullptr) : json::value(attempt.response_status)},
        {"response_content", attempt.response_body},
        {"succeeded", attempt.succeeded()},
        {"failure", attempt.succeeded() ? json::value(nullptr) : json::value(to_string(attempt.failure))},
        {"error", optional_text(attempt.error)},
        {"trigger", attempt.trigger == AttemptTrigger::manual ? "manual" : "scheduled"},
    };
}

json::object delivery_json(const Delivery& delivery, bool with_attempts)
{
    boost::system::error_code ec;
    json::value payload = whisperer::detail::parse_stored_json(delivery.request_body, ec);
    if (ec)
        payload = json::value(delivery.request_body);
    json::object out{
        {"id", delivery.id},
        {"uuid", delivery.event_uuid},
        {"webhook", delivery.hook_id},
        {"event_type", delivery.event_type},
        {"object_ref", optional_text(delivery.object_ref)},
        {"request_payload", std::move(payload)},
        {"response_content", delivery.response_body},
        {"response_http_status",
         delivery.response_status == 0 ? json::value(nullptr) : json::value(delivery.response_status)},
        {"delivered", delivery.delivered()},
        {"state", to_string(delivery.state)},
        {"retry_count", delivery.attempt_count},
        {"response_time", seconds_of(delivery.response_time)},
        {"last_failure",
         delivery.last_failure == FailureClass::none ? json::value(nullptr) : json::value(to_string(delivery.last_failure))},
        {"last_error", optional_text(delivery.last_error)},
        {"next_attempt_at", optional_time(delivery.next_attempt_at)},
        {"created_date", format_time(delivery.created)},
        {"modified_date", format_time(delivery.modified)},
    };
    if (with_attempts) {
        json::array attempts;
        for (const Attempt& attempt : delivery.attempts)
            attempts.push_back(attempt_json(attempt));
        out["attempts"] = std::move(attempts);
    }
    return out;
}

json::object outbox_json(const OutboxEntry& entry)
{
    return json::object{
        {"id", entry.delivery_id},
        {"webhook", entry.hook_id},
        {"owner", entry.owner},
        {"uuid", entry.event_uuid},
        {"event_type", entry.event_type},
        {"retry_count", entry.attempt_count},
        {"due", format_time(entry.due)},
        {"lease_expires", optional_time(entry.lease_expires)},
        {"created_date", format_time(entry.created)},
    };
}

void apply_hook_fields(Hook& hook, const json::object& body, HookWrite mode)
{
    const Hook stored = hook;
    bool required = mode != HookWrite::partial;
    auto require = [&](std::string_view key) {
        const json::value* v = body.if_contains(key);
        if ((v == nullptr && required) || (v != nullptr && v->is_null()))
            throw ValidationError(std::string(key), std::string(key) + " is required.");
    };
    require("target_url");
    require("event_type");
    require("retry_countdown_config");

    if (auto v = string_field(body, "target_url", false))
        hook.target_url = std::move(*v);
    if (auto v = string_field(body, "event_type", false))
        hook.event_type = std::move(*v);
    if (auto v = object_field(body, "retry_countdown_config", false))
        hook.retry_countdown_config = std::move(*v);
    if (auto v = string_field(body, "secret_key", true)) {
        // Every hook signs: a write may replace the secret, never remove it.
        if (v->empty() && !hook.secret_key.empty())
            throw ValidationError("secret_key", "secret_key may not be removed: every webhook signs its deliveries. "
                                                "Send a new secret, or POST rotate_secret/ to replace it.");
        hook.secret_key = std::move(*v);
    }
    if (auto v = string_field(body, "callback", true))
        hook.callback = std::move(*v);
    if (auto v = object_field(body, "additional_headers", true))
        hook.additional_headers = std::move(*v);
    if (auto v = object_field(body, "config", true))
        hook.config = std::move(*v);
    if (const json::value* v = body.if_contains("is_active")) {
        if (!v->is_bool())
            throw wrong_type("is_active", "true or false");
        hook.is_active = v->as_bool();
    }
    // A read sent back holds masked credentials: they keep the stored values.
    keep_masked_credentials(hook, stored);
}

} // namespace whisperer::http::detail
