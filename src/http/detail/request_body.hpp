// Reading a JSON request body: content type, syntax and shape, each failure an `HttpError`.
#ifndef WHISPERER_SRC_HTTP_DETAIL_REQUEST_BODY_HPP
#define WHISPERER_SRC_HTTP_DETAIL_REQUEST_BODY_HPP

#include <whisperer/http/message.hpp>

#include <boost/json/object.hpp>

#include <cstddef>

namespace whisperer::http::detail {

/// The body as a JSON object. An empty body is `{}`; otherwise `Content-Type` must be
/// `application/json` (415), the body valid JSON nested at most `max_depth` levels deep (400,
/// code "parse_error") and an object (400).
boost::json::object read_json_object(const Request& request, std::size_t max_depth);

} // namespace whisperer::http::detail

#endif
