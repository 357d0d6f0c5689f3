// One connection of whisperer::http::Server, over plain TCP or TLS: reads requests one after
// another within the server's limits and deadlines, hands each to the handler and writes its
// response. Included by src/http/server.cpp only.
#ifndef WHISPERER_SRC_HTTP_DETAIL_SERVER_SESSION_HPP
#define WHISPERER_SRC_HTTP_DETAIL_SERVER_SESSION_HPP

#include "http_error.hpp"
#include "server_state.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <optional>
#include <type_traits>
#include <vector>

namespace whisperer::http::detail {

/// The stream of an HTTPS connection.
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

/// `Stream` is `boost::beast::tcp_stream` or `TlsStream`.
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
public:
    Session(std::shared_ptr<ServerState> server, Stream stream, ConnectionLimits::Ticket ticket, std::string peer)
        : server_(std::move(server)), stream_(std::move(stream)), ticket_(std::move(ticket)),
          buffer_(buffer_limit(server_->options)), peer_(std::move(peer))
    {
    }

    void start() override
    {
        boost::asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
            if constexpr (is_tls) {
                self->socket().expires_after(self->options().header_timeout);
                self->stream_.async_handshake(boost::asio::ssl::stream_base::server,
                                              [self](boost::beast::error_code ec) {
                                                  if (ec)
                                                      return self->close();
                                                  self->read_header(false);
                                              });
            } else {
                self->read_header(true);
            }
        });
    }

    void stop() override
    {
        boost::asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
            self->stopping_ = true;
            if (!self->busy_)
                self->close();
        });
    }

