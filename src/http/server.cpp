#include <whisperer/http/hooks_router.hpp>
#include <whisperer/http/server.hpp>

#include "detail/http_error.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <iterator>
#include <mutex>
#include <optional>
#include <vector>

namespace whisperer::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using detail::HttpError;
using detail::status;

namespace {

/// After an error answer the client may still be sending its body; closing at once would reset
/// the connection and could destroy the answer before the client reads it, so the rest is read
/// and discarded for a while first.
constexpr std::size_t drain_limit = 16 * 1024 * 1024;
constexpr std::chrono::seconds drain_time{5};

bool iequals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

class Session;

/// The listening side of a server, shared with its sessions so that both outlive each other safely.
struct ServerState : std::enable_shared_from_this<ServerState> {
    ServerState(asio::any_io_executor ex, Server::Handler h, ServerOptions opts)
        : executor(ex), handler(std::move(h)), options(std::move(opts)), strand(asio::make_strand(ex)),
          acceptor(strand)
    {
    }

    asio::any_io_executor executor;
    Server::Handler handler;
    ServerOptions options;
    asio::strand<asio::any_io_executor> strand;
    tcp::acceptor acceptor;
    tcp::endpoint bound;
    std::atomic<bool> stopped{false};
    std::mutex mutex; // Guards `sessions`.
    std::vector<std::weak_ptr<Session>> sessions;

    void log(LogLevel level, const std::string& line) const
    {
        if (options.log) {
            try {
                options.log(level, line);
            } catch (...) {
            }
        }
    }

    void accept();
    void stop();
};

/// One connection: reads requests one after another, hands each to the handler and writes its
/// response. Everything runs on the connection's strand.
class Session : public std::enable_shared_from_this<Session> {
public:
    Session(std::shared_ptr<ServerState> server, tcp::socket socket)
        : server_(std::move(server)), stream_(std::move(socket))
    {
        boost::system::error_code ec;
        auto peer = stream_.socket().remote_endpoint(ec);
        if (!ec)
            peer_ = peer.address().to_string() + ":" + std::to_string(peer.port());
    }

    void start()
    {
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read_header(); });
    }

    /// Closes the connection once no request is in progress (at once when idle).
    void stop()
    {
        asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
            self->stopping_ = true;
            if (!self->busy_)
                self->close();
        });
    }

