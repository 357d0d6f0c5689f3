#include <whisperer/http_client.hpp>

#include <whisperer/address_policy.hpp>

#include "detail/http_capped_body.hpp"
#include "detail/http_connection.hpp"
#include "detail/http_failure.hpp"
#include "detail/http_target.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/http/parser.hpp>

#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

namespace whisperer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using detail::HttpConnection;
using detail::HttpTarget;
using boost::system::error_code;

std::string HttpResult::header(std::string_view name) const
{
    for (const auto& [key, value] : headers)
        if (beast::iequals(key, name))
            return value;
    return {};
}

namespace {

/// Interim (1xx) responses read past before a request fails with `protocol`.
constexpr unsigned max_interim_responses = 8;

/// What a connection may buffer past the response headers' limit: chunk headers and the
/// pieces of body the parser has not taken yet.
constexpr std::size_t read_buffer_slack = 64 * 1024;

/// A request on its way: where it goes, the message to send, whom to tell and by when.
struct Exchange {
    HttpTarget target;
    std::string pool_key; ///< Origin and owner: the pool whose connections it may use.
    http::request<http::string_body> message;
    HttpClient::Handler handler;
    std::chrono::milliseconds timeout{0};            ///< The whole request's.
    std::chrono::steady_clock::time_point deadline; ///< The whole request ends by then.
    std::uint64_t id = 0;                          ///< Names it while it waits in line.
    std::unique_ptr<asio::steady_timer> wait_timer; ///< Armed while it waits in line.
};

/// What is left until `deadline`, never negative.
std::chrono::milliseconds time_left(std::chrono::steady_clock::time_point deadline)
{
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return std::max(left, std::chrono::milliseconds(0));
}

/// What one write-and-read on a connection came to.
enum class Transfer {
    keep_alive, ///< A response arrived and the connection may carry the next request.
    close,      ///< A response arrived but the connection must be closed.
    failed,     ///< No response; the result says why.
    stale,      ///< A reused connection had been closed by the server before any response byte.
};

bool header_value_is_safe(std::string_view s) noexcept
{
    return s.find_first_of("\r\n") == std::string_view::npos;
}

/// Whether `ec`, before any response byte on a reused connection, means the server had closed it.
bool is_stale_error(const error_code& ec) noexcept
{
    return ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
           ec == asio::ssl::error::stream_truncated;
}

/// Appends OpenSSL's reason for rejecting the peer's certificate, if that is what failed.
void append_verify_detail(std::string& error, HttpConnection& conn)
{
    if (!conn.is_tls())
        return;
    const long verify = SSL_get_verify_result(conn.tls_stream().native_handle());
    if (verify != X509_V_OK) {
        error += ": ";
        error += X509_verify_cert_error_string(verify);
    }
}

} // namespace

struct HttpClient::Impl : std::enable_shared_from_this<Impl> {
    /// The connections of one origin for one owner and the requests waiting for one of them.
    struct OriginPool {
        std::vector<std::shared_ptr<HttpConnection>> open; ///< Connecting, busy or idle.
        std::vector<std::shared_ptr<HttpConnection>> idle; ///< Oldest first.
        std::deque<std::unique_ptr<Exchange>> waiting;      ///< FIFO.
    };

