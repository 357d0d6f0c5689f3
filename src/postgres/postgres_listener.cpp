#include "postgres/postgres_listener.hpp"

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <optional>

namespace whisperer::detail {

namespace asio = boost::asio;

namespace {

std::string last_error(PGconn* conn)
{
    std::string message = conn ? PQerrorMessage(conn) : "out of memory";
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    return message;
}

} // namespace

struct PostgresListener::State : std::enable_shared_from_this<State> {
    State(asio::any_io_executor executor, PostgresListenerOptions o)
        : strand(asio::make_strand(executor)), options(std::move(o)), retry_timer(strand), delay(options.first_retry)
    {
    }

    ~State()
    {
        if (socket)
            socket->release();
        if (conn)
            PQfinish(conn);
    }

    using Wait = asio::posix::stream_descriptor::wait_type;

    asio::strand<asio::any_io_executor> strand;
    PostgresListenerOptions options;
    asio::steady_timer retry_timer;
    std::chrono::milliseconds delay;
    PGconn* conn = nullptr;
    std::optional<asio::posix::stream_descriptor> socket;
    std::atomic<bool> stopped{false};
    std::atomic<bool> listening{false};
    bool lost_logged = false;

    void log(LogLevel level, const std::string& message) const
    {
        if (options.log)
            options.log(level, "PostgreSQL listener: " + message);
    }

    /// Hands libpq's socket to Asio, again whenever libpq moved to another one (next host).
    void watch_socket()
    {
        const int fd = PQsocket(conn);
        if (socket && socket->native_handle() == fd)
            return;
        release_socket();
        if (fd >= 0)
            socket.emplace(strand, fd);
    }

    void release_socket()
    {
        if (socket) {
            boost::system::error_code ignored;
            socket->cancel(ignored);
            socket->release(); // libpq owns the descriptor and closes it in PQfinish.
            socket.reset();
        }
    }

    void close()
    {
        listening = false;
        release_socket();
        if (conn) {
            PQfinish(conn);
            conn = nullptr;
        }
    }

    template <class Next>
    void wait(Wait what, Next next)
    {
        if (!socket)
            return lost("the connection has no socket");
        socket->async_wait(what, asio::bind_executor(strand, [self = shared_from_this(), next](boost::system::error_code ec) {
            if (self->stopped)
                return;
            if (ec)
                return self->lost(ec.message());
            next();
        }));
    }

    void connect()
    {
        close();
        // Keep-alives find a connection whose peer vanished without closing it; the caller's
        // conninfo (expanded from `dbname`, after them) overrides them.
        const char* keys[] = {"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "dbname",
                              nullptr};
        const char* values[] = {"1", "10", "5", "3", options.conninfo.c_str(), nullptr};
        conn = PQconnectStartParams(keys, values, 1);
        if (!conn || PQstatus(conn) == CONNECTION_BAD)
            return lost("cannot connect: " + last_error(conn));
        PQsetNoticeProcessor(conn, [](void*, const char*) {}, nullptr); // nothing on the host's stderr
        poll_connect(PGRES_POLLING_WRITING);
    }

    void poll_connect(PostgresPollingStatusType status)
    {
        watch_socket();
        switch (status) {
        case PGRES_POLLING_READING:
            return wait(Wait::wait_read, [self = shared_from_this()] { self->poll_connect(PQconnectPoll(self->conn)); });
        case PGRES_POLLING_WRITING:
            return wait(Wait::wait_write, [self = shared_from_this()] { self->poll_connect(PQconnectPoll(self->conn)); });
        case PGRES_POLLING_OK: return send_listen();
        default: return lost("cannot connect: " + last_error(conn));
        }
    }

    void send_listen()
    {
        if (PQsetnonblocking(conn, 1) != 0 ||
            !PQsendQuery(conn, ("LISTEN " + quote_postgres_identifier(options.channel)).c_str()))
            return lost("cannot send LISTEN: " + last_error(conn));
        flush();
    }

    void flush()
    {
        const int flushed = PQflush(conn);
        if (flushed < 0)
            return lost("cannot send LISTEN: " + last_error(conn));
        if (flushed == 1)
            return wait(Wait::wait_write, [self = shared_from_this()] { self->flush(); });
        wait(Wait::wait_read, [self = shared_from_this()] { self->read_listen_result(); });
    }

    void read_listen_result()
    {
        if (!PQconsumeInput(conn))
            return lost(last_error(conn));
        if (PQisBusy(conn))
            return wait(Wait::wait_read, [self = shared_from_this()] { self->read_listen_result(); });
        bool ok = true;
        std::string error;
        while (PGresult* result = PQgetResult(conn)) {
            if (PQresultStatus(result) != PGRES_COMMAND_OK) {
                ok = false;
                error = PQresultErrorMessage(result);
            }
            PQclear(result);
        }
        if (!ok)
            return lost("LISTEN failed: " + error);
        listening = true;
        delay = options.first_retry;
        if (lost_logged)
            log(LogLevel::info, "listening again on \"" + options.channel + "\"");
        lost_logged = false;
        wake(); // Anything notified while not listening was lost.
        read_notifications();
    }

    void read_notifications()
    {
        wait(Wait::wait_read, [self = shared_from_this()] {
            if (!PQconsumeInput(self->conn))
                return self->lost(last_error(self->conn));
            bool notified = false;
            while (PGnotify* notify = PQnotifies(self->conn)) {
                notified = true;
                PQfreemem(notify);
            }
            if (notified)
                self->wake();
            if (!self->stopped)
                self->read_notifications();
        });
    }

    void wake()
    {
        if (!stopped && options.on_wake)
            options.on_wake();
    }

    void lost(const std::string& why)
    {
        if (stopped)
            return;
        close();
        if (!lost_logged)
            log(LogLevel::warning, why + "; connecting again (backoff from " +
                                       std::to_string(options.first_retry.count()) + " ms)");
        lost_logged = true;
        retry_timer.expires_after(delay);
        delay = std::min(delay * 2, options.last_retry);
        retry_timer.async_wait(asio::bind_executor(strand, [self = shared_from_this()](boost::system::error_code ec) {
            if (!ec && !self->stopped)
                self->connect();
        }));
    }
};

PostgresListener::PostgresListener(asio::any_io_executor executor, PostgresListenerOptions options)
    : state_(std::make_shared<State>(std::move(executor), std::move(options)))
{
}

PostgresListener::~PostgresListener()
{
    stop();
}

void PostgresListener::start()
{
    asio::dispatch(state_->strand, [state = state_] {
        if (!state->stopped)
            state->connect();
    });
}

void PostgresListener::stop()
{
    if (state_->stopped.exchange(true))
        return;
    asio::dispatch(state_->strand, [state = state_] {
        state->retry_timer.cancel();
        state->close();
    });
}

bool PostgresListener::listening() const noexcept
{
    return state_->listening;
}

} // namespace whisperer::detail
