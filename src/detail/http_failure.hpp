#ifndef WHISPERER_SRC_DETAIL_HTTP_FAILURE_HPP
#define WHISPERER_SRC_DETAIL_HTTP_FAILURE_HPP

#include <whisperer/delivery.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

namespace whisperer::detail {

/// The failure class of a transport error (an error that ended a request without a response).
inline FailureClass classify_transport_error(const boost::system::error_code& ec) noexcept
{
    namespace error = boost::asio::error;
    namespace http = boost::beast::http;
    if (ec == error::connection_refused)
        return FailureClass::connection_refused;
    if (ec == error::connection_reset || ec == error::broken_pipe || ec == error::connection_aborted)
        return FailureClass::connection_reset;
    // A TLS peer that closes without close_notify is a plain close, not a TLS failure.
    if (ec == error::eof || ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == boost::asio::ssl::error::stream_truncated)
        return FailureClass::connection_closed;
    if (ec == boost::beast::error::timeout || ec == error::timed_out)
        return FailureClass::timeout;
    const auto& category = ec.category();
    if (category == error::get_netdb_category() || category == error::get_addrinfo_category())
        return FailureClass::dns;
    if (category == error::get_ssl_category() || category == boost::asio::ssl::error::get_stream_category())
        return FailureClass::tls;
    if (category == http::make_error_code(http::error::bad_version).category())
        return FailureClass::protocol;
    return FailureClass::io;
}

} // namespace whisperer::detail

#endif
