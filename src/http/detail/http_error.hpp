// Errors of the REST API: a request handler throws `HttpError` (or a whisperer `Error`) and the
// router turns it into one JSON error response, so no handler builds error bodies itself.
#ifndef WHISPERER_SRC_HTTP_DETAIL_HTTP_ERROR_HPP
#define WHISPERER_SRC_HTTP_DETAIL_HTTP_ERROR_HPP

#include <whisperer/error.hpp>
#include <whisperer/http/message.hpp>

#include <boost/beast/http/status.hpp>
#include <boost/json/value.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <system_error>

namespace whisperer::http::detail {

using boost::beast::http::status;

/// A failed request: the status and the JSON body `{"code", "en", "field"?}` to answer with.
class HttpError : public std::runtime_error {
public:
    HttpError(status s, std::string code, const std::string& message, std::string field = {})
        : std::runtime_error(message), status_(s), code_(std::move(code)), field_(std::move(field)) {}

    status http_status() const noexcept { return status_; }
    const std::string& code() const noexcept { return code_; }
    const std::string& field() const noexcept { return field_; }
    /// The `Allow` header of a 405.
    const std::string& allow() const noexcept { return allow_; }
    HttpError& with_allow(std::string allow) { allow_ = std::move(allow); return *this; }
    /// The `Retry-After` header of a 429, in whole seconds (0: none).
    long long retry_after() const noexcept { return retry_after_; }
    HttpError& with_retry_after(long long seconds) { retry_after_ = seconds; return *this; }

private:
    status status_;
    std::string code_;
    std::string field_;
    std::string allow_;
    long long retry_after_ = 0;
};

/// A 400 naming `field`, as validation errors are reported.
HttpError invalid_field(std::string field, const std::string& message);

/// The error response for a whisperer error code (publish and retry completions report these).
HttpError from_error_code(std::error_code ec, const std::string& message = {});

/// The error response for whatever is in flight: `HttpError`, `ValidationError`, other whisperer
/// errors (by code), anything else as an opaque 500. Call inside a catch block only.
HttpError from_current_exception() noexcept;

/// How a response must be framed to answer a request: taken from the request before it is moved.
struct ReplyTo {
    unsigned version = 11;
    bool keep_alive = true;

    static ReplyTo of(const Request& request) noexcept { return {request.version(), request.keep_alive()}; }
};

/// A JSON response with `Content-Type: application/json` and `Content-Length` set.
Response json_response(ReplyTo to, status s, const boost::json::value& body);

/// A bodiless response (204).
Response empty_response(ReplyTo to, status s);

/// The JSON response of `error`.
Response error_response(ReplyTo to, const HttpError& error);

} // namespace whisperer::http::detail

#endif
