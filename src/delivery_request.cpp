#include "detail/delivery_request.hpp"

#include "detail/base64.hpp"

#include <whisperer/hook.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/signature.hpp>

#include <ctime>

namespace whisperer::detail {

namespace {

std::string string_field(const boost::json::object& o, std::string_view key)
{
    const boost::json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
}

/// Parses an IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT".
std::optional<TimePoint> parse_http_date(const std::string& text)
{
    std::tm tm{};
    const char* end = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == nullptr || *end != '\0')
        return std::nullopt;
    return Clock::from_time_t(timegm(&tm));
}

} // namespace

HttpRequest make_delivery_request(const ClaimedDelivery& delivery, std::int64_t unix_timestamp,
                                  const std::string& authorization)
{
    const Hook& hook = delivery.hook;
    HttpRequest request;
    request.method = "POST";
    request.url = hook.target_url;
    request.body = delivery.body;
    request.owner = hook.owner;
    auto& headers = request.headers;
    headers.reserve(8 + hook.additional_headers.size());
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("X-Whisperer-Event", delivery.event_type);
    // webhook-id and webhook-timestamp go out even unsigned: receivers dedupe on the id.
    headers.emplace_back("webhook-id", delivery.event_uuid);
    headers.emplace_back("webhook-timestamp", std::to_string(unix_timestamp));
    // During a rotation's grace period the old secrets sign too, the current one first.
    const std::vector<std::string> secrets = signing_secrets(hook, Clock::from_time_t(unix_timestamp));
    if (!secrets.empty()) {
        headers.emplace_back("X-Whisperer-Signature", whisperer_signature_header(secrets, delivery.body));
        headers.emplace_back("webhook-signature",
                             standard_signature_header(secrets, delivery.event_uuid, unix_timestamp, delivery.body));
    }
    if (!authorization.empty())
        headers.emplace_back("Authorization", authorization);
    for (const auto& entry : hook.additional_headers) {
        if (is_reserved_header(entry.key()) || !entry.value().is_string())
            continue;
        if (!authorization.empty() && entry.key().size() == 13 &&
            std::equal(entry.key().begin(), entry.key().end(), "authorization",
                       [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; }))
            continue;
        headers.emplace_back(std::string(entry.key()), std::string(entry.value().as_string()));
    }
    return request;
}

std::string basic_authorization(const boost::json::object& config)
{
    const boost::json::value* auth = config.if_contains("auth");
    if (auth == nullptr || !auth->is_object() || string_field(auth->as_object(), "auth_type") != "basic")
        return {};
    const auto& o = auth->as_object();
    return "Basic " + base64_encode(string_field(o, "username") + ":" + string_field(o, "password"));
}

Attempt to_attempt(const HttpResult& result, unsigned number, TimePoint started, AttemptTrigger trigger)
{
    Attempt attempt;
    attempt.number = number;
    attempt.started_at = started;
    attempt.duration = result.duration;
    attempt.response_status = result.status;
    attempt.response_body = result.body;
    attempt.trigger = trigger;
    if (result.failure != FailureClass::none) {
        attempt.failure = result.failure;
        attempt.error = result.error;
    } else if (result.status < 200 || result.status > 299) {
        attempt.failure = FailureClass::http_status;
        attempt.error = "HTTP " + std::to_string(result.status);
        if (result.status >= 300 && result.status < 400)
            attempt.error += " (redirects are not followed)";
    }
    return attempt;
}

std::optional<std::chrono::seconds> retry_after(const HttpResult& result, TimePoint now, std::chrono::seconds max)
{
    if (result.status != 429 && result.status != 503)
        return std::nullopt;
    std::string value = result.header("Retry-After");
    if (value.empty())
        return std::nullopt;
    std::chrono::seconds wait{};
    if (value.find_first_not_of("0123456789") == std::string::npos) {
        if (value.size() > 9)
            return max;
        wait = std::chrono::seconds(std::stoll(value));
    } else if (auto date = parse_http_date(value)) {
        wait = std::chrono::duration_cast<std::chrono::seconds>(*date - now);
    } else {
        return std::nullopt;
    }
    return std::clamp(wait, std::chrono::seconds(0), max);
}

} // namespace whisperer::detail
