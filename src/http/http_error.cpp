#include "detail/http_error.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace whisperer::http::detail {

namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

status status_of(errc e) noexcept
{
    switch (e) {
    case errc::hook_not_found:
    case errc::delivery_not_found: return status::not_found;
    case errc::hook_already_registered:
    case errc::event_already_delivered:
    case errc::event_still_retrying: return status::not_acceptable;
    case errc::invalid_argument:
    case errc::unknown_event_type:
    case errc::improperly_configured:
    case errc::too_many_hooks: return status::bad_request;
    case errc::payload_too_large: return status::payload_too_large;
    case errc::store_failure:
    case errc::store_version_too_new:
    case errc::dispatcher_stopped: return status::service_unavailable;
    case errc::event_already_registered:
    case errc::no_default_dispatcher: break;
    }
    return status::internal_server_error;
}

/// Store and internal failures are described generically: their details are for the host's logs.
std::string public_message(errc e, const std::string& message)
{
    if (status_of(e) == status::service_unavailable || status_of(e) == status::internal_server_error ||
        message.empty())
        return make_error_code(e).message();
    return message;
}

} // namespace

HttpError invalid_field(std::string field, const std::string& message)
{
    return HttpError(status::bad_request, std::string(api_code(errc::invalid_argument)), message, std::move(field));
}

HttpError from_error_code(std::error_code ec, const std::string& message)
{
    if (ec.category() != whisperer_category())
        return HttpError(status::internal_server_error, "internal_error", "Internal server error.");
    auto e = static_cast<errc>(ec.value());
    std::string field = e == errc::unknown_event_type ? "event_type" : "";
    return HttpError(status_of(e), std::string(api_code(e)), public_message(e, message), std::move(field));
}

HttpError from_current_exception() noexcept
{
    try {
        try {
            throw;
        } catch (const HttpError& e) {
            return e;
        } catch (const ValidationError& e) {
            return invalid_field(e.field(), e.what());
        } catch (const Error& e) {
            return from_error_code(e.error_code(), e.what());
        } catch (const std::bad_alloc&) {
            return HttpError(status::service_unavailable, "out_of_memory", "The server is out of memory.");
        } catch (...) {
            return HttpError(status::internal_server_error, "internal_error", "Internal server error.");
        }
    } catch (...) {
        // Building the error itself failed (allocation): answer without a message.
        return HttpError(status::internal_server_error, "internal_error", "");
    }
}

Response json_response(ReplyTo to, status s, const json::value& body)
{
    Response response{s, to.version};
    response.set(http::field::content_type, "application/json");
    response.keep_alive(to.keep_alive);
    response.body() = json::serialize(body);
    response.prepare_payload();
    return response;
}

Response empty_response(ReplyTo to, status s)
{
    Response response{s, to.version};
    response.keep_alive(to.keep_alive);
    // 1xx, 204 and 304 responses carry neither a body nor Content-Length (RFC 9110 8.6).
    if (s != status::no_content && s != status::not_modified)
        response.prepare_payload();
    return response;
}

Response error_response(ReplyTo to, const HttpError& error)
{
    json::object body{{"code", error.code()}, {"en", error.what()}};
    if (!error.field().empty())
        body["field"] = error.field();
    Response response = json_response(to, error.http_status(), body);
    if (!error.allow().empty())
        response.set(http::field::allow, error.allow());
    if (error.retry_after() > 0)
        response.set(http::field::retry_after, std::to_string(error.retry_after()));
    if (error.http_status() == status::unauthorized)
        response.set(http::field::www_authenticate, "Token");
    return response;
}

} // namespace whisperer::http::detail
