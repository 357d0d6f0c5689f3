// The receiver answers on its own thread: one coroutine accepts, one coroutine per connection
// reads requests and carries out the handler's Reply. Stopping the io_context and destroying it
// destroys every suspended coroutine, which closes every connection, stalled ones included.
//
// Framing of `Reply::Action::respond` and `trickle`: Content-Length, unless the reply's headers
// ask for `Transfer-Encoding: chunked` (sent chunked) or `Connection: close` (sent without a
// length and delimited by closing the connection).
#include "receiver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

namespace whisperer::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

std::string ReceivedRequest::header(const std::string& name) const
{
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
}

namespace {

std::string lowercase(std::string_view s)
{
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
    return out;
}

ReceivedRequest to_received(const http::request<http::string_body>& message)
{
    ReceivedRequest r;
    r.method = std::string(message.method_string());
    r.target = std::string(message.target());
    for (const auto& field : message) {
        auto [it, inserted] = r.headers.emplace(lowercase(field.name_string()), std::string(field.value()));
        if (!inserted)
            it->second += ", " + std::string(field.value());
    }
    r.body = message.body();
    r.at = std::chrono::steady_clock::now();
    return r;
}

/// The response `reply` describes, and whether the connection closes after it.
std::pair<http::response<http::string_body>, bool> make_response(const Reply& reply, bool request_keep_alive)
{
    http::response<http::string_body> response;
    response.version(11);
    response.result(static_cast<unsigned>(reply.status));
    bool chunked = false;
    bool close_delimited = false;
    for (const auto& [name, value] : reply.headers) {
        if (beast::iequals(name, "transfer-encoding") && beast::iequals(value, "chunked"))
            chunked = true;
        else if (beast::iequals(name, "connection") && beast::iequals(value, "close"))
            close_delimited = true;
        else
            response.insert(name, value);
    }
    response.body() = reply.body;
    if (chunked)
        response.chunked(true);
    else if (!close_delimited)
        response.prepare_payload();
    const bool keep_alive = request_keep_alive && !close_delimited;
    response.keep_alive(keep_alive);
    return {std::move(response), !keep_alive};
}

template <class Stream>
tcp::socket& socket_of(Stream& stream)
{
    return beast::get_lowest_layer(stream).socket();
}

} // namespace

struct Receiver::Impl {
    Impl(Handler h, const TlsFiles* tls) : handler(std::move(h))
    {
        if (tls) {
            tls_context.emplace(asio::ssl::context::tls_server);
            tls_context->use_certificate_chain_file(tls->certificate_chain);
            tls_context->use_private_key_file(tls->private_key, asio::ssl::context::pem);
        }
        const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen();
        port = acceptor.local_endpoint().port();
        asio::co_spawn(io, accept_loop(), asio::detached);
        thread = std::thread([this] { io.run(); });
    }

    ~Impl()
    {
        io.stop();
        thread.join();
    }

    asio::awaitable<void> accept_loop()
    {
        for (;;) {
            error_code ec;
            tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                co_return;
            if (ec)
                continue;
            {
                std::lock_guard lock(mutex);
                ++accepted;
            }
            asio::co_spawn(io, session(std::move(socket)), asio::detached);
        }
    }

    asio::awaitable<void> session(tcp::socket socket)
    {
        if (!tls_context) {
            beast::tcp_stream stream(std::move(socket));
            co_await serve(stream);
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls_context);
        error_code ec;
        co_await stream.async_handshake(asio::ssl::stream_base::server,
                                        asio::redirect_error(asio::use_awaitable, ec));
        if (!ec)
            co_await serve(stream);
    }