private:
    const ServerOptions& options() const noexcept { return server_->options; }

    void read_header()
    {
        if (stopping_)
            return close();
        busy_ = false;
        parser_.emplace();
        parser_->body_limit(options().body_limit);
        parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options().header_limit, UINT32_MAX)));
        stream_.expires_after(options().read_timeout);
        bhttp::async_read_header(stream_, buffer_, *parser_,
                                 [self = shared_from_this()](beast::error_code ec, std::size_t size) {
                                     self->on_header(ec, size);
                                 });
    }

    void on_header(beast::error_code ec, std::size_t size)
    {
        if (ec)
            return on_read_error(ec);
        busy_ = true;
        started_ = std::chrono::steady_clock::now();
        // Beast applies its limit to the request line and to the fields separately; the
        // option bounds them together.
        if (size > options().header_limit)
            return on_read_error(bhttp::error::header_limit);
        const auto& header = parser_->get();
        if (static_cast<std::size_t>(std::distance(header.begin(), header.end())) > options().max_header_fields)
            return reject(status::request_header_fields_too_large, "too_many_header_fields",
                          "The request has more than " + std::to_string(options().max_header_fields) +
                              " header fields.");
        auto expect = parser_->get().find(bhttp::field::expect);
        if (expect != parser_->get().end() && iequals(expect->value(), "100-continue")) {
            auto interim = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                                parser_->get().version());
            bhttp::async_write(stream_, *interim, [self = shared_from_this(), interim](beast::error_code e, std::size_t) {
                if (e)
                    return self->close();
                self->read_body();
            });
            return;
        }
        read_body();
    }

    void read_body()
    {
        stream_.expires_after(options().read_timeout);
        bhttp::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_request(ec);
        });
    }

    void on_request(beast::error_code ec)
    {
        if (ec)
            return on_read_error(ec);
        Request request = parser_->release();
        method_ = std::string(request.method_string());
        target_ = std::string(request.target());
        // The handler may wait on the network (a retry); only the write is timed.
        stream_.expires_never();
        auto answered = std::make_shared<std::atomic<bool>>(false);
        auto complete = [self = shared_from_this(), answered](Response response) {
            if (answered->exchange(true))
                return;
            asio::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
                self->write(std::move(response), true);
            });
        };
        try {
            server_->handler(std::move(request), complete);
        } catch (...) {
            complete(detail::error_response({11, false}, detail::from_current_exception()));
        }
    }

    /// Sends `response`; then reads the next request when `reusable`, or closes.
    void write(Response response, bool reusable)
    {
        bool keep_alive = reusable && response.keep_alive() && !stopping_ && !server_->stopped;
        response.keep_alive(keep_alive);
        log(response);
        auto message = std::make_shared<Response>(std::move(response));
        stream_.expires_after(options().read_timeout);
        bhttp::async_write(stream_, *message, [self = shared_from_this(), message, keep_alive](beast::error_code ec,
                                                                                                std::size_t) {
            if (ec)
                return self->close();
            if (keep_alive)
                return self->read_header();
            self->drain_and_close();
        });
    }

    void on_read_error(beast::error_code ec)
    {
        if (ec == bhttp::error::body_limit)
            return reject(status::payload_too_large, "payload_too_large",
                          "The request body exceeds " + std::to_string(options().body_limit) + " bytes.");
        if (ec == bhttp::error::header_limit)
            return reject(status::request_header_fields_too_large, "header_too_large",
                          "The request header exceeds " + std::to_string(options().header_limit) + " bytes.");
        bool malformed = ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
                         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
        if (malformed)
            return reject(status::bad_request, "bad_request", "Malformed HTTP request: " + ec.message() + ".");
        close();
    }

    /// Answers a request that could not be read and closes the connection.
    void reject(status s, std::string code, const std::string& message)
    {
        busy_ = true;
        method_ = parser_ && parser_->is_header_done() ? std::string(parser_->get().method_string()) : "-";
        target_ = parser_ && parser_->is_header_done() ? std::string(parser_->get().target()) : "-";
        if (!parser_ || !parser_->is_header_done())
            started_ = std::chrono::steady_clock::now();
        write(detail::error_response({11, false}, HttpError(s, std::move(code), message)), false);
    }

    void drain_and_close()
    {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
        if (ec)
            return close();
        stream_.expires_after(std::min<std::chrono::milliseconds>(options().read_timeout, drain_time));
        drain();
    }

    void drain()
    {
        scratch_.resize(64 * 1024);
        stream_.async_read_some(asio::buffer(scratch_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
            self->drained_ += n;
            if (ec || self->drained_ > drain_limit)
                return self->close();
            self->drain();
        });
    }

    void close()
    {
        beast::error_code ec;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
        stream_.socket().close(ec);
    }

    void log(const Response& response) const
    {
        if (!options().log)
            return;
        auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_);
        char ms[32];
        std::snprintf(ms, sizeof ms, "%.1f", elapsed.count());
        server_->log(LogLevel::info, peer_ + " \"" + method_ + " " + target_ + "\" " +
                                         std::to_string(response.result_int()) + " " + ms + " ms");
    }

    std::shared_ptr<ServerState> server_;
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
    std::vector<char> scratch_;
    std::size_t drained_ = 0;
    bool busy_ = false;
    bool stopping_ = false;
    std::string peer_ = "-";
    std::string method_;
    std::string target_;
    std::chrono::steady_clock::time_point started_{};
};

void ServerState::accept()
{
    acceptor.async_accept(asio::make_strand(executor), [self = shared_from_this()](beast::error_code ec,
                                                                                     tcp::socket socket) {
        if (self->stopped || !self->acceptor.is_open())
            return;
        if (ec) {
            self->log(LogLevel::warning, "accept failed: " + ec.message());
        } else {
            auto session = std::make_shared<Session>(self, std::move(socket));
            {
                std::lock_guard lock(self->mutex);
                std::erase_if(self->sessions, [](const std::weak_ptr<Session>& s) { return s.expired(); });
                self->sessions.push_back(session);
            }
            session->start();
        }
        self->accept();
    });
}

void ServerState::stop()
{
    if (stopped.exchange(true))
        return;
    asio::dispatch(strand, [self = shared_from_this()] {
        beast::error_code ec;
        self->acceptor.close(ec);
    });
    std::vector<std::weak_ptr<Session>> open;
    {
        std::lock_guard lock(mutex);
        open.swap(sessions);
    }
    for (const auto& weak : open)
        if (auto session = weak.lock())
            session->stop();
}

} // namespace

struct Server::Impl : ServerState {
    using ServerState::ServerState;
};

Server::Server(asio::any_io_executor executor, HooksRouter& router, ServerOptions options)
    : Server(std::move(executor),
             Handler([&router](Request request, std::function<void(Response)> done) {
                 router.handle(std::move(request), std::move(done));
             }),
             std::move(options))
{
}

Server::Server(asio::any_io_executor executor, Handler handler, ServerOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(handler), std::move(options)))
{
}

Server::~Server()
{
    stop();
}

void Server::listen(const tcp::endpoint& endpoint)
{
    // Bound synchronously so that errors reach the caller and local_endpoint() is valid at once;
    // nothing else touches the acceptor before accept() starts.
    tcp::acceptor& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol());
    acceptor.set_option(asio::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
    impl_->bound = acceptor.local_endpoint();
    asio::dispatch(impl_->strand, [impl = impl_] { impl->accept(); });
}

tcp::endpoint Server::local_endpoint() const
{
    return impl_->bound;
}

void Server::stop()
{
    impl_->stop();
}

} // namespace whisperer::http
