#include "detail/tokens_routes.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/subscription_store.hpp>

#include "detail/query.hpp"
#include "detail/request_body.hpp"
#include "detail/resource_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <optional>
#include <string>

namespace whisperer::http::detail {

namespace json = boost::json;

namespace {

json::value optional_time(const std::optional<TimePoint>& t)
{
    return t ? json::value(format_time(*t)) : json::value(nullptr);
}

/// A token as the routes show it: never its key, nor the key's hash.
json::object token_json(const ApiToken& token)
{
    return json::object{
        {"id", token.id},
        {"owner", token.owner},
        {"admin", token.admin},
        {"publisher", token.publisher},
        {"created", format_time(token.created)},
        {"expires", optional_time(token.expires)},
        {"last_used", optional_time(token.last_used)},
    };
}

/// The string field `name`, or nullopt when absent or null.
std::optional<std::string> text_field(const json::object& body, std::string_view name)
{
    const json::value* v = body.if_contains(name);
    if (v == nullptr || v->is_null())
        return std::nullopt;
    if (!v->is_string())
        throw invalid_field(std::string(name), std::string(name) + " must be a string.");
    return std::string(v->as_string());
}

bool flag_field(const json::object& body, std::string_view name)
{
    const json::value* v = body.if_contains(name);
    if (v == nullptr || v->is_null())
        return false;
    if (!v->is_bool())
        throw invalid_field(std::string(name), std::string(name) + " must be true or false.");
    return v->as_bool();
}

/// When the new token expires: from `expires_in` or `expires`, never when neither is given.
std::optional<TimePoint> expiry_of(const json::object& body, TimePoint now)
{
    const auto lifetime = text_field(body, "expires_in");
    const auto expires = text_field(body, "expires");
    if (lifetime && expires)
        throw invalid_field("expires", "Give expires_in or expires, not both.");
    if (lifetime)
        return now + parse_token_lifetime(*lifetime);
    if (!expires)
        return std::nullopt;
    const auto at = parse_time(*expires);
    if (!at)
        throw invalid_field("expires", "expires must be an ISO 8601 date or date-time.");
    if (*at <= now)
        throw invalid_field("expires", "expires must be in the future.");
    if (*at - now > max_token_lifetime)
        throw invalid_field("expires", "expires may be at most " +
                                           std::to_string(max_token_lifetime.count() / 86400) + " days away.");
    return at;
}

} // namespace

Response list_tokens(SubscriptionStore& store, ReplyTo to)
{
    json::array results;
    for (const ApiToken& token : store.list_tokens())
        results.push_back(token_json(token));
    return json_response(to, status::ok, page_json(std::move(results), std::nullopt));
}

Response create_token(SubscriptionStore& store, const Request& request, ReplyTo to, std::size_t max_json_depth)
{
    const json::object body = read_json_object(request, max_json_depth);
    ApiToken grant;
    grant.owner = text_field(body, "owner").value_or("");
    grant.admin = flag_field(body, "admin");
    grant.publisher = flag_field(body, "publisher");
    grant.expires = expiry_of(body, Clock::now());
    const IssuedToken issued = issue_token(store, std::move(grant));
    json::object out = token_json(issued.token);
    out["key"] = issued.key;
    return json_response(to, status::created, out);
}

Response revoke_token(SubscriptionStore& store, std::int64_t id, ReplyTo to)
{
    if (!store.revoke_token(id))
        throw HttpError(status::not_found, "token_not_found", "API token does not exist.");
    return empty_response(to, status::no_content);
}

} // namespace whisperer::http::detail