private:
    static constexpr bool is_tls = std::is_same_v<Stream, TlsStream>;
    using Parser = boost::beast::http::request_parser<boost::beast::http::string_body>;

    /// After an error answer the client may still be sending its body; closing at once would
    /// reset the connection and could destroy the answer before the client reads it, so the
    /// rest is read and discarded for a while first.
    static constexpr std::size_t drain_limit = 16 * 1024 * 1024;
    static constexpr std::chrono::seconds drain_time{5};

    /// What the connection buffers unparsed: a whole header, or a chunk header or trailer,
    /// plus what arrived behind it. Without a maximum, a chunk extension that never ends would
    /// be buffered for ever.
    static std::size_t buffer_limit(const ServerOptions& options) noexcept
    {
        return std::max<std::size_t>(options.header_limit, 4096) + 8192;
    }

    const ServerOptions& options() const noexcept { return server_->options; }
    boost::beast::tcp_stream& socket() noexcept { return boost::beast::get_lowest_layer(stream_); }

    /// Waits for the next request of a kept-alive connection (up to `idle_timeout`), then reads
    /// its header.
    void read_next()
    {
        if (stopping_)
            return close();
        busy_ = false;
        if (buffer_.size() > 0)
            return read_header(true);
        socket().expires_after(options().idle_timeout);
        stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](boost::beast::error_code ec,
                                                                                        std::size_t n) {
            if (ec)
                return self->close();
            self->buffer_.commit(n);
            self->read_header(true);
        });
    }

    /// Reads a request header within `header_timeout` from now, or from the deadline already set
    /// (a TLS handshake shares it) unless `new_deadline`.
    void read_header(bool new_deadline)
    {
        if (stopping_)
            return close();
        parser_.emplace();
        parser_->body_limit(options().body_limit);
        parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(options().header_limit, UINT32_MAX)));
        if (new_deadline)
            socket().expires_after(options().header_timeout);
        boost::beast::http::async_read_header(
            stream_, buffer_, *parser_, [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t size) {
                self->on_header(ec, size);
            });
    }

    void on_header(boost::beast::error_code ec, std::size_t size)
    {
        if (ec)
            return on_read_error(ec);
        busy_ = true;
        started_ = std::chrono::steady_clock::now();
        // Beast applies its limit to the request line and to the fields separately; the
        // option bounds them together.
        if (size > options().header_limit)
            return on_read_error(boost::beast::http::error::header_limit);
        const auto& header = parser_->get();
        if (static_cast<std::size_t>(std::distance(header.begin(), header.end())) > options().max_header_fields)
            return reject(status::request_header_fields_too_large, "too_many_header_fields",
                          "The request has more than " + std::to_string(options().max_header_fields) +
                              " header fields.");
        auto expect = header.find(boost::beast::http::field::expect);
        if (expect != header.end() && iequals(expect->value(), "100-continue")) {
            namespace bhttp = boost::beast::http;
            auto interim = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_,
                                                                                header.version());
            socket().expires_after(options().write_timeout);
            bhttp::async_write(stream_, *interim,
                               [self = this->shared_from_this(), interim](boost::beast::error_code e, std::size_t) {
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
        socket().expires_after(options().body_timeout);
        boost::beast::http::async_read(stream_, buffer_, *parser_,
                                       [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) {
                                           self->on_request(ec);
                                       });
    }

    void on_request(boost::beast::error_code ec)
    {
        if (ec)
            return on_read_error(ec);
        Request request = parser_->release();
        note_request(request);
        // The handler may wait on the network (a retry); only the write is timed.
        socket().expires_never();
        auto answered = std::make_shared<std::atomic<bool>>(false);
        auto complete = [self = this->shared_from_this(), answered](Response response) {
            if (answered->exchange(true))
                return;
            boost::asio::dispatch(self->stream_.get_executor(), [self, response = std::move(response)]() mutable {
                self->write(std::move(response), true);
            });
        };
        try {
            server_->handler(std::move(request), complete);
        } catch (...) {
            complete(error_response({11, false}, from_current_exception()));
        }
    }

    /// Sends `response`; then reads the next request when `reusable`, or closes.
    void write(Response response, bool reusable)
    {
        bool keep_alive = reusable && response.keep_alive() && !stopping_ && !server_->stopped;
        response.keep_alive(keep_alive);
        log(response);
        auto message = std::make_shared<Response>(std::move(response));
        socket().expires_after(options().write_timeout);
        boost::beast::http::async_write(
            stream_, *message,
            [self = this->shared_from_this(), message, keep_alive](boost::beast::error_code ec, std::size_t) {
                if (ec)
                    return self->close();
                if (keep_alive)
                    return self->read_next();
                self->finish();
            });
    }

    void on_read_error(boost::beast::error_code ec)
    {
        namespace bhttp = boost::beast::http;
        if (ec == bhttp::error::body_limit)
            return reject(status::payload_too_large, "payload_too_large",
                          "The request body exceeds " + std::to_string(options().body_limit) + " bytes.");
        const bool header_done = parser_ && parser_->is_header_done();
        if (ec == bhttp::error::header_limit || (ec == bhttp::error::buffer_overflow && !header_done))
            return reject(status::request_header_fields_too_large, "header_too_large",
                          "The request header exceeds " + std::to_string(options().header_limit) + " bytes.");
        if (ec == bhttp::error::buffer_overflow)
            return reject(status::bad_request, "bad_request",
                          "A chunk header or the trailer of the request body exceeds " +
                              std::to_string(options().header_limit) + " bytes.");
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
        if (parser_ && parser_->is_header_done()) {
            note_request(parser_->get());
        } else {
            method_ = "-";
            path_ = "-";
            started_ = std::chrono::steady_clock::now();
        }
        write(error_response({11, false}, HttpError(s, std::move(code), message)), false);
    }

    /// Ends a connection after its last response.
    void finish()
    {
        if constexpr (is_tls) {
            // close_notify, then the peer's (or anything else) within the drain time.
            socket().expires_after(std::min<std::chrono::milliseconds>(options().write_timeout, drain_time));
            stream_.async_shutdown([self = this->shared_from_this()](boost::beast::error_code) { self->close(); });
        } else {
            boost::beast::error_code ec;
            socket().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
            if (ec)
                return close();
            socket().expires_after(std::min<std::chrono::milliseconds>(options().body_timeout, drain_time));
            drain();
        }
    }

    void drain()
    {
        scratch_.resize(16 * 1024);
        stream_.async_read_some(boost::asio::buffer(scratch_),
                                [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t n) {
                                    self->drained_ += n;
                                    if (ec || self->drained_ > drain_limit)
                                        return self->close();
                                    self->drain();
                                });
    }

    void close()
    {
        boost::beast::error_code ec;
        socket().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
        socket().socket().close(ec);
    }

    /// Keeps what the request log shows: the method and the path, never the query string
    /// (it may carry credentials).
    template <class Header>
    void note_request(const Header& header)
    {
        method_ = std::string(header.method_string());
        std::string_view target = header.target();
        path_ = std::string(target.substr(0, target.find('?')));
    }

    void log(const Response& response) const
    {
        if (!options().log)
            return;
        auto elapsed = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started_);
        char ms[32];
        std::snprintf(ms, sizeof ms, "%.1f", elapsed.count());
        server_->log(LogLevel::info, peer_ + " \"" + method_ + " " + path_ + "\" " +
                                         std::to_string(response.result_int()) + " " + ms + " ms");
    }

    static bool iequals(std::string_view a, std::string_view b) noexcept
    {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                   return std::tolower(static_cast<unsigned char>(x)) ==
                          std::tolower(static_cast<unsigned char>(y));
               });
    }

    std::shared_ptr<ServerState> server_;
    Stream stream_;
    ConnectionLimits::Ticket ticket_;
    boost::beast::flat_buffer buffer_;
    std::optional<Parser> parser_;
    std::vector<char> scratch_;
    std::size_t drained_ = 0;
    bool busy_ = false;
    bool stopping_ = false;
    std::string peer_;
    std::string method_;
    std::string path_;
    std::chrono::steady_clock::time_point started_{};
};

} // namespace whisperer::http::detail

#endif
