#ifndef WHISPERER_HTTP_MESSAGE_HPP
#define WHISPERER_HTTP_MESSAGE_HPP

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

namespace whisperer::http {

/// The request type the router and the server handle: a complete Beast request with its body
/// in a string.
using Request = boost::beast::http::request<boost::beast::http::string_body>;

/// The response type the router produces: JSON in a string body, `Content-Length` set.
using Response = boost::beast::http::response<boost::beast::http::string_body>;

} // namespace whisperer::http

#endif
