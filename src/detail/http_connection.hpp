#ifndef WHISPERER_SRC_DETAIL_HTTP_CONNECTION_HPP
#define WHISPERER_SRC_DETAIL_HTTP_CONNECTION_HPP

#include "detail/http_target.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace whisperer::detail {

/// One keep-alive connection to one origin, plain or TLS, with its resolver and deadline.
///
/// Not thread-safe: every member is used on `strand()` only (the pool hands a connection to
/// one exchange at a time and posts `close` to the strand).
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
public:
    using Strand = boost::asio::strand<boost::asio::any_io_executor>;
    using PlainStream = boost::beast::tcp_stream;
    using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

    /// `tls_context` is null for plain HTTP; otherwise it must outlive the connection. The read
    /// buffer never holds more than `read_limit` bytes: a read that would need more fails with
    /// `http::error::buffer_overflow`.
    HttpConnection(Strand strand, boost::asio::ssl::context* tls_context, const HttpTarget& target,
                   std::size_t read_limit)
        : strand_(std::move(strand)), tls_context_(tls_context), host_(target.host),
          resolver_(strand_), deadline_(strand_), buffer_(read_limit)
    {
        reopen();
    }

    const Strand& strand() const noexcept { return strand_; }
    bool is_tls() const noexcept { return tls_context_ != nullptr; }
    PlainStream& plain_stream() noexcept { return *plain_; }
    TlsStream& tls_stream() noexcept { return *tls_; }
    PlainStream& tcp() noexcept { return tls_ ? boost::beast::get_lowest_layer(*tls_) : *plain_; }
    boost::asio::ip::tcp::resolver& resolver() noexcept { return resolver_; }
    /// Bytes read past the last response; kept with the connection. Bounded (see the constructor).
    boost::beast::flat_buffer& buffer() noexcept { return buffer_; }

    /// Whether a TCP connection has been established since the last `reopen`.
    bool connected() const noexcept { return connected_; }
    void set_connected() noexcept { connected_ = true; }

    /// Replaces the streams with fresh ones, ready for a new TCP connection. A TLS session
    /// cannot be resumed on a new socket, so the TLS stream is rebuilt with SNI and host name
    /// verification for the origin's host.
    void reopen()
    {
        connected_ = false;
        exchanges = 0;
        buffer_.clear();
        if (!tls_context_) {
            plain_.emplace(strand_);
            return;
        }
        tls_.emplace(strand_, *tls_context_);
        tls_->set_verify_mode(boost::asio::ssl::verify_peer);
        tls_->set_verify_callback(boost::asio::ssl::host_name_verification(host_));
        boost::system::error_code ec;
        boost::asio::ip::make_address(host_, ec);
        if (ec) // SNI carries host names only, never IP literals (RFC 6066).
            SSL_set_tlsext_host_name(tls_->native_handle(), host_.c_str());
    }

    /// Cancels the lookup and closes the socket; pending operations fail with operation_aborted.
    void close() noexcept
    {
        resolver_.cancel();
        boost::system::error_code ignored;
        tcp().socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
        tcp().socket().close(ignored);
        connected_ = false;
    }

    /// Closes the connection when `after` elapses, unless `disarm` comes first.
    void arm_deadline(std::chrono::milliseconds after)
    {
        timed_out_ = false;
        const unsigned generation = ++deadline_generation_;
        deadline_.expires_after(after);
        deadline_.async_wait([weak = weak_from_this(), generation](boost::system::error_code ec) {
            auto self = weak.lock();
            // A newer arm or a disarm makes an expiry already queued meaningless.
            if (ec || !self || generation != self->deadline_generation_)
                return;
            self->timed_out_ = true;
            self->close();
        });
    }

    void disarm_deadline() noexcept
    {
        ++deadline_generation_;
        deadline_.cancel();
    }

    /// The last armed deadline expired (and closed the connection).
    bool timed_out() const noexcept { return timed_out_; }

    /// Responses completed on the current TCP connection.
    std::size_t exchanges = 0;
    /// When the connection was last put back into the idle pool.
    std::chrono::steady_clock::time_point idle_since{};

private:
    Strand strand_;
    boost::asio::ssl::context* tls_context_;
    std::string host_;
    boost::asio::ip::tcp::resolver resolver_;
    boost::asio::steady_timer deadline_;
    std::optional<PlainStream> plain_;
    std::optional<TlsStream> tls_;
    boost::beast::flat_buffer buffer_;
    unsigned deadline_generation_ = 0;
    bool timed_out_ = false;
    bool connected_ = false;
};

} // namespace whisperer::detail

#endif
