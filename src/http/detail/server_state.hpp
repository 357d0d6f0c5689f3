// The listening side of whisperer::http::Server: the acceptor, the limits and the open sessions,
// shared with the sessions so that both outlive each other safely.
#ifndef WHISPERER_SRC_HTTP_DETAIL_SERVER_STATE_HPP
#define WHISPERER_SRC_HTTP_DETAIL_SERVER_STATE_HPP

#include "connection_limits.hpp"

#include <whisperer/http/server.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace whisperer::http::detail {

/// One connection as the server sees it.
class SessionBase {
public:
    virtual ~SessionBase() = default;
    virtual void start() = 0;
    /// Closes the connection once no request is in progress (at once when idle).
    virtual void stop() = 0;
};

/// Logs one line of a kind at most once per period, with how many were left out before it.
/// Not thread-safe (the accept loop uses it on its strand).
class LogThrottle {
public:
    explicit LogThrottle(std::chrono::steady_clock::duration period) : period_(period) {}

    /// The line to log at `now` (`line` with a count of the ones left out), or empty to stay
    /// silent.
    std::string pass(const std::string& line,
                     std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

private:
    std::chrono::steady_clock::duration period_;
    std::chrono::steady_clock::time_point last_{};
    std::size_t left_out_ = 0;
};

struct ServerState : std::enable_shared_from_this<ServerState> {
    ServerState(boost::asio::any_io_executor ex, Server::Handler h, ServerOptions opts);

    boost::asio::any_io_executor executor;
    Server::Handler handler;
    ServerOptions options;
    std::shared_ptr<ConnectionLimits> limits;
    boost::asio::strand<boost::asio::any_io_executor> strand;
    boost::asio::ip::tcp::acceptor acceptor; ///< Used on `strand` once listening.
    boost::asio::ip::tcp::endpoint bound;
    std::atomic<bool> stopped{false};

    void log(LogLevel level, const std::string& line) const;
    /// Accepts the next connection (on `strand`).
    void accept();
    void stop();

private:
    void on_accept(boost::system::error_code ec, boost::asio::ip::tcp::socket socket);
    void admit(boost::asio::ip::tcp::socket socket);
    void refuse(boost::asio::ip::tcp::socket& socket, const std::string& why);
    /// Waits before accepting again after a failure that would repeat at once (no descriptors).
    void pause_accepting(boost::system::error_code ec);

    // On `strand`:
    boost::asio::steady_timer accept_timer_;
    std::chrono::milliseconds accept_delay_;
    LogThrottle accept_failures_;
    LogThrottle refusals_;

    std::mutex mutex_; // Guards `sessions_`.
    std::vector<std::weak_ptr<SessionBase>> sessions_;
};

} // namespace whisperer::http::detail

#endif
