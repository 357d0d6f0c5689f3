#ifndef WHISPERER_HTTP_SERVER_HPP
#define WHISPERER_HTTP_SERVER_HPP

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/http/message.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>

namespace boost::asio::ssl {
class context;
}

namespace whisperer::http {

class HooksRouter;

/// Options of `Server`. The limits bound what a client can make the server hold before any
/// handler (and so before any authentication) runs; docs/SECURITY.md lists them.
struct ServerOptions {
    /// Larger request bodies are answered 413 and the connection is closed.
    std::size_t body_limit = 1024 * 1024;
    /// Larger request headers (request line and fields) are answered 431 and the connection is
    /// closed. Also bounds a chunk header (size and extensions) and the trailer of a chunked body:
    /// longer ones are answered 400.
    std::size_t header_limit = 16 * 1024;
    /// Requests with more header fields are answered 431 and the connection is closed.
    std::size_t max_header_fields = 100;

    /// Open connections at most; a connection past it is answered 503 and closed at once.
    std::size_t max_connections = 1024;
    /// Open connections from one client address at most (past it: 503 and closed). Behind a
    /// reverse proxy every connection comes from the proxy's address: set it to `max_connections`.
    std::size_t max_connections_per_client = 128;

    /// A new connection must complete its TLS handshake (when `tls` is set) and send a complete
    /// request header within this long.
    std::chrono::milliseconds header_timeout{10000};
    /// A kept-alive connection is closed when its next request does not start within this long;
    /// once it starts, its header has `header_timeout`.
    std::chrono::milliseconds idle_timeout{30000};
    /// A request's body must arrive within this long after its header.
    std::chrono::milliseconds body_timeout{30000};
    /// A response must be written within this long. The handler's own time is not limited.
    std::chrono::milliseconds write_timeout{30000};

    /// Serves HTTPS only, with this context (see `make_server_tls_context` in
    /// whisperer/http/server_tls.hpp); plain HTTP when null. Shared, so one context may serve
    /// several servers; it must not change while a server uses it.
    std::shared_ptr<boost::asio::ssl::context> tls;

    /// One line per request ("127.0.0.1 \"GET /whisperer/hooks/\" 200 1.2 ms", without the query
    /// string) and rare warnings (refused connections, accept failures, at most one line per
    /// kind a second); null logs nothing.
    LogHandler log;
};

/// A small asynchronous HTTP/1.1 server for hosts that have none: keep-alive, request size
/// limits, connection limits, timeouts, optional TLS and a graceful stop.
///
/// Runs on the given executor (the host runs its context on as many threads as it likes).
/// When the process runs out of file descriptors it stops accepting for a while (50 ms, doubling
/// up to 500 ms) rather than retrying at once.
/// Thread safety: every member function may be called from any thread. Connections still
/// finishing a request after `stop` (or the destructor) keep running on the executor, so the
/// handler (or router) must stay alive until the executor's context has stopped.
class Server {
public:
    /// Answers one request through the completion, exactly once, from any thread.
    using Handler = std::function<void(Request, std::function<void(Response)>)>;

    /// Serves `router` (requests outside its prefix get its JSON 404).
    Server(boost::asio::any_io_executor executor, HooksRouter& router, ServerOptions options = {});
    /// Serves any handler, e.g. one that routes between the host's endpoints and a router.
    Server(boost::asio::any_io_executor executor, Handler handler, ServerOptions options = {});
    /// Stops (see `stop`).
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    /// Binds and starts accepting on `endpoint` (port 0 picks a free one). Throws
    /// `boost::system::system_error` when binding fails.
    void listen(const boost::asio::ip::tcp::endpoint& endpoint);

    /// The bound endpoint (with the chosen port).
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    /// Stops accepting and closes idle connections; requests in progress get their response,
    /// then their connections close. Returns at once; idempotent.
    void stop();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

} // namespace whisperer::http

#endif