    Impl(asio::any_io_executor executor, HttpClientOptions options)
        : executor_(std::move(executor)), options_(std::move(options)),
          tls_context_(asio::ssl::context::tls_client), sweep_timer_(executor_)
    {
        tls_context_.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                                 asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                                 asio::ssl::context::no_tlsv1_1);
        if (options_.ca_file.empty())
            tls_context_.set_default_verify_paths();
        else
            tls_context_.load_verify_file(options_.ca_file);
        tls_context_.set_verify_mode(asio::ssl::verify_peer);
        options_.max_connections_per_origin = std::max<std::size_t>(options_.max_connections_per_origin, 1);
    }

    void send(HttpRequest request, Handler handler)
    {
        auto target = HttpTarget::parse(request.url);
        if (!target) {
            // The URL may carry a secret (in its path or query): the error does not repeat it.
            fail_later(std::move(handler), FailureClass::io, "invalid URL: not an absolute http(s) URL with a host");
            return;
        }
        auto exchange = std::make_unique<Exchange>();
        exchange->handler = std::move(handler);
        exchange->timeout = request.timeout.value_or(options_.total_timeout);
        exchange->deadline = std::chrono::steady_clock::now() + exchange->timeout;
        // A space never occurs in an origin: the key names one origin and one owner.
        exchange->pool_key = target->origin + " " + request.owner;
        if (!build_message(request, *target, exchange->message)) {
            fail_later(std::move(exchange->handler), FailureClass::io, "header contains CR or LF");
            return;
        }
        exchange->target = std::move(*target);
        submit(std::move(exchange));
    }

    bool build_message(HttpRequest& request, const HttpTarget& target, http::request<http::string_body>& m) const
    {
        const http::verb verb = http::string_to_verb(request.method);
        if (verb == http::verb::unknown)
            m.method_string(request.method);
        else
            m.method(verb);
        m.target(target.target);
        m.version(11);
        m.set(http::field::host, target.host_header);
        m.set(http::field::user_agent, options_.user_agent);
        for (const auto& [name, value] : request.headers) {
            if (!header_value_is_safe(name) || !header_value_is_safe(value))
                return false;
            const http::field field = http::string_to_field(name);
            // The client frames the body itself; a caller's framing headers would contradict it.
            // It sends the body at once, so it never asks for 100 Continue either.
            if (field == http::field::content_length || field == http::field::transfer_encoding ||
                field == http::field::expect)
                continue;
            if (field == http::field::host || field == http::field::user_agent)
                m.set(field, value);
            else
                m.insert(name, value);
        }
        m.body() = std::move(request.body);
        m.prepare_payload();
        return true;
    }

    /// Starts `exchange` on an idle or new connection of its origin, or queues it.
    void submit(std::unique_ptr<Exchange> exchange)
    {
        std::unique_lock lock(mutex_);
        if (stopped_) {
            lock.unlock();
            fail_later(std::move(exchange->handler), FailureClass::io, "shutdown");
            return;
        }
        OriginPool& pool = origins_[exchange->pool_key];
        std::shared_ptr<HttpConnection> conn = take_idle(pool);
        if (!conn) {
            if (pool.open.size() >= options_.max_connections_per_origin) {
                wait_in_line(pool, std::move(exchange));
                return;
            }
            conn = add_connection(pool, exchange->target);
        }
        lock.unlock();
        start(std::move(exchange), std::move(conn));
    }

    /// Queues `exchange` for a connection of `pool` until its deadline. Needs `mutex_` held.
    void wait_in_line(OriginPool& pool, std::unique_ptr<Exchange> exchange)
    {
        exchange->id = ++last_exchange_id_;
        exchange->wait_timer = std::make_unique<asio::steady_timer>(executor_, exchange->deadline);
        exchange->wait_timer->async_wait(
            [weak = weak_from_this(), key = exchange->pool_key, id = exchange->id](error_code ec) {
                if (auto self = weak.lock(); self && !ec)
                    self->expire_waiting(key, id);
            });
        pool.waiting.push_back(std::move(exchange));
    }

    std::string waited_too_long(const Exchange& exchange) const
    {
        return "timed out after " + std::to_string(exchange.timeout.count()) + " ms waiting for a connection to " +
               exchange.target.origin;
    }

    /// Fails the request `id` of pool `key` with `timeout` if it is still waiting in line.
    void expire_waiting(const std::string& key, std::uint64_t id)
    {
        std::unique_ptr<Exchange> expired;
        {
            std::lock_guard lock(mutex_);
            auto it = origins_.find(key);
            if (it == origins_.end())
                return;
            auto& waiting = it->second.waiting;
            auto found = std::find_if(waiting.begin(), waiting.end(), [id](const auto& e) { return e->id == id; });
            if (found == waiting.end())
                return;
            expired = std::move(*found);
            waiting.erase(found);
        }
        fail_later(std::move(expired->handler), FailureClass::timeout, waited_too_long(*expired));
    }

    void start(std::unique_ptr<Exchange> exchange, std::shared_ptr<HttpConnection> conn)
    {
        exchange->wait_timer.reset(); // Cancels the wait in line; its handler finds nothing.
        auto strand = conn->strand();
        asio::co_spawn(strand, run(shared_from_this(), std::move(exchange), std::move(conn)), asio::detached);
    }

    /// Runs one exchange on `conn`'s strand, hands the connection on and posts the handler.
    /// The duration runs from here: after the connection slot was obtained, so it includes
    /// connecting on a new connection but not the wait in the origin's line.
    static asio::awaitable<void> run(std::shared_ptr<Impl> self, std::unique_ptr<Exchange> exchange,
                                     std::shared_ptr<HttpConnection> conn)
    {
        const auto started = std::chrono::steady_clock::now();
        HttpResult result;
        Transfer transfer = Transfer::failed;
        try {
            if (started >= exchange->deadline) {
                // Its time ran out in line: the connection is handed on untouched.
                result.failure = FailureClass::timeout;
                result.error = self->waited_too_long(*exchange);
                transfer = conn->connected() ? Transfer::keep_alive : Transfer::failed;
            } else {
                transfer = co_await self->perform(*exchange, *conn, result);
            }
        } catch (const std::exception& e) {
            result.failure = FailureClass::io;
            result.error = e.what();
        }
        result.duration =
            std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
        if (transfer != Transfer::keep_alive)
            conn->close();
        self->release(std::move(conn), transfer == Transfer::keep_alive, exchange->pool_key);
        self->complete(std::move(exchange->handler), std::move(result));
    }

    /// Connects if needed and transfers; retries once on a fresh connection when a reused one
    /// turns out stale.
    asio::awaitable<Transfer> perform(Exchange& exchange, HttpConnection& conn, HttpResult& result)
    {
        if (!conn.connected() && !co_await connect(exchange, conn, result))
            co_return Transfer::failed;
        Transfer transfer = co_await transfer_on(exchange, conn, result);
        if (transfer == Transfer::stale) {
            conn.close();
            conn.reopen();
            result = HttpResult{};
            if (!co_await connect(exchange, conn, result))
                co_return Transfer::failed;
            transfer = co_await transfer_on(exchange, conn, result);
        }
        co_return transfer == Transfer::stale ? Transfer::failed : transfer;
    }

    /// Resolves, filters, connects and (for https) handshakes within `connect_timeout` and by the
    /// request's deadline.
    asio::awaitable<bool> connect(const Exchange& exchange, HttpConnection& conn, HttpResult& result)
    {
        const HttpTarget& target = exchange.target;
        error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        const auto limit = std::min(options_.connect_timeout, time_left(exchange.deadline));
        const auto failed = [&](std::string_view step) { return fail(result, conn, target, step, ec, limit); };
        if (stopped_)
            co_return failed("connect");
        conn.arm_deadline(limit);

        // An IP literal in any form (0x7f.1, 2130706433, ...) is connected to as the address the
        // filter saw, never handed to the resolver as a name.
        auto flags = asio::ip::resolver_base::numeric_service;
        std::string host = target.host;
        if (const UrlHost literal = parse_url_host(target.host); literal.kind == UrlHost::Kind::address) {
            host = literal.address.to_string();
            flags |= asio::ip::resolver_base::numeric_host;
        }
        const auto endpoints =
            co_await conn.resolver().async_resolve(host, std::to_string(target.port), flags, token);
        if (ec || stopped_)
            co_return failed("resolve");
        if (options_.address_filter) {
            for (const auto& entry : endpoints) {
                const auto address = entry.endpoint().address();
                if (!options_.address_filter(address)) {
                    conn.disarm_deadline();
                    result.failure = FailureClass::blocked;
                    result.error = "address " + address.to_string() + " of " + target.host +
                                   " refused by the address filter";
                    co_return false;
                }
            }
        }

        co_await conn.tcp().async_connect(endpoints, token);
        if (ec || stopped_)
            co_return failed("connect");
        conn.tcp().socket().set_option(asio::ip::tcp::no_delay(true), ec);
        if (conn.is_tls()) {
            co_await conn.tls_stream().async_handshake(asio::ssl::stream_base::client, token);
            if (ec || stopped_) {
                failed("TLS handshake");
                if (result.failure == FailureClass::tls)
                    append_verify_detail(result.error, conn);
                co_return false;
            }
        }
        conn.disarm_deadline();
        conn.set_connected();
        co_return true;
    }

    asio::awaitable<Transfer> transfer_on(Exchange& exchange, HttpConnection& conn, HttpResult& result)
    {
        if (conn.is_tls())
            return transfer_on(conn.tls_stream(), exchange, conn, result);
        return transfer_on(conn.plain_stream(), exchange, conn, result);
    }

    /// Writes the request and reads the response (past interim ones) by the request's deadline.
    template <class Stream>
    asio::awaitable<Transfer> transfer_on(Stream& stream, Exchange& exchange, HttpConnection& conn,
                                          HttpResult& result)
    {
        error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        const auto limit = time_left(exchange.deadline);
        const auto failed = [&](std::string_view step) {
            fail(result, conn, exchange.target, step, ec, limit);
            return Transfer::failed;
        };
        if (stopped_)
            co_return failed("write");
        const bool reused = conn.exchanges > 0;
        conn.arm_deadline(limit);

        co_await http::async_write(stream, exchange.message, token);
        if (ec || stopped_) {
            if (reused && is_stale_error(ec) && !conn.timed_out() && !stopped_)
                co_return Transfer::stale;
            co_return failed("write");
        }

        // An interim response (100 Continue, 103 Early Hints) is not the answer: the answer
        // follows it on the same connection, and must not be left there for the next request.
        std::optional<http::response_parser<detail::CappedBody>> parser;
        for (unsigned interim = 0;; ++interim) {
            parser.emplace();
            parser->header_limit(static_cast<std::uint32_t>(
                std::min<std::size_t>(options_.response_header_limit, std::numeric_limits<std::uint32_t>::max())));
            parser->body_limit(boost::none);
            parser->get().body().limit = options_.response_body_limit;
            if (exchange.message.method() == http::verb::head)
                parser->skip(true);
            co_await http::async_read(stream, conn.buffer(), *parser, token);
            if (ec || stopped_) {
                if (reused && interim == 0 && !parser->got_some() && is_stale_error(ec) && !conn.timed_out() &&
                    !stopped_)
                    co_return Transfer::stale;
                co_return failed("read");
            }
            const unsigned status = parser->get().result_int();
            if (status < 100 || status > 199)
                break;
            if (status == 101 || interim + 1 == max_interim_responses) {
                conn.disarm_deadline();
                result.failure = FailureClass::protocol;
                result.error = status == 101 ? "read: the receiver switched protocols (101)"
                                             : "read: " + std::to_string(max_interim_responses) +
                                                   " interim (1xx) responses and no final one";
                result.error += " (" + exchange.target.host + ":" + std::to_string(exchange.target.port) + ")";
                co_return Transfer::failed;
            }
        }
        conn.disarm_deadline();
        ++conn.exchanges;

        auto& response = parser->get();
        result.status = static_cast<int>(response.result_int());
        result.headers.reserve(static_cast<std::size_t>(std::distance(response.begin(), response.end())));
        for (const auto& field : response)
            result.headers.emplace_back(field.name_string(), field.value());
        result.body = std::move(response.body().data);
        result.body_truncated = response.body().truncated;
        co_return parser->keep_alive() ? Transfer::keep_alive : Transfer::close;
    }

    /// Fills `result` for a failed step and returns false. Shutdown and the connection's own
    /// deadline take precedence over the error the aborted operation reported.
    bool fail(HttpResult& result, HttpConnection& conn, const HttpTarget& target, std::string_view step,
              const error_code& ec, std::chrono::milliseconds limit) const
    {
        conn.disarm_deadline();
        std::string where = " (" + target.host + ":" + std::to_string(target.port) + ")";
        if (stopped_) {
            result.failure = FailureClass::io;
            result.error = "shutdown";
        } else if (conn.timed_out()) {
            result.failure = FailureClass::timeout;
            result.error = std::string(step) + ": timed out after " + std::to_string(limit.count()) + " ms" + where;
        } else {
            result.failure = detail::classify_transport_error(ec);
            result.error = std::string(step) + ": " + ec.message() + where;
        }
        return false;
    }

    void complete(Handler handler, HttpResult result)
    {
        asio::post(executor_, [handler = std::move(handler), result = std::move(result)]() mutable {
            handler(std::move(result));
        });
    }

    void fail_later(Handler handler, FailureClass failure, std::string error)
    {
        HttpResult result;
        result.failure = failure;
        result.error = std::move(error);
        complete(std::move(handler), std::move(result));
    }

    // add_connection, take_idle, forget and arm_sweep_locked need mutex_ held.

    std::shared_ptr<HttpConnection> add_connection(OriginPool& pool, const HttpTarget& target)
    {
        auto conn = std::make_shared<HttpConnection>(asio::make_strand(executor_),
                                                      target.tls ? &tls_context_ : nullptr, target,
                                                      options_.response_header_limit + read_buffer_slack);
        pool.open.push_back(conn);
        return conn;
    }

    /// The most recently used idle connection of `pool` that has not expired; closes expired ones.
    std::shared_ptr<HttpConnection> take_idle(OriginPool& pool)
    {
        const auto now = std::chrono::steady_clock::now();
        while (!pool.idle.empty()) {
            std::shared_ptr<HttpConnection> conn = std::move(pool.idle.back());
            pool.idle.pop_back();
            if (now - conn->idle_since < options_.idle_timeout)
                return conn;
            forget(pool, conn);
            post_close(std::move(conn));
        }
        return nullptr;
    }

    static void forget(OriginPool& pool, const std::shared_ptr<HttpConnection>& conn)
    {
        auto it = std::find(pool.open.begin(), pool.open.end(), conn);
        if (it != pool.open.end()) {
            *it = std::move(pool.open.back());
            pool.open.pop_back();
        }
    }

    static void post_close(std::shared_ptr<HttpConnection> conn)
    {
        auto strand = conn->strand();
        asio::post(strand, [conn = std::move(conn)] { conn->close(); });
    }

    /// Returns a connection whose exchange ended: to the next waiting request, to the idle pool,
    /// or (when not `reusable`, already closed) frees its slot for the next waiting request.
    void release(std::shared_ptr<HttpConnection> conn, bool reusable, const std::string& pool_key)
    {
        std::unique_lock lock(mutex_);
        auto it = origins_.find(pool_key);
        if (it == origins_.end())
            return;
        OriginPool& pool = it->second;
        if (stopped_ && reusable) {
            conn->close();
            reusable = false;
        }
        if (!reusable)
            forget(pool, conn);
        if (stopped_) {
            if (pool.open.empty())
                origins_.erase(it);
            return;
        }
        if (!pool.waiting.empty()) {
            std::unique_ptr<Exchange> next = std::move(pool.waiting.front());
            pool.waiting.pop_front();
            if (!reusable)
                conn = add_connection(pool, next->target);
            lock.unlock();
            start(std::move(next), std::move(conn));
            return;
        }
        if (reusable) {
            conn->idle_since = std::chrono::steady_clock::now();
            pool.idle.push_back(std::move(conn));
            arm_sweep_locked();
        } else if (pool.open.empty()) {
            origins_.erase(it);
        }
    }

    void arm_sweep_locked()
    {
        if (sweep_armed_)
            return;
        sweep_armed_ = true;
        sweep_timer_.expires_after(options_.idle_timeout);
        sweep_timer_.async_wait([weak = weak_from_this()](error_code ec) {
            if (auto self = weak.lock())
                self->sweep(ec);
        });
    }

    /// Closes the idle connections that have been idle for `idle_timeout`.
    void sweep(error_code ec)
    {
        std::lock_guard lock(mutex_);
        sweep_armed_ = false;
        if (ec || stopped_)
            return;
        const auto now = std::chrono::steady_clock::now();
        bool any_idle = false;
        for (auto it = origins_.begin(); it != origins_.end();) {
            OriginPool& pool = it->second;
            auto fresh = std::find_if(pool.idle.begin(), pool.idle.end(), [&](const auto& conn) {
                return now - conn->idle_since < options_.idle_timeout;
            });
            for (auto expired = pool.idle.begin(); expired != fresh; ++expired) {
                forget(pool, *expired);
                post_close(std::move(*expired));
            }
            pool.idle.erase(pool.idle.begin(), fresh);
            any_idle = any_idle || !pool.idle.empty();
            if (pool.open.empty() && pool.waiting.empty())
                it = origins_.erase(it);
            else
                ++it;
        }
        if (any_idle)
            arm_sweep_locked();
    }

    void shutdown()
    {
        std::vector<std::shared_ptr<HttpConnection>> to_close;
        std::vector<std::unique_ptr<Exchange>> to_fail;
        {
            std::lock_guard lock(mutex_);
            if (stopped_)
                return;
            stopped_ = true;
            sweep_timer_.cancel();
            for (auto it = origins_.begin(); it != origins_.end();) {
                OriginPool& pool = it->second;
                for (auto& conn : pool.idle)
                    forget(pool, conn);
                pool.idle.clear();
                to_close.insert(to_close.end(), pool.open.begin(), pool.open.end());
                for (auto& exchange : pool.waiting)
                    to_fail.push_back(std::move(exchange));
                pool.waiting.clear();
                it = pool.open.empty() ? origins_.erase(it) : std::next(it);
            }
        }
        for (auto& conn : to_close)
            post_close(std::move(conn));
        for (auto& exchange : to_fail)
            fail_later(std::move(exchange->handler), FailureClass::io, "shutdown");
    }

    std::size_t open_connections() const
    {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (const auto& [origin, pool] : origins_)
            n += pool.open.size();
        return n;
    }

    asio::any_io_executor executor_;
    HttpClientOptions options_;
    asio::ssl::context tls_context_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, OriginPool> origins_; ///< By origin and owner (`Exchange::pool_key`).
    std::uint64_t last_exchange_id_ = 0;
    asio::steady_timer sweep_timer_;
    bool sweep_armed_ = false;
    /// Written under `mutex_`; read without it by exchanges between their steps.
    std::atomic<bool> stopped_{false};
};

HttpClient::HttpClient(asio::any_io_executor executor, HttpClientOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options)))
{
}

HttpClient::~HttpClient()
{
    impl_->shutdown();
}

void HttpClient::async_send(HttpRequest request, Handler handler)
{
    impl_->send(std::move(request), std::move(handler));
}

void HttpClient::shutdown()
{
    impl_->shutdown();
}

std::size_t HttpClient::open_connections() const
{
    return impl_->open_connections();
}

} // namespace whisperer
