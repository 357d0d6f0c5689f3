// What whisperer::http::Server lets one client hold before any handler runs: connections (in
// total and per address), time (idle, header, body) and buffered bytes of a chunked body; and
// what its request log shows.

#include "catch.hpp"
#include "eventually.hpp"
#include "server_fixture.hpp"

#include "http/detail/connection_limits.hpp"
#include "http/detail/server_state.hpp"

#include <whisperer/http/server.hpp>

#include <boost/beast/http/read.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace std::chrono_literals;
namespace bhttp = boost::beast::http;
using bhttp::status;
using bhttp::verb;
using test::Client;
using test::EchoServer;
using test::eventually;

namespace {

/// True when the server answers `client`'s next request (200) rather than refusing or closing.
bool served(Client& client, const std::string& target)
{
    client.send(verb::get, target);
    http::Response response;
    boost::system::error_code ec;
    bhttp::read(client.socket, client.buffer, response, ec);
    return !ec && response.result() == status::ok;
}

/// True once a new connection from `source` is served (a closed connection's place is given
/// back when the server has seen the close).
bool eventually_served(const EchoServer& s, const char* source)
{
    return eventually([&] {
        Client retry(s.endpoint(), source);
        return served(retry, "/after-close");
    });
}

/// The server's answer to a connection it refuses: 503 `too_many_connections`, then the close.
void check_refused(Client& client)
{
    http::Response response;
    boost::system::error_code ec;
    bhttp::read(client.socket, client.buffer, response, ec);
    if (!ec) {
        CHECK(response.result() == status::service_unavailable);
        CHECK(response.body().find("too_many_connections") != std::string::npos);
        CHECK(response[bhttp::field::retry_after] == "1");
        CHECK_FALSE(response.keep_alive());
    } else {
        // The answer is best effort; the close is not.
        CHECK((ec == bhttp::error::end_of_stream || ec == boost::asio::error::connection_reset ||
               ec == boost::asio::error::eof));
    }
    CHECK(client.closed_by_server());
}

} // namespace

TEST_CASE("connection limits count each address and give a place back when its ticket ends", "[server][limits]")
{
    using http::detail::ConnectionLimits;
    auto limits = std::make_shared<ConnectionLimits>(3, 2);
    const auto a = boost::asio::ip::make_address("192.0.2.1");
    const auto a_mapped = boost::asio::ip::make_address("::ffff:192.0.2.1");
    const auto b = boost::asio::ip::make_address("2001:db8::1");
    ConnectionLimits::Refusal refusal{};

    auto first = limits->admit(a, refusal);
    CHECK(first);
    auto second = limits->admit(a_mapped, refusal);
    CHECK(second);
    CHECK(refusal == ConnectionLimits::Refusal::none);
    // The same client, whether it reaches an IPv4 or an IPv6 socket.
    CHECK_FALSE(limits->admit(a, refusal));
    CHECK(refusal == ConnectionLimits::Refusal::client);
    auto third = limits->admit(b, refusal);
    CHECK(third);
    CHECK(limits->open() == 3);
    CHECK_FALSE(limits->admit(boost::asio::ip::make_address("192.0.2.2"), refusal));
    CHECK(refusal == ConnectionLimits::Refusal::total);

    { auto gone = std::move(first); }
    CHECK(limits->open() == 2);
    auto again = limits->admit(a, refusal);
    CHECK(again);
    second = ConnectionLimits::Ticket{};
    third = ConnectionLimits::Ticket{};
    again = ConnectionLimits::Ticket{};
    CHECK(limits->open() == 0);
}

TEST_CASE("a throttled log line passes once per period and counts the ones left out", "[server][limits]")
{
    http::detail::LogThrottle throttle(1s);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(throttle.pass("accept failed", t0) == "accept failed");
    CHECK(throttle.pass("accept failed", t0 + 100ms).empty());
    CHECK(throttle.pass("accept failed", t0 + 999ms).empty());
    CHECK(throttle.pass("accept failed", t0 + 1s) == "accept failed (2 more like it not logged)");
    CHECK(throttle.pass("accept failed", t0 + 2500ms) == "accept failed");
}