    template <class Stream>
    asio::awaitable<void> serve(Stream& stream)
    {
        error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(64 * 1024 * 1024);
            co_await http::async_read(stream, buffer, parser, token);
            if (ec)
                co_return;
            const bool keep_alive = parser.keep_alive();
            const Reply reply = answer(to_received(parser.get()));
            if (reply.delay.count() > 0 && reply.action == Reply::Action::respond)
                co_await wait(reply.delay);
            switch (reply.action) {
            case Reply::Action::respond: {
                auto [response, close_after] = make_response(reply, keep_alive);
                co_await http::async_write(stream, response, token);
                if (ec || close_after)
                    co_return close_gracefully(stream);
                break;
            }
            case Reply::Action::stall:
                co_await wait(std::chrono::hours(24));
                co_return;
            case Reply::Action::reset:
                socket_of(stream).set_option(tcp::socket::linger(true, 0), ec);
                socket_of(stream).close(ec);
                co_return;
            case Reply::Action::close:
                co_return close_gracefully(stream);
            case Reply::Action::garbage: {
                static constexpr std::string_view garbage = "SMTP ready, this is not HTTP at all\r\n\r\n";
                co_await asio::async_write(stream, asio::buffer(garbage), token);
                co_return close_gracefully(stream);
            }
            case Reply::Action::trickle: {
                auto [response, close_after] = make_response(reply, keep_alive);
                std::ostringstream serialized;
                serialized << response;
                const std::string bytes = serialized.str();
                for (char byte : bytes) {
                    co_await wait(reply.delay);
                    co_await asio::async_write(stream, asio::buffer(&byte, 1), token);
                    if (ec)
                        co_return;
                }
                if (close_after)
                    co_return close_gracefully(stream);
                break;
            }
            }
        }
    }

    /// Records `request` and asks the current handler what to do.
    Reply answer(ReceivedRequest request)
    {
        Handler current;
        {
            std::lock_guard lock(mutex);
            current = handler;
            requests.push_back(request);
        }
        arrived.notify_all();
        return current ? current(request) : Reply{};
    }

    asio::awaitable<void> wait(std::chrono::steady_clock::duration d)
    {
        asio::steady_timer timer(io, d);
        error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }

    /// Sends FIN (no TLS close_notify, like a server that just drops the connection) and closes.
    template <class Stream>
    void close_gracefully(Stream& stream)
    {
        error_code ec;
        socket_of(stream).shutdown(tcp::socket::shutdown_send, ec);
        socket_of(stream).close(ec);
    }

    // Destroyed in reverse order: the io_context (and with it every connection) before the TLS
    // context and the records its coroutines use.
    mutable std::mutex mutex;
    mutable std::condition_variable arrived;
    Handler handler;
    std::vector<ReceivedRequest> requests;
    std::size_t accepted = 0;
    std::optional<asio::ssl::context> tls_context;
    asio::io_context io{1};
    tcp::acceptor acceptor{io};
    unsigned short port = 0;
    std::thread thread;
};

Receiver::Receiver(Handler handler, const TlsFiles* tls) : impl_(std::make_unique<Impl>(std::move(handler), tls)) {}

Receiver::~Receiver() = default;

unsigned short Receiver::port() const noexcept
{
    return impl_->port;
}

std::string Receiver::url(const std::string& path, const std::string& host) const
{
    return (impl_->tls_context ? "https://" : "http://") + host + ":" + std::to_string(impl_->port) + path;
}

std::vector<ReceivedRequest> Receiver::requests() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->requests;
}

std::size_t Receiver::count() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->requests.size();
}

bool Receiver::wait_for(std::size_t n, std::chrono::milliseconds timeout) const
{
    std::unique_lock lock(impl_->mutex);
    return impl_->arrived.wait_for(lock, timeout, [&] { return impl_->requests.size() >= n; });
}

std::size_t Receiver::connections_accepted() const
{
    std::lock_guard lock(impl_->mutex);
    return impl_->accepted;
}

void Receiver::set_handler(Handler handler)
{
    std::lock_guard lock(impl_->mutex);
    impl_->handler = std::move(handler);
}

} // namespace whisperer::test
