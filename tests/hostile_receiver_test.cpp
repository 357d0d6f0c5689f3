// Receivers that answer with what no honest receiver sends: responses that never end, interim
// responses ahead of the real one, protocol switches. Each fails only its own request, with memory
// bounded, and leaves nothing on a pooled connection for the next request.

#include "api_fixture.hpp"
#include "catch.hpp"
#include "eventually.hpp"
#include "raw_receiver.hpp"
#include "receiver.hpp"

#include <whisperer/http_client.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

/// An io_context run by one background thread, joined on destruction.
class IoThread {
public:
    IoThread() : thread_([this] { io_.run(); }) {}
    ~IoThread()
    {
        work_.reset();
        thread_.join();
    }
    boost::asio::any_io_executor executor() { return io_.get_executor(); }

private:
    boost::asio::io_context io_;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
    std::thread thread_;
};

HttpRequest post(const std::string& url, std::string owner = "alice")
{
    HttpRequest r;
    r.url = url;
    r.body = "{}";
    r.owner = std::move(owner);
    return r;
}

HttpResult send(HttpClient& client, HttpRequest request)
{
    auto promise = std::make_shared<std::promise<HttpResult>>();
    auto future = promise->get_future();
    client.async_send(std::move(request), [promise](HttpResult r) { promise->set_value(std::move(r)); });
    if (future.wait_for(60s) != std::future_status::ready)
        FAIL("no result within 60 s");
    return future.get();
}

std::string ok(const std::string& body)
{
    return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

/// Answers the first request on any connection with `first` (raw bytes), every later request n
/// with 200 and the body "for request n".
RawReceiver::Serve first_answer(std::string first)
{
    auto requests = std::make_shared<std::atomic<int>>(0);
    return [requests, first = std::move(first)](RawReceiver::Connection& c) {
        while (!c.read_request().empty()) {
            const int n = ++*requests;
            c.write(n == 1 ? first : ok("for request " + std::to_string(n)));
        }
    };
}

/// A kB figure of /proc/self/status, or -1.
long status_kb(const std::string& key)
{
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind(key + ":", 0) == 0)
            return std::stol(line.substr(key.size() + 1));
    return -1;
}

/// Resets the peak resident size to the current one (Linux: "5" to clear_refs).
void reset_peak_rss()
{
    std::ofstream("/proc/self/clear_refs") << "5";
}

constexpr std::size_t flood_bytes = 128 * 1024 * 1024;

/// Writes `head`, then up to `flood_bytes` of 'a' in 64 KiB writes, as long as the peer reads.
void flood(RawReceiver::Connection& c, const std::string& head, std::atomic<std::size_t>& offered)
{
    if (c.read_request().empty() || !c.write(head))
        return;
    const std::string block(64 * 1024, 'a');
    for (std::size_t sent = 0; sent < flood_bytes; sent += block.size()) {
        offered += block.size();
        if (!c.write(block))
            return;
    }
}

} // namespace

