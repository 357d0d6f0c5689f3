// A dedicated PostgreSQL connection that LISTENs on one channel, on Asio, reconnecting.
#ifndef WHISPERER_POSTGRES_POSTGRES_LISTENER_HPP
#define WHISPERER_POSTGRES_POSTGRES_LISTENER_HPP

#include <whisperer/dispatcher_options.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

namespace whisperer::detail {

/// Options of `PostgresListener`.
struct PostgresListenerOptions {
    std::string conninfo;                 ///< libpq connection string or URI.
    std::string channel;                  ///< Channel name as NOTIFY sends it (quoted on LISTEN).
    std::function<void()> on_wake;        ///< After each notification, and after each (re)connect.
    LogHandler log;                       ///< Connection losses and reconnects; may be empty.
    std::chrono::milliseconds first_retry{100}; ///< Backoff after a failed connect, doubling...
    std::chrono::milliseconds last_retry{5000}; ///< ...up to this.
};

/// Keeps one connection LISTENing on a channel and calls `on_wake` when a notification arrives.
///
/// Everything runs on `executor` without blocking it: the connection is made with libpq's
/// non-blocking calls and its socket waited on by Asio. A lost connection (a server restart, a
/// network cut) is made again with backoff, and `on_wake` is called once it is back, because
/// notifications sent meanwhile were lost: the caller must then look for work itself. `on_wake`
/// may be called more often than there is work (one call may stand for several notifications).
/// Thread-safe: `start` and `stop` may be called from any thread; `on_wake` runs on `executor`.
class PostgresListener {
public:
    PostgresListener(boost::asio::any_io_executor executor, PostgresListenerOptions options);
    ~PostgresListener();
    PostgresListener(const PostgresListener&) = delete;
    PostgresListener& operator=(const PostgresListener&) = delete;

    /// Connects and starts listening.
    void start();
    /// Closes the connection. No `on_wake` starts after this returns (one already running on
    /// another thread completes). Idempotent.
    void stop();
    /// Whether the connection is up and LISTENing.
    bool listening() const noexcept;

private:
    struct State;
    std::shared_ptr<State> state_;
};

} // namespace whisperer::detail

#endif
