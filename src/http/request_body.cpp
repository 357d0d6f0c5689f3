#include "detail/request_body.hpp"
#include "detail/http_error.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/json/error.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <cctype>
#include <string>

namespace whisperer::http::detail {

namespace {

/// True for `application/json`, with parameters (`; charset=utf-8`) and in any letter case.
bool is_json_media_type(std::string_view content_type)
{
    std::string_view type = content_type.substr(0, content_type.find(';'));
    while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
        type.remove_suffix(1);
    while (!type.empty() && (type.front() == ' ' || type.front() == '\t'))
        type.remove_prefix(1);
    constexpr std::string_view json = "application/json";
    return type.size() == json.size() && std::equal(type.begin(), type.end(), json.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           });
}

} // namespace

boost::json::object read_json_object(const Request& request, std::size_t max_depth)
{
    // As in the original API, no body is no data (whatever the content type says), so that
    // required fields are reported by name and a bare `POST .../retry/` works.
    if (request.body().empty())
        return {};
    auto content_type = request.find(boost::beast::http::field::content_type);
    if (content_type == request.end() || !is_json_media_type(content_type->value()))
        throw HttpError(status::unsupported_media_type, "unsupported_media_type",
                        "Unsupported media type: send the body as application/json.");
    boost::system::error_code ec;
    boost::json::parse_options options;
    options.max_depth = max_depth;
    boost::json::value body = boost::json::parse(request.body(), ec, {}, options);
    if (ec == boost::json::error::too_deep)
        throw HttpError(status::bad_request, "parse_error",
                        "The JSON body may nest arrays and objects at most " + std::to_string(max_depth) +
                            " levels deep.");
    if (ec)
        throw HttpError(status::bad_request, "parse_error", "JSON parse error: " + ec.message() + ".");
    if (!body.is_object())
        throw HttpError(status::bad_request, "parse_error", "The JSON body must be an object.");
    return std::move(body.as_object());
}

} // namespace whisperer::http::detail
