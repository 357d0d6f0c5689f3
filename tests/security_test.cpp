// The security defences end to end: the SSRF guard (on by default in the dispatcher, applied to
// IP-literal hooks by the router and to resolved names at delivery, against a real receiver on
// 127.0.0.1), and the secret generated for a hook created without one.

#include "catch.hpp"
#include "receiver.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json.hpp>

#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace bhttp = boost::beast::http;

namespace {

template <class Condition>
bool within_ten_seconds(Condition condition)
{
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until)
            return false;
        std::this_thread::sleep_for(10ms);
    }
    return true;
}

/// A store, a registry, an io_context on two threads and a dispatcher with `options`.
struct Fixture {
    test::TempDir dir;
    SqliteStore store{dir.file("guard.db")};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::optional<Dispatcher> dispatcher;
    std::vector<std::thread> threads;

    explicit Fixture(DispatcherOptions options = {})
    {
        registry.register_json_event("package-created");
        options.idle_poll = 200ms;
        dispatcher.emplace(io.get_executor(), registry, store, std::move(options));
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }

    ~Fixture()
    {
        dispatcher->stop();
        work.reset();
        for (auto& t : threads)
            t.join();
    }

    /// Stores a hook without validation, as a host that writes its store directly may.
    void hook(const std::string& url)
    {
        Hook h;
        h.owner = "alice";
        h.target_url = url;
        h.event_type = "package-created";
        h.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 3600}}}};
        store.create_hook(h);
    }

    /// Delivers one event and returns its delivery once the first attempt is recorded.
    Delivery first_attempt()
    {
        dispatcher->start();
        const auto result = dispatcher->deliver_event(json::object{{"id", 1}}, "package-created");
        REQUIRE(result.hook_count == 1);
        std::optional<Delivery> delivery;
        REQUIRE(within_ten_seconds([&] {
            auto deliveries = store.deliveries_of_event(result.event_uuid);
            if (deliveries.size() != 1)
                return false;
            delivery = store.find_delivery(deliveries.front().id, true);
            return delivery && !delivery->attempts.empty();
        }));
        return *delivery;
    }
};

const std::string countdown =
    R"("retry_countdown_config": {"choice": "linear", "kwargs": {"base": 60, "limit": 600}}})";

DispatcherOptions loopback_allowed()
{
    DispatcherOptions options;
    options.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).allow(Cidr::parse("::1")).as_filter();
    return options;
}

} // namespace

TEST_CASE("by default a host name that resolves to loopback is refused at delivery as blocked", "[security]")
{
    test::Receiver receiver;
    Fixture f;
    f.hook(receiver.url("/", "localhost"));
    const Delivery d = f.first_attempt();
    REQUIRE(d.attempts.size() == 1);
    CHECK(d.attempts.front().failure == FailureClass::blocked);
    CHECK(d.attempts.front().error.find("refused by the address filter") != std::string::npos);
    CHECK(d.last_failure == FailureClass::blocked);
    CHECK(receiver.count() == 0);
}

TEST_CASE("by default an IP literal in hex form that means loopback is refused at delivery", "[security]")
{
    test::Receiver receiver;
    Fixture f;
    f.hook(receiver.url("/", "0x7f.1"));
    const Delivery d = f.first_attempt();
    REQUIRE(d.attempts.size() == 1);
    CHECK(d.attempts.front().failure == FailureClass::blocked);
    CHECK(receiver.count() == 0);
}

TEST_CASE("an allow-list that opens loopback lets the same deliveries through", "[security]")
{
    for (const char* host : {"localhost", "0x7f.1", "2130706433", "127.1"}) {
        INFO(host);
        test::Receiver receiver;
        Fixture f(loopback_allowed());
        f.hook(receiver.url("/", host));
        const Delivery d = f.first_attempt();
        REQUIRE(d.attempts.size() == 1);
        CHECK(d.attempts.front().failure == FailureClass::none);
        CHECK(d.response_status == 200);
        CHECK(receiver.count() == 1);
    }
}

TEST_CASE("a URL whose IPv4 host Boost.URL would cut short is never delivered", "[security]")
{
    // Boost.URL reads "127.0.0.1.evil.example" as host 127.0.0.1 and path ".evil.example/".
    test::Receiver receiver;
    Fixture f(loopback_allowed());
    const std::string port = receiver.url().substr(receiver.url().rfind(':'));
    f.hook("http://127.0.0.1.evil.example" + port);
    const Delivery d = f.first_attempt();
    REQUIRE(d.attempts.size() == 1);
    CHECK(d.attempts.front().failure != FailureClass::none);
    CHECK(d.attempts.front().error.find("invalid URL") != std::string::npos);
    CHECK(receiver.count() == 0);
}

