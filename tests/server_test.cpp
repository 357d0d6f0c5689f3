// whisperer::http::Server on 127.0.0.1 port 0, driven by raw TCP clients: keep-alive, limits,
// malformed input, timeouts and stopping.

#include "catch.hpp"
#include "server_fixture.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/http/server.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using bhttp::status;
using bhttp::verb;

using test::Client;
using test::EchoServer;
using test::Executor;

TEST_CASE("a connection is kept alive across requests until the client asks to close", "[server]")
{
    EchoServer s;
    Client client(s.endpoint());
    for (int i = 0; i < 3; ++i) {
        client.send(verb::get, "/r" + std::to_string(i));
        auto response = client.receive();
        CHECK(response.result() == status::ok);
        CHECK(response.body() == "/r" + std::to_string(i) + " 0");
        CHECK(response.keep_alive());
    }
    client.send(verb::post, "/last", "body", false);
    auto last = client.receive();
    CHECK(last.body() == "/last 4");
    CHECK_FALSE(last.keep_alive());
    CHECK(client.closed_by_server());
    CHECK(s.handled == 4);
}

TEST_CASE("pipelined requests are answered in order", "[server]")
{
    EchoServer s;
    Client client(s.endpoint());
    client.send_raw("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(client.receive().body() == "/a 0");
    CHECK(client.receive().body() == "/b 0");
}

TEST_CASE("an oversized body is answered 413 and the server keeps serving", "[server]")
{
    EchoServer s;
    REQUIRE(http::ServerOptions{}.body_limit == 1024 * 1024);
    {
        Client client(s.endpoint());
        client.send(verb::post, "/big", std::string(1024 * 1024 + 1, 'x'));
        auto response = client.receive();
        CHECK(response.result() == status::payload_too_large);
        CHECK(response[bhttp::field::content_type] == "application/json");
        CHECK(response.body().find("payload_too_large") != std::string::npos);
        CHECK_FALSE(response.keep_alive());
        CHECK(client.closed_by_server());
    }
    {
        Client chunked(s.endpoint());
        std::string chunk(64 * 1024, 'y');
        std::string request = "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
        for (int i = 0; i < 20; ++i)
            request += size + chunk + "\r\n";
        request += "0\r\n\r\n";
        chunked.send_raw(request);
        CHECK(chunked.receive().result() == status::payload_too_large);
    }
    Client next(s.endpoint());
    next.send(verb::post, "/fits", std::string(1024 * 1024, 'x'));
    auto fits = next.receive();
    CHECK(fits.result() == status::ok);
    CHECK(fits.body() == "/fits 1048576");
    CHECK(s.handled == 1);
}

TEST_CASE("an oversized header is answered 431", "[server]")
{
    http::ServerOptions options;
    options.header_limit = 1024;
    EchoServer s(options);
    Client client(s.endpoint());
    client.send_raw("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'h') + "\r\n\r\n");
    CHECK(client.receive().result() == status::request_header_fields_too_large);
    Client next(s.endpoint());
    next.send(verb::get, "/after");
    CHECK(next.receive().result() == status::ok);
}

TEST_CASE("a header of exactly header_limit bytes is served; one byte more is answered 431", "[server][limits]")
{
    EchoServer s;
    const std::size_t limit = http::ServerOptions{}.header_limit;
    REQUIRE(limit == 16 * 1024);
    // The request line, the fields and the empty line that ends them, padded to `size` bytes.
    auto header_of = [](std::size_t size) {
        const std::string head = "GET /fits HTTP/1.1\r\nHost: x\r\nX-Pad: ";
        const std::string tail = "\r\n\r\n";
        return head + std::string(size - head.size() - tail.size(), 'p') + tail;
    };
    REQUIRE(header_of(limit).size() == limit);

    Client fits(s.endpoint());
    fits.send_raw(header_of(limit));
    CHECK(fits.receive().result() == status::ok);

    Client over(s.endpoint());
    over.send_raw(header_of(limit + 1));
    auto response = over.receive();
    CHECK(response.result() == status::request_header_fields_too_large);
    CHECK(response[bhttp::field::content_type] == "application/json");
    CHECK(response.body().find("header_too_large") != std::string::npos);
    CHECK(s.handled == 1);
}

TEST_CASE("a request with max_header_fields fields is served; one field more is answered 431", "[server][limits]")
{
    EchoServer s;
    const std::size_t limit = http::ServerOptions{}.max_header_fields;
    REQUIRE(limit == 100);
    auto request_with = [](std::size_t fields) {
        std::string request = "GET /fields HTTP/1.1\r\nHost: x\r\n";
        for (std::size_t i = 1; i < fields; ++i)
            request += "X-F" + std::to_string(i) + ": v\r\n";
        return request + "\r\n";
    };

    Client fits(s.endpoint());
    fits.send_raw(request_with(limit));
    CHECK(fits.receive().result() == status::ok);

    Client over(s.endpoint());
    over.send_raw(request_with(limit + 1));
    auto response = over.receive();
    CHECK(response.result() == status::request_header_fields_too_large);
    CHECK(response[bhttp::field::content_type] == "application/json");
    CHECK(response.body().find("too_many_header_fields") != std::string::npos);
    CHECK(response.body().find("100") != std::string::npos);
    CHECK_FALSE(response.keep_alive());
    CHECK(s.handled == 1);

    http::ServerOptions few;
    few.max_header_fields = 3;
    EchoServer strict(few);
    Client three(strict.endpoint());
    three.send_raw(request_with(3));
    CHECK(three.receive().result() == status::ok);
    Client four(strict.endpoint());
    four.send_raw(request_with(4));
    CHECK(four.receive().result() == status::request_header_fields_too_large);
}

TEST_CASE("malformed requests are answered 400 or dropped, and the server keeps serving", "[server]")
{
    EchoServer s;
    const std::vector<std::string> garbage = {
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        "GET / HTTP/9.9\r\n\r\n",
        "GET /\r\n\r\n",
        "G\x01T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        std::string("GET / HTTP/1.1\r\nHost: \0\r\n\r\n", 27),
        "\r\n\r\n\r\n",
    };
    for (const std::string& bytes : garbage) {
        INFO(bytes);
        Client client(s.endpoint());
        client.send_raw(bytes);
        http::Response response;
        boost::system::error_code ec;
        bhttp::read(client.socket, client.buffer, response, ec);
        if (!ec) {
            CHECK(response.result() == status::bad_request);
            CHECK_FALSE(response.keep_alive());
        }
    }
    // A client that sends half a request and leaves.
    {
        Client client(s.endpoint());
        client.send_raw("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part");
    }
    Client client(s.endpoint());
    client.send(verb::get, "/still-serving");
    CHECK(client.receive().body() == "/still-serving 0");
    CHECK(s.handled == 1);
}

TEST_CASE("a handler that throws is answered 500 and the connection stays usable", "[server]")
{
    EchoServer s;
    Client client(s.endpoint());
    client.send(verb::get, "/throw");
    auto failed = client.receive();
    CHECK(failed.result() == status::internal_server_error);
    CHECK(failed.body().find("internal_error") != std::string::npos);
}

TEST_CASE("Expect: 100-continue gets the interim response before the body is sent", "[server]")
{
    EchoServer s;
    Client client(s.endpoint());
    client.send_raw("POST /expect HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    bhttp::response_parser<bhttp::empty_body> parser;
    bhttp::read_header(client.socket, client.buffer, parser);
    CHECK(parser.get().result() == status::continue_);
    client.send_raw("hello");
    auto response = client.receive();
    CHECK(response.body() == "/expect 5");
}

TEST_CASE("a client that sends no complete header within the header timeout is disconnected", "[server]")
{
    http::ServerOptions options;
    options.header_timeout = 200ms;
    EchoServer s(options);
    Client idle(s.endpoint());
    CHECK(idle.closed_by_server());
    Client slow(s.endpoint());
    slow.send_raw("GET /slow HTTP/1.1\r\n");
    CHECK(slow.closed_by_server());
    CHECK(s.handled == 0);
}

TEST_CASE("stop closes idle connections and refuses new ones", "[server]")
{
    EchoServer s;
    tcp::endpoint endpoint = s.endpoint();
    Client idle(endpoint);
    idle.send(verb::get, "/before");
    CHECK(idle.receive().result() == status::ok);
    s.server->stop();
    CHECK(idle.closed_by_server());
    asio::io_context io;
    tcp::socket socket(io);
    boost::system::error_code ec;
    for (int attempt = 0; attempt < 100 && !ec; ++attempt) {
        socket.close();
        socket.connect(endpoint, ec);
        if (!ec)
            std::this_thread::sleep_for(10ms); // The acceptor closes on the server's strand.
    }
    CHECK(ec);
}

TEST_CASE("a request in progress when the server stops still gets its response", "[server]")
{
    Executor executor;
    std::promise<std::function<void(http::Response)>> pending;
    http::Server server(executor.io.get_executor(),
                        [&](http::Request request, std::function<void(http::Response)> done) {
                            pending.set_value(std::move(done));
                        });
    server.listen({asio::ip::make_address("127.0.0.1"), 0});
    Client client(server.local_endpoint());
    client.send(verb::get, "/slow");
    auto done = pending.get_future().get();
    server.stop();
    http::Response response{status::ok, 11};
    response.body() = "late";
    response.prepare_payload();
    done(std::move(response));
    auto received = client.receive();
    CHECK(received.body() == "late");
    CHECK_FALSE(received.keep_alive());
}

TEST_CASE("a server mounts a HooksRouter and answers its JSON errors", "[server]")
{
    test::TempDir dir;
    SqliteStore store(dir.file("server.db"));
    Registry registry;
    registry.register_json_event("package-created");
    Executor executor;
    Dispatcher dispatcher(executor.io.get_executor(), registry, store);
    http::TokenAuthenticator authenticator(store);
    http::HooksRouter router(registry, store, dispatcher, authenticator);
    std::vector<std::string> lines;
    std::mutex mutex;
    http::ServerOptions options;
    options.log = [&](LogLevel, std::string_view line) {
        std::lock_guard lock(mutex);
        lines.emplace_back(line);
    };
    http::Server server(executor.io.get_executor(), router, options);
    server.listen({asio::ip::make_address("127.0.0.1"), 0});
    std::string token = issue_token(store, "alice");

    Client client(server.local_endpoint());
    client.send(verb::get, "/whisperer/hooks/");
    auto unauthenticated = client.receive();
    CHECK(unauthenticated.result() == status::unauthorized);
    CHECK(unauthenticated.keep_alive());
    client.send(verb::get, "/health");
    CHECK(client.receive().result() == status::not_found);

    http::Request request{verb::get, "/whisperer/hooks/registry/", 11};
    request.set(bhttp::field::authorization, "Token " + token);
    bhttp::write(client.socket, request);
    auto registry_response = client.receive();
    CHECK(registry_response.result() == status::ok);
    CHECK(registry_response.body() == R"({"event_types":["package-created"]})");
    server.stop();

    std::lock_guard lock(mutex);
    REQUIRE(lines.size() == 3);
    CHECK(lines[0].find("\"GET /whisperer/hooks/\" 401") != std::string::npos);
    CHECK(lines[1].find("\"GET /health\" 404") != std::string::npos);
}
