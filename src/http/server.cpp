#include <whisperer/http/hooks_router.hpp>
#include <whisperer/http/server.hpp>

#include "detail/http_error.hpp"
#include "detail/server_session.hpp"
#include "detail/server_state.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>
#include <cerrno>

namespace whisperer::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

namespace detail {

namespace {

constexpr std::chrono::milliseconds first_accept_delay{50};
constexpr std::chrono::milliseconds last_accept_delay{500};

/// Accept failures that concern one connection only (the next accept may well succeed).
bool concerns_one_connection(const boost::system::error_code& ec) noexcept
{
    if (ec == asio::error::connection_aborted || ec == asio::error::would_block || ec == asio::error::try_again ||
        ec == asio::error::interrupted)
        return true;
    if (ec.category() != boost::system::system_category())
        return false;
    switch (ec.value()) {
    // accept(2) passes on errors already pending on the new socket.
    case EPROTO: case ENOPROTOOPT: case EHOSTDOWN: case ENONET: case EHOSTUNREACH: case EOPNOTSUPP:
    case ENETUNREACH: case ENETDOWN: case EPERM:
        return true;
    default:
        return false;
    }
}

} // namespace

std::string LogThrottle::pass(const std::string& line, std::chrono::steady_clock::time_point now)
{
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < period_) {
        ++left_out_;
        return {};
    }
    last_ = now;
    std::string out = line;
    if (left_out_ > 0)
        out += " (" + std::to_string(left_out_) + " more like it not logged)";
    left_out_ = 0;
    return out;
}

ServerState::ServerState(asio::any_io_executor ex, Server::Handler h, ServerOptions opts)
    : executor(ex), handler(std::move(h)), options(std::move(opts)),
      limits(std::make_shared<ConnectionLimits>(options.max_connections, options.max_connections_per_client)),
      strand(asio::make_strand(ex)), acceptor(strand), accept_timer_(strand), accept_delay_(first_accept_delay),
      accept_failures_(std::chrono::seconds(1)), refusals_(std::chrono::seconds(1))
{
}

void ServerState::log(LogLevel level, const std::string& line) const
{
    if (options.log && !line.empty()) {
        try {
            options.log(level, line);
        } catch (...) {
        }
    }
}

void ServerState::accept()
{
    acceptor.async_accept(asio::make_strand(executor),
                          asio::bind_executor(strand, [self = shared_from_this()](boost::system::error_code ec,
                                                                                  tcp::socket socket) {
                              self->on_accept(ec, std::move(socket));
                          }));
}

void ServerState::on_accept(boost::system::error_code ec, tcp::socket socket)
{
    if (stopped || !acceptor.is_open())
        return;
    if (ec && !concerns_one_connection(ec))
        return pause_accepting(ec);
    if (!ec) {
        accept_delay_ = first_accept_delay;
        admit(std::move(socket));
    }
    accept();
}

void ServerState::pause_accepting(boost::system::error_code ec)
{
    log(LogLevel::warning, accept_failures_.pass("accept failed: " + ec.message() + "; accepting again in " +
                                                 std::to_string(accept_delay_.count()) + " ms"));
    accept_timer_.expires_after(accept_delay_);
    accept_delay_ = std::min(accept_delay_ * 2, last_accept_delay);
    accept_timer_.async_wait([self = shared_from_this()](boost::system::error_code) {
        if (!self->stopped && self->acceptor.is_open())
            self->accept();
    });
}

void ServerState::admit(tcp::socket socket)
{
    boost::system::error_code ec;
    tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec)
        return;
    ConnectionLimits::Refusal refusal{};
    ConnectionLimits::Ticket ticket = limits->admit(peer.address(), refusal);
    if (!ticket) {
        return refuse(socket, refusal == ConnectionLimits::Refusal::total
                                  ? std::to_string(options.max_connections) + " connections are open (max_connections)"
                                  : std::to_string(options.max_connections_per_client) +
                                        " connections from this address are open (max_connections_per_client)");
    }
    std::string name = peer.address().to_string() + ":" + std::to_string(peer.port());
    std::shared_ptr<SessionBase> session;
    if (options.tls)
        session = std::make_shared<Session<TlsStream>>(shared_from_this(), TlsStream(std::move(socket), *options.tls),
                                                       std::move(ticket), std::move(name));
    else
        session = std::make_shared<Session<beast::tcp_stream>>(shared_from_this(), beast::tcp_stream(std::move(socket)),
                                                               std::move(ticket), std::move(name));
    {
        std::lock_guard lock(mutex_);
        std::erase_if(sessions_, [](const std::weak_ptr<SessionBase>& s) { return s.expired(); });
        sessions_.push_back(session);
    }
    session->start();
}

void ServerState::refuse(tcp::socket& socket, const std::string& why)
{
    boost::system::error_code ec;
    log(LogLevel::warning, refusals_.pass("connection from " + socket.remote_endpoint(ec).address().to_string() +
                                          " refused: " + why));
    // A plain-HTTP client learns why; the answer is written only if the socket takes it at once
    // (the accept loop never waits on a client). TLS clients just see the connection close.
    if (!options.tls) {
        Response response = error_response(
            {11, false}, HttpError(status::service_unavailable, "too_many_connections",
                                   "The server has too many open connections; try again later."));
        response.set(beast::http::field::retry_after, "1");
        socket.non_blocking(true, ec);
        if (!ec)
            beast::http::write(socket, response, ec);
    }
    socket.shutdown(tcp::socket::shutdown_both, ec);
    socket.close(ec);
}

void ServerState::stop()
{
    if (stopped.exchange(true))
        return;
    asio::dispatch(strand, [self = shared_from_this()] {
        boost::system::error_code ec;
        self->acceptor.close(ec);
        self->accept_timer_.cancel();
    });
    std::vector<std::weak_ptr<SessionBase>> open;
    {
        std::lock_guard lock(mutex_);
        open.swap(sessions_);
    }
    for (const auto& weak : open)
        if (auto session = weak.lock())
            session->stop();
}

} // namespace detail

struct Server::Impl : detail::ServerState {
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
