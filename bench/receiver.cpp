#include "receiver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace whisperer::bench {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

asio::awaitable<void> serve(tcp::socket socket, const Receiver::OnRequest& on_request)
{
    boost::system::error_code ec;
    auto token = asio::redirect_error(asio::use_awaitable, ec);
    beast::flat_buffer buffer;
    ReceivedRequest seen;
    for (;;) {
        http::request<http::string_body> request;
        co_await http::async_read(socket, buffer, request, token);
        if (ec)
            co_return;
        const auto arrived = std::chrono::steady_clock::now();
        if (on_request) {
            seen.method = request.method_string();
            seen.target = request.target();
            seen.headers.clear();
            for (const auto& field : request)
                seen.headers.emplace_back(field.name_string(), field.value());
            seen.body = std::move(request.body());
            on_request(seen, arrived);
        }
        http::response<http::empty_body> response{http::status::ok, 11};
        response.keep_alive(request.keep_alive());
        response.prepare_payload();
        co_await http::async_write(socket, response, token);
        if (ec || !response.keep_alive())
            co_return;
    }
}

} // namespace

Receiver::Receiver(Mode mode, OnRequest on_request)
    : mode_(mode), on_request_(std::move(on_request)),
      acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
{
    acceptor_.listen(asio::socket_base::max_listen_connections);
    accept();
    thread_ = std::thread([this] { io_.run(); });
}

Receiver::~Receiver()
{
    io_.stop();
    thread_.join();
}

std::string Receiver::url(std::string_view path) const
{
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + std::string(path);
}

void Receiver::accept()
{
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
        if (ec)
            return;
        if (mode_ == Mode::stall) {
            held_.push_back(std::move(socket));
        } else {
            socket.set_option(tcp::no_delay(true), ec);
            asio::co_spawn(io_, serve(std::move(socket), on_request_), asio::detached);
        }
        accept();
    });
}

} // namespace whisperer::bench
