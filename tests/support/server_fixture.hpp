#pragma once
// whisperer::http::Server on 127.0.0.1 port 0 with a handler that echoes the request, and a
// blocking raw-TCP client, for the server's tests.

#include <whisperer/http/server.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace whisperer::test {

/// An io_context on two threads, stopped and joined on destruction.
struct Executor {
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;

    Executor()
    {
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }
    ~Executor()
    {
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }
};

/// A server whose handler answers 200 with the request's target, counting requests.
struct EchoServer {
    Executor executor;
    std::atomic<int> handled{0};
    std::optional<http::Server> server;

    explicit EchoServer(http::ServerOptions options = {})
    {
        server.emplace(
            executor.io.get_executor(),
            [this](http::Request request, std::function<void(http::Response)> done) {
                ++handled;
                if (request.target() == "/throw")
                    throw std::runtime_error("handler failure");
                http::Response response{boost::beast::http::status::ok, request.version()};
                response.keep_alive(request.keep_alive());
                response.body() = std::string(request.target()) + " " + std::to_string(request.body().size());
                response.prepare_payload();
                done(std::move(response));
            },
            options);
        server->listen({boost::asio::ip::make_address("127.0.0.1"), 0});
    }
    ~EchoServer() { server->stop(); }

    boost::asio::ip::tcp::endpoint endpoint() const { return server->local_endpoint(); }
};

/// A blocking HTTP client on its own socket; reads give up after 10 s so a test fails, not hangs.
struct Client {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket{io};
    boost::beast::flat_buffer buffer;

    /// Connects from `source` (another loopback address, e.g. "127.0.0.2") when given.
    explicit Client(const boost::asio::ip::tcp::endpoint& endpoint, const char* source = nullptr)
    {
        if (source) {
            socket.open(boost::asio::ip::tcp::v4());
            socket.bind({boost::asio::ip::make_address(source), 0});
        }
        socket.connect(endpoint);
        timeval timeout{10, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }

    void send_raw(std::string_view bytes)
    {
        boost::asio::write(socket, boost::asio::buffer(bytes.data(), bytes.size()));
    }

    void send(boost::beast::http::verb method, const std::string& target, std::string body = {},
              bool keep_alive = true)
    {
        http::Request request{method, target, 11};
        request.set(boost::beast::http::field::host, "localhost");
        request.keep_alive(keep_alive);
        request.body() = std::move(body);
        request.prepare_payload();
        boost::beast::http::write(socket, request);
    }

    http::Response receive()
    {
        http::Response response;
        boost::beast::http::read(socket, buffer, response);
        return response;
    }

    /// True when the server closed the connection (end of stream or reset) rather than sending.
    bool closed_by_server()
    {
        boost::system::error_code ec;
        char byte;
        std::size_t n = socket.read_some(boost::asio::buffer(&byte, 1), ec);
        return n == 0 && (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset);
    }
};

} // namespace whisperer::test
