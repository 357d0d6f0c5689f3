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

namespace whisperer::http {

class HooksRouter;

/// Options of `Server`.
struct ServerOptions {
    /// Larger request bodies are answered 413 and the connection is closed.
    std::size_t body_limit = 1024 * 1024;
    /// Larger request headers (request line and fields) are answered 431 and the connection is
    /// closed.
    std::size_t header_limit = 16 * 1024;
    /// Requests with more header fields are answered 431 and the connection is closed.
    std::size_t max_header_fields = 100;
    /// A request's header must arrive within this long after the connection opened or the
    /// previous response was sent (idle keep-alive connections are closed after it), and its body
    /// within this long after the header. Writing a response has the same limit.
    std::chrono::milliseconds read_timeout{30000};
    /// One line per request ("GET /whisperer/hooks/ 200 1.2 ms"); null logs nothing.
    LogHandler log;
};

/// A small asynchronous HTTP/1.1 server for hosts that have none: keep-alive, request size
/// limits, timeouts and a graceful stop.
///
/// Runs on the given executor (the host runs its context on as many threads as it likes).
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