TEST_CASE("the router refuses hooks whose URL is a blocked IP literal, in any form, with 400", "[security]")
{
    Fixture f;
    http::TokenAuthenticator authenticator(f.store);
    http::HooksRouter router(f.registry, f.store, *f.dispatcher, authenticator);
    const std::string token = issue_token(f.store, "alice");
    const auto create = [&](const std::string& url) {
        http::Request request{bhttp::verb::post, "/whisperer/hooks/", 11};
        request.set(bhttp::field::authorization, "Token " + token);
        request.set(bhttp::field::content_type, "application/json");
        request.body() = "{\"event_type\": \"package-created\", \"target_url\": " +
                         json::serialize(json::value(url)) + ", " + countdown;
        request.prepare_payload();
        return router.handle(std::move(request));
    };
    for (const char* url : {"http://127.0.0.1:8080/", "http://2130706433/", "http://0177.0.0.1/", "http://0x7f.1/",
                            "http://[::1]/", "http://[::ffff:169.254.169.254]/", "http://10.0.0.1/",
                            "http://1.2.3.256/"}) {
        INFO(url);
        const http::Response response = create(url);
        INFO(response.body());
        CHECK(response.result() == bhttp::status::bad_request);
        CHECK(json::parse(response.body()).at("field") == "target_url");
    }
    CHECK(f.store.list_hooks({}).items.empty());
    for (const char* url : {"https://example.com/hooks", "http://localhost:8080/", "http://8.8.8.8/"}) {
        INFO(url);
        CHECK(create(url).result() == bhttp::status::created);
    }
}

TEST_CASE("the router accepts an IP literal that the dispatcher's allow-list opens", "[security]")
{
    Fixture f(loopback_allowed());
    http::TokenAuthenticator authenticator(f.store);
    http::HooksRouter router(f.registry, f.store, *f.dispatcher, authenticator);
    http::Request request{bhttp::verb::post, "/whisperer/hooks/", 11};
    request.set(bhttp::field::authorization, "Token " + issue_token(f.store, "alice"));
    request.set(bhttp::field::content_type, "application/json");
    request.body() = R"({"event_type": "package-created", "target_url": "http://127.0.0.1:9/", )"
                     R"("retry_countdown_config": {"choice": "linear", "kwargs": {"base": 60, "limit": 600}}})";
    request.prepare_payload();
    CHECK(router.handle(std::move(request)).result() == bhttp::status::created);
}

TEST_CASE("a hook created without a secret gets a generated one, shown in clear only at creation", "[security]")
{
    Fixture f;
    http::TokenAuthenticator authenticator(f.store);
    http::HooksRouter router(f.registry, f.store, *f.dispatcher, authenticator);
    const std::string token = issue_token(f.store, "alice");
    const auto call = [&](bhttp::verb method, const std::string& target, const std::string& body = {}) {
        http::Request request{method, target, 11};
        request.set(bhttp::field::authorization, "Token " + token);
        if (!body.empty()) {
            request.set(bhttp::field::content_type, "application/json");
            request.body() = body;
        }
        request.prepare_payload();
        return router.handle(std::move(request));
    };

    const http::Response created =
        call(bhttp::verb::post, "/whisperer/hooks/", R"({"event_type": "package-created", "target_url": "https://a.example/", )" + countdown);
    REQUIRE(created.result() == bhttp::status::created);
    const json::object shown = json::parse(created.body()).as_object();
    const std::string secret(shown.at("secret_key").as_string());
    CHECK(secret.starts_with("whsec_"));
    CHECK(standard_signing_key(secret).size() == 32);
    const std::int64_t id = shown.at("id").as_int64();
    CHECK(f.store.find_hook(id)->secret_key == secret);

    const http::Response read = call(bhttp::verb::get, "/whisperer/hooks/" + std::to_string(id) + "/");
    REQUIRE(read.result() == bhttp::status::ok);
    CHECK(json::parse(read.body()).at("secret_key").as_string() == mask_secret(secret));
    CHECK(read.body().find(secret) == std::string::npos);
    const http::Response list = call(bhttp::verb::get, "/whisperer/hooks/");
    REQUIRE(list.result() == bhttp::status::ok);
    CHECK(list.body().find(secret) == std::string::npos);

    // Two hooks never share a generated secret; a secret the caller chose is not echoed.
    const http::Response second =
        call(bhttp::verb::post, "/whisperer/hooks/", R"({"event_type": "package-created", "target_url": "https://b.example/", )" + countdown);
    REQUIRE(second.result() == bhttp::status::created);
    CHECK(json::parse(second.body()).at("secret_key").as_string() != secret);
    const http::Response chosen = call(bhttp::verb::post, "/whisperer/hooks/",
                                       R"({"event_type": "package-created", "target_url": "https://c.example/",
                                           "secret_key": "my-own-secret-value", )" + countdown);
    REQUIRE(chosen.result() == bhttp::status::created);
    CHECK(json::parse(chosen.body()).at("secret_key").as_string() == mask_secret("my-own-secret-value"));
}
