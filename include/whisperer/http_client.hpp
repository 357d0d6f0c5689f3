#ifndef WHISPERER_HTTP_CLIENT_HPP
#define WHISPERER_HTTP_CLIENT_HPP

#include <whisperer/delivery.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace whisperer {

/// Options of `HttpClient`.
struct HttpClientOptions {
    /// Resolving, connecting and the TLS handshake together must finish within this (and
    /// within what is left of `total_timeout`).
    std::chrono::milliseconds connect_timeout{10000};
    /// The whole request, from `async_send`: waiting in line for a connection, connecting,
    /// writing the request and reading the whole response must finish within this.
    std::chrono::milliseconds total_timeout{10000};
    /// Response bodies are read up to this many bytes; the rest is read and discarded.
    std::size_t response_body_limit = 20 * 1024;
    /// The status line and headers of a response may have at most this many bytes. A
    /// connection buffers at most this plus 64 KiB of a response it has not parsed yet (a chunk
    /// header that never ends, say): past that the request fails with `FailureClass::protocol`.
    std::size_t response_header_limit = 64 * 1024;
    /// Connections open at once to one origin (scheme, host, port) for one owner
    /// (`HttpRequest::owner`); more requests wait in line.
    std::size_t max_connections_per_origin = 8;
    /// An idle keep-alive connection is closed after this long.
    std::chrono::milliseconds idle_timeout{30000};
    /// PEM file of trusted CAs; empty uses the system's default store.
    std::string ca_file;
    /// The User-Agent header of every request.
    std::string user_agent = "whisperer/0.1.0";
    /// Called with every address a host name resolves to, before connecting; returning false
    /// refuses the request with `FailureClass::blocked` (the SSRF guard). Null allows everything.
    /// Only addresses that passed are connected to: there is no second lookup.
    std::function<bool(const boost::asio::ip::address&)> address_filter;
};

/// An outgoing request. `url` is absolute http or https.
struct HttpRequest {
    std::string method = "POST";
    std::string url;
    std::vector<std::pair<std::string, std::string>> headers; ///< Sent in this order.
    std::string body;
    /// On whose behalf the request goes (a hook's owner). Connections are pooled per origin and
    /// owner: requests of different owners never share a connection.
    std::string owner;
    /// Replaces `HttpClientOptions::total_timeout` for this request.
    std::optional<std::chrono::milliseconds> timeout;
};

/// What came of a request: a response, or the class of transport failure.
struct HttpResult {
    int status = 0;                  ///< 0 when no complete response arrived.
    std::string body;                ///< Up to `response_body_limit` bytes.
    bool body_truncated = false;     ///< The body was longer than the limit.
    std::vector<std::pair<std::string, std::string>> headers; ///< Response headers, as received.
    FailureClass failure = FailureClass::none; ///< `none` when a response arrived (any status).
    std::string error;               ///< Detail of the failure.
    std::chrono::microseconds duration{0}; ///< From the start of the request to the end of the response.

    /// The value of response header `name` (case-insensitive), or empty.
    std::string header(std::string_view name) const;
};

/// An HTTP/1.1 client over Boost.Beast with a keep-alive connection pool per origin and owner.
///
/// HTTPS verifies the certificate chain and the host name and sends SNI. Redirects are never
/// followed. Interim (1xx) responses are read past; `101 Switching Protocols` fails the request
/// with `FailureClass::protocol` and closes the connection. Thread-safe: any thread may call `async_send`; handlers run on the client's
/// executor, never inline. Destroying the client (or `shutdown`) fails the requests in flight.
class HttpClient {
public:
    using Handler = std::function<void(HttpResult)>;

    /// Handlers and internal work run on `executor` (which may be run by several threads).
    /// Throws `boost::system::system_error` when `options.ca_file` cannot be loaded.
    HttpClient(boost::asio::any_io_executor executor, HttpClientOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    /// Sends `request`; `handler` (not null) receives the result exactly once, posted to the
    /// executor, unless the executor stops running first. A request whose connection cannot be
    /// had at once waits in its pool's line, within `total_timeout` (it then fails with
    /// `FailureClass::timeout`); that wait is not counted in `duration`.
    void async_send(HttpRequest request, Handler handler);

    /// Closes idle connections and fails requests in flight and in line; later sends fail at once.
    void shutdown();

    /// Connections currently open (idle or busy), over all origins.
    std::size_t open_connections() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

} // namespace whisperer

#endif