TEST_CASE("a response that never ends its chunk header or headers fails with protocol and bounded memory",
          "[http_client][security]")
{
    const auto [what, head] = GENERATE(table<std::string, std::string>({
        {"a chunk extension", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;"},
        {"a header line", "HTTP/1.1 200 OK\r\nX-Endless: "},
    }));
    INFO(what << " of up to " << flood_bytes / (1024 * 1024) << " MiB");
    std::atomic<std::size_t> offered{0};
    RawReceiver receiver([&, head = head](RawReceiver::Connection& c) { flood(c, head, offered); });
    IoThread io;
    HttpClientOptions options;
    options.total_timeout = 30s; // The flood, not the clock, must end the request.
    HttpClient client(io.executor(), options);

    reset_peak_rss();
    const long before = status_kb("VmRSS");
    const HttpResult result = send(client, post(receiver.url()));
    const long peak = status_kb("VmHWM");
    INFO("RSS before " << before << " kB, peak " << peak << " kB; offered " << offered << " bytes; " << result.error);
    CHECK(result.failure == FailureClass::protocol);
    CHECK(result.status == 0);
    REQUIRE(before > 0);
    // The connection buffers at most the header limit plus 64 KiB; the rest is the process's noise.
    CHECK(peak - before < 16 * 1024);
}

TEST_CASE("interim responses are read past: each request gets its own final response", "[http_client]")
{
    RawReceiver receiver(first_answer("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                                      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 13\r\n\r\nfor request 1"));
    IoThread io;
    HttpClient client(io.executor());
    const HttpResult first = send(client, post(receiver.url()));
    CHECK(first.failure == FailureClass::none);
    CHECK(first.status == 500);
    CHECK(first.body == "for request 1");
    const HttpResult second = send(client, post(receiver.url()));
    CHECK(second.status == 200);
    CHECK(second.body == "for request 2");
    CHECK(receiver.connections_accepted() == 1); // The second request went over the same connection.
}

TEST_CASE("101 Switching Protocols fails the request with protocol and the connection is not reused",
          "[http_client]")
{
    RawReceiver receiver(first_answer("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                      "Connection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale"));
    IoThread io;
    HttpClient client(io.executor());
    const HttpResult switched = send(client, post(receiver.url()));
    CHECK(switched.failure == FailureClass::protocol);
    CHECK_THAT(switched.error, Catch::Matchers::Contains("101"));
    const HttpResult next = send(client, post(receiver.url()));
    CHECK(next.status == 200);
    CHECK(next.body == "for request 2");
    CHECK(receiver.connections_accepted() == 2);
}

TEST_CASE("requests of different owners never share a pooled connection", "[http_client][security]")
{
    Receiver receiver;
    IoThread io;
    HttpClient client(io.executor());
    CHECK(send(client, post(receiver.url(), "alice")).status == 200);
    CHECK(send(client, post(receiver.url(), "bob")).status == 200);
    CHECK(receiver.connections_accepted() == 2);
    CHECK(send(client, post(receiver.url(), "alice")).status == 200);
    CHECK(send(client, post(receiver.url(), "bob")).status == 200);
    CHECK(receiver.connections_accepted() == 2); // Each owner's connection was kept for that owner.
    CHECK(client.open_connections() == 2);
}

TEST_CASE("a request waiting in line behind a stalled pool times out within the request timeout",
          "[http_client][security]")
{
    Receiver stalled([](const ReceivedRequest&) { return Reply{.action = Reply::Action::stall}; });
    IoThread io;
    HttpClientOptions options;
    options.max_connections_per_origin = 1;
    options.total_timeout = 2s;
    HttpClient client(io.executor(), options);

    auto in_flight = std::make_shared<std::promise<HttpResult>>();
    auto in_flight_result = in_flight->get_future();
    client.async_send(post(stalled.url()), [in_flight](HttpResult r) { in_flight->set_value(std::move(r)); });
    REQUIRE(stalled.wait_for(1));
    // The pool's one connection is held (for 2 s): this one waits in line, and its time
    // (300 ms) runs meanwhile.
    HttpRequest second = post(stalled.url());
    second.timeout = 300ms;
    const HttpResult queued = send(client, std::move(second));
    CHECK(queued.failure == FailureClass::timeout);
    CHECK_THAT(queued.error, Catch::Matchers::Contains("waiting for a connection"));
    CHECK(stalled.count() == 1); // It never reached the receiver.
    REQUIRE(in_flight_result.wait_for(60s) == std::future_status::ready);
    CHECK(in_flight_result.get().failure == FailureClass::timeout);
}

TEST_CASE("an interim response does not shift the next delivery's response on a pooled connection",
          "[dispatcher][security]")
{
    // The receiver answers its first request with 100 Continue and then 500, its second with 200.
    RawReceiver receiver(first_answer("HTTP/1.1 100 Continue\r\n\r\n"
                                      "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 13\r\n\r\nfor request 1"));
    ApiFixture api;
    const std::int64_t hook = api.create_hook(api.alice, receiver.url("/hook"), 3600); // No retry meanwhile.
    api.dispatcher->start();

    auto delivery_of = [&](const std::string& uuid) {
        auto deliveries = api.store.deliveries_of_event(uuid);
        return deliveries.size() == 1 ? api.store.find_delivery(deliveries.front().id, true) : std::nullopt;
    };
    auto attempted = [&](const std::string& uuid) {
        auto delivery = delivery_of(uuid);
        return delivery && delivery->attempt_count == 1;
    };
    const std::string first = api.dispatcher->deliver_data(boost::json::object{{"n", 1}}, "package-created", {}).event_uuid;
    REQUIRE(eventually([&] { return attempted(first); }, 20s));
    const std::string second = api.dispatcher->deliver_data(boost::json::object{{"n", 2}}, "package-created", {}).event_uuid;
    REQUIRE(eventually([&] { return attempted(second); }, 20s));

    const Delivery one = *delivery_of(first);
    const Delivery two = *delivery_of(second);
    CHECK(one.hook_id == hook);
    REQUIRE(one.attempts.size() == 1);
    CHECK(one.attempts.front().response_status == 500);
    CHECK(one.attempts.front().response_body == "for request 1");
    CHECK(one.state == DeliveryState::pending); // A retry is due, an hour from now.
    CHECK(two.delivered());
    REQUIRE(two.attempts.size() == 1);
    CHECK(two.attempts.front().response_status == 200);
    CHECK(two.attempts.front().response_body == "for request 2");
    CHECK(receiver.connections_accepted() == 1); // Both went over the same pooled connection.
}
