// A host with its own Boost.Beast server: it serves its own route (GET /health) and mounts
// whisperer's hooks REST API under /whisperer/ beside it.
//
//   ./mount_router [PORT]      then, with the token it prints:
//   curl -H "Authorization: Token <token>" http://127.0.0.1:8080/whisperer/hooks/registry/

#include <whisperer/api_token.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <boost/asio/executor_work_guard.hpp>

#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <thread>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

/// The router's callback interface as an Asio operation, so a coroutine can `co_await` it. The
/// router may answer on another thread (publish and retry do); the handler runs on its own
/// executor either way.
template <class CompletionToken>
auto async_route(whisperer::http::HooksRouter& router, whisperer::http::Request request, CompletionToken&& token)
{
    return asio::async_initiate<CompletionToken, void(whisperer::http::Response)>(
        [&router](auto handler, whisperer::http::Request req) {
            auto executor = asio::get_associated_executor(handler);
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            router.handle(std::move(req), [shared, executor](whisperer::http::Response response) {
                asio::dispatch(executor, [shared, response = std::move(response)]() mutable {
                    (*shared)(std::move(response));
                });
            });
        },
        token, std::move(request));
}

/// The host's own answer for its own routes.
whisperer::http::Response host_route(const whisperer::http::Request& request)
{
    bool health = request.target() == "/health" && request.method() == bhttp::verb::get;
    whisperer::http::Response response{health ? bhttp::status::ok : bhttp::status::not_found, request.version()};
    response.set(bhttp::field::content_type, "text/plain");
    response.keep_alive(request.keep_alive());
    response.body() = health ? "ok\n" : "not found\n";
    response.prepare_payload();
    return response;
}

asio::awaitable<void> session(tcp::socket socket, whisperer::http::HooksRouter& router)
{
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    try {
        while (true) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.body_limit(1024 * 1024);
            stream.expires_after(30s);
            co_await bhttp::async_read(stream, buffer, parser, asio::use_awaitable);
            whisperer::http::Request request = parser.release();
            whisperer::http::Response response;
            if (router.matches(request.target()))
                response = co_await async_route(router, std::move(request), asio::use_awaitable);
            else
                response = host_route(request);
            stream.expires_after(30s);
            co_await bhttp::async_write(stream, response, asio::use_awaitable);
            if (!response.keep_alive())
                break;
        }
    } catch (const boost::system::system_error&) {
        // The client left, timed out or sent something unreadable: drop the connection.
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, whisperer::http::HooksRouter& router)
{
    while (true) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), session(std::move(socket), router), asio::detached);
    }
}

int main(int argc, char** argv)
{
    unsigned short port = argc > 1 ? static_cast<unsigned short>(std::atoi(argv[1])) : 8080;

    whisperer::Registry registry;
    registry.register_json_event("package-created");
    whisperer::SqliteStore store("mount_router.db");
    asio::io_context ioc;
    whisperer::Dispatcher dispatcher(ioc.get_executor(), registry, store);
    whisperer::http::TokenAuthenticator authenticator(store);
    whisperer::http::HooksRouter router(registry, store, dispatcher, authenticator);

    tcp::acceptor acceptor(ioc, {asio::ip::make_address("127.0.0.1"), port});
    asio::co_spawn(ioc, accept_loop(acceptor, router), asio::detached);
    std::cout << "Serving GET /health and the hooks API under /whisperer/ on http://127.0.0.1:"
              << acceptor.local_endpoint().port() << "\nAPI token (publisher): "
              << whisperer::issue_token(store, "demo", false, true) << "\nCtrl-C stops." << std::endl;

    std::promise<void> stop_requested;
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code, int) {
        acceptor.close();
        stop_requested.set_value();
    });
    auto work = asio::make_work_guard(ioc);
    std::thread runner([&] { ioc.run(); });
    dispatcher.start();
    stop_requested.get_future().wait();
    // The dispatcher's stop waits for deliveries in flight, so it runs off the context's thread.
    dispatcher.stop();
    work.reset();
    ioc.stop();
    runner.join();
}