TEST_CASE("connections past the per-client limit are answered 503 and another address is still served",
          "[server][limits]")
{
    http::ServerOptions options;
    options.max_connections = 10;
    options.max_connections_per_client = 2;
    EchoServer s(options);
    std::vector<std::unique_ptr<Client>> held;
    for (int i = 0; i < 2; ++i) {
        held.push_back(std::make_unique<Client>(s.endpoint(), "127.0.0.2"));
        CHECK(served(*held.back(), "/held"));
    }
    Client third(s.endpoint(), "127.0.0.2");
    check_refused(third);

    Client other(s.endpoint(), "127.0.0.1");
    CHECK(served(other, "/other-address"));

    held.pop_back();
    CHECK(eventually_served(s, "127.0.0.2"));
}

TEST_CASE("connections past the total limit are answered 503 until one closes", "[server][limits]")
{
    http::ServerOptions options;
    options.max_connections = 2;
    EchoServer s(options);
    auto first = std::make_unique<Client>(s.endpoint(), "127.0.0.2");
    CHECK(served(*first, "/first"));
    Client second(s.endpoint(), "127.0.0.3");
    CHECK(served(second, "/second"));
    Client third(s.endpoint(), "127.0.0.4");
    check_refused(third);
    CHECK(s.handled == 2);

    first.reset();
    CHECK(eventually_served(s, "127.0.0.4"));
}

TEST_CASE("a kept-alive connection that sends no next request is closed after the idle timeout", "[server][limits]")
{
    http::ServerOptions options;
    options.idle_timeout = 200ms;
    options.header_timeout = 60s;
    EchoServer s(options);
    Client client(s.endpoint());
    CHECK(served(client, "/first"));
    CHECK(client.closed_by_server());
    CHECK(s.handled == 1);
}

TEST_CASE("a header still trickling in when the header timeout passes closes the connection", "[server][limits]")
{
    http::ServerOptions options;
    options.header_timeout = 300ms;
    options.idle_timeout = 60s;
    EchoServer s(options);
    Client client(s.endpoint());
    // One byte of header every 20 ms: the connection is never idle, the header never ends.
    std::atomic<bool> done{false};
    std::thread trickle([&] {
        client.send_raw("GET /slow HTTP/1.1\r\nHost: x\r\n");
        while (!done) {
            boost::system::error_code ec;
            boost::asio::write(client.socket, boost::asio::buffer("X", 1), ec);
            if (ec)
                return;
            std::this_thread::sleep_for(20ms);
        }
    });
    const bool closed = client.closed_by_server();
    done = true;
    trickle.join();
    CHECK(closed);
    CHECK(s.handled == 0);
}

TEST_CASE("a body that does not arrive within the body timeout closes the connection", "[server][limits]")
{
    http::ServerOptions options;
    options.body_timeout = 200ms;
    EchoServer s(options);
    Client client(s.endpoint());
    client.send_raw("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
    CHECK(client.closed_by_server());
    CHECK(s.handled == 0);
}

TEST_CASE("a chunk extension longer than the header limit is answered 400 and the connection closed",
          "[server][limits]")
{
    http::ServerOptions options;
    options.header_limit = 1024;
    EchoServer s(options);
    Client client(s.endpoint());
    // More than the server buffers for a chunk header, without the CRLF that would end it.
    client.send_raw("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" +
                    std::string(64 * 1024, 'a'));
    auto response = client.receive();
    CHECK(response.result() == status::bad_request);
    CHECK(response.body().find("chunk header") != std::string::npos);
    CHECK_FALSE(response.keep_alive());
    CHECK(client.closed_by_server());

    Client fits(s.endpoint());
    fits.send_raw("POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5;name=" + std::string(200, 'v') + "\r\nhello\r\n0\r\n\r\n");
    auto served_response = fits.receive();
    CHECK(served_response.result() == status::ok);
    CHECK(served_response.body() == "/chunked 5");
    CHECK(s.handled == 1);
}

TEST_CASE("the request log shows the method, the path and the status, never the query string", "[server]")
{
    std::mutex mutex;
    std::vector<std::string> lines;
    http::ServerOptions options;
    options.log = [&](LogLevel, std::string_view line) {
        std::lock_guard lock(mutex);
        lines.emplace_back(line);
    };
    EchoServer s(options);
    Client client(s.endpoint());
    CHECK(served(client, "/hooks/?token=query-secret&x=1"));
    client.send_raw("GET /bad?token=query-secret HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    http::Response rejected;
    boost::system::error_code ec;
    bhttp::read(client.socket, client.buffer, rejected, ec);
    s.server->stop();

    std::lock_guard lock(mutex);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].find("\"GET /hooks/\" 200 ") != std::string::npos);
    CHECK(lines[1].find(" 400 ") != std::string::npos);
    for (const std::string& line : lines)
        CHECK(line.find("query-secret") == std::string::npos);
}
