// Every input limit at its boundary, through the REST API and the C++ API: exactly at the limit
// is accepted, one past it is refused with a clear error and changes nothing. Real SQLite files,
// a real dispatcher and the router through its handle function.

#include "catch.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/envelope.hpp>
#include <whisperer/error.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
namespace json = boost::json;
namespace bhttp = boost::beast::http;
using bhttp::status;
using bhttp::verb;

namespace {

/// The options of every part the fixture builds.
struct Limits {
    SqliteOptions store;
    DispatcherOptions dispatcher;
    http::RouterOptions router;
};

/// A store on a file, a dispatcher that is never started (events stay in the outbox, where the
/// tests count them), the router, a subscriber and a publisher.
struct Fixture {
    test::TempDir dir;
    SqliteStore store;
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::optional<Dispatcher> dispatcher;
    http::TokenAuthenticator authenticator{store};
    std::optional<http::HooksRouter> router;
    std::vector<std::thread> threads;
    std::string alice, publisher;

    explicit Fixture(Limits limits = {}) : store(dir.file("limits.db"), limits.store)
    {
        registry.register_json_event("package-created");
        dispatcher.emplace(io.get_executor(), registry, store, std::move(limits.dispatcher));
        router.emplace(registry, store, *dispatcher, authenticator, std::move(limits.router));
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
        alice = issue_token(store, "alice");
        publisher = issue_token(store, "billing", false, true);
    }

    ~Fixture()
    {
        dispatcher->stop(std::chrono::seconds(1));
        work.reset();
        for (auto& t : threads)
            t.join();
    }

    http::Response call(verb method, const std::string& target, const std::string& token,
                        std::optional<std::string> body = std::nullopt)
    {
        http::Request request{method, target, 11};
        request.set(bhttp::field::authorization, "Token " + token);
        if (body) {
            request.set(bhttp::field::content_type, "application/json");
            request.body() = std::move(*body);
        }
        request.prepare_payload();
        return router->handle(std::move(request));
    }

    http::Response create_hook(const json::object& body) { return call(verb::post, "/whisperer/hooks/", alice, json::serialize(body)); }

    http::Response publish(const json::object& body) { return call(verb::post, "/whisperer/events/", publisher, json::serialize(body)); }

    /// Alice's hooks, active or not.
    std::size_t hook_count()
    {
        HookQuery query{.owner = "alice", .limit = 1000};
        return store.list_hooks(query).items.size();
    }

    /// The stored deliveries (one per event once `subscribe` has made the only hook), after the
    /// events the journal accepted have reached the store.
    std::vector<Delivery> deliveries()
    {
        REQUIRE(dispatcher->wait_stored());
        return store.list_deliveries(DeliveryQuery{.limit = 1000}).items;
    }

    std::size_t delivery_count() { return deliveries().size(); }

    /// Alice's hook for every event, so that each stored event leaves one delivery.
    void subscribe()
    {
        auto response = create_hook(hook_body("https://example.com/events"));
        INFO(response.body());
        REQUIRE(response.result() == status::created);
    }

    /// A hook body that the router accepts, with `extra` fields set over it.
    static json::object hook_body(const std::string& target_url, json::object extra = {})
    {
        json::object body{{"event_type", "package-created"},
                          {"target_url", target_url},
                          {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 60}}}}}};
        for (auto& [key, value] : extra)
            body[key] = value;
        return body;
    }
};

/// Checks an error response: status, code and (when given) the field it names; returns its text.
std::string require_error(const http::Response& response, status expected, std::string_view code,
                          std::string_view field = {})
{
    INFO(response.body());
    REQUIRE(response.result() == expected);
    REQUIRE(response[bhttp::field::content_type] == "application/json");
    json::object body = json::parse(response.body()).as_object();
    CHECK(body.at("code").as_string() == code);
    if (!field.empty()) {
        REQUIRE(body.contains("field"));
        CHECK(body.at("field").as_string() == field);
    }
    return std::string(body.at("en").as_string());
}

void require_status(const http::Response& response, status expected)
{
    INFO(response.body());
    REQUIRE(response.result() == expected);
}

bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

/// JSON whose arrays and objects nest exactly `depth` levels deep, alternating the two kinds.
json::value nested(std::size_t depth)
{
    json::value value = depth % 2 == 1 ? json::value(json::array{}) : json::value(json::object{});
    for (std::size_t level = depth - 1; level >= 1; --level) {
        if (level % 2 == 1)
            value = json::array{std::move(value)};
        else
            value = json::object{{"a", std::move(value)}};
    }
    return value;
}

/// The bytes of the envelope around string data, beyond the string's own characters.
std::size_t envelope_overhead(std::string_view event_type)
{
    return json::serialize(make_envelope(event_type, std::string(32, '0'), json::string(), DataKey::data)).size();
}

} // namespace

// --- request bodies ------------------------------------------------------------------------------

TEST_CASE("a request body of exactly max_body_size is read; one byte more is answered 413 and creates nothing",
          "[limits]")
{
    Fixture f;
    const std::size_t limit = f.router->options().max_body_size;
    REQUIRE(limit == 1024 * 1024);
    auto padded = [](json::object body, std::size_t size) {
        std::string text = json::serialize(body);
        REQUIRE(text.size() <= size);
        return text + std::string(size - text.size(), ' ');
    };

    require_status(f.call(verb::post, "/whisperer/hooks/", f.alice, padded(Fixture::hook_body("https://example.com/a"), limit)),
                   status::created);
    const std::string message = require_error(
        f.call(verb::post, "/whisperer/hooks/", f.alice, padded(Fixture::hook_body("https://example.com/b"), limit + 1)),
        status::payload_too_large, "payload_too_large");
    CHECK(contains(message, std::to_string(limit)));
    CHECK(f.hook_count() == 1);
}

TEST_CASE("hook bodies nested max_json_depth deep are accepted; one level more is answered 400 and creates nothing",
          "[limits]")
{
    const std::size_t depth = GENERATE(std::size_t{64}, std::size_t{8});
    Limits limits;
    limits.router.max_json_depth = depth;
    Fixture f(limits);
    // The body is level 1; a key the router does not know is parsed, then ignored.
    require_status(f.create_hook(Fixture::hook_body("https://example.com/a", {{"note", nested(depth - 1)}})),
                   status::created);
    const std::string message = require_error(
        f.create_hook(Fixture::hook_body("https://example.com/b", {{"note", nested(depth)}})),
        status::bad_request, "parse_error");
    CHECK(contains(message, std::to_string(depth) + " levels"));
    CHECK(f.hook_count() == 1);
}

TEST_CASE("publish bodies nested max_json_depth deep are accepted; one level more is answered 400 and stores no event",
          "[limits]")
{
    Fixture f;
    f.subscribe();
    const std::size_t depth = f.router->options().max_json_depth;
    REQUIRE(depth == 64);
    // The body is level 1, so data may be one level less.
    require_status(f.publish({{"event_type", "package-created"}, {"data", nested(depth - 1)}}), status::accepted);
    require_error(f.publish({{"event_type", "package-created"}, {"data", nested(depth)}}), status::bad_request,
                  "parse_error");
    CHECK(f.delivery_count() == 1);

    // The delivery log shows the deep payload as the JSON it is.
    REQUIRE(f.dispatcher->wait_stored());
    auto log = f.call(verb::get, "/whisperer/hook_events/", f.alice);
    require_status(log, status::ok);
    const json::value body = json::parse(log.body(), {}, {.max_depth = 100});
    const json::value& payload = body.at("results").at(0).at("request_payload");
    REQUIRE(payload.is_object());
    CHECK(payload.at("data") == nested(depth - 1));
}

// --- events --------------------------------------------------------------------------------------

TEST_CASE("an envelope of exactly max_payload_bytes is delivered; one byte more throws payload_too_large and "
          "stores nothing",
          "[limits]")
{
    Fixture f;
    f.subscribe();
    const std::size_t limit = f.dispatcher->options().max_payload_bytes;
    REQUIRE(limit == 256 * 1024);
    const std::size_t fits = limit - envelope_overhead("package-created");

    DeliverResult result = f.dispatcher->deliver_data(json::string(std::string(fits, 'x')), "package-created", {});
    CHECK(result.hook_count == 1);
    auto stored = f.deliveries();
    REQUIRE(stored.size() == 1);
    CHECK(stored.front().request_body.size() == limit);

    try {
        f.dispatcher->deliver_data(json::string(std::string(fits + 1, 'x')), "package-created", {});
        FAIL("an envelope one byte over the limit was accepted");
    } catch (const Error& e) {
        CHECK(e.code() == errc::payload_too_large);
        CHECK(contains(e.what(), std::to_string(limit)));
    }
    CHECK(f.delivery_count() == 1);
}

TEST_CASE("a published envelope of exactly max_payload_bytes is accepted; one byte more is answered 413 and stores "
          "nothing",
          "[limits]")
{
    Limits limits;
    limits.dispatcher.max_payload_bytes = 4096;
    Fixture f(limits);
    f.subscribe();
    const std::size_t fits = 4096 - envelope_overhead("package-created");

    require_status(f.publish({{"event_type", "package-created"}, {"data", std::string(fits, 'x')}}), status::accepted);
    const std::string message = require_error(
        f.publish({{"event_type", "package-created"}, {"data", std::string(fits + 1, 'x')}}),
        status::payload_too_large, "whisperer_payload_too_large");
    CHECK(contains(message, "4096"));
    CHECK(f.delivery_count() == 1);
}

TEST_CASE("event data nested max_data_depth deep is delivered; one level more throws ValidationError and stores "
          "nothing",
          "[limits]")
{
    Fixture f;
    f.subscribe();
    const std::size_t depth = f.dispatcher->options().max_data_depth;
    REQUIRE(depth == 64);

    CHECK(f.dispatcher->deliver_data(nested(depth), "package-created", {}).hook_count == 1);
    // Width is not depth: many shallow containers pass.
    CHECK(f.dispatcher->deliver_data(json::array(100, json::array{json::object{}}), "package-created", {}).hook_count == 1);
    try {
        f.dispatcher->deliver_data(nested(depth + 1), "package-created", {});
        FAIL("data one level over the limit was accepted");
    } catch (const ValidationError& e) {
        CHECK(e.field() == "data");
        CHECK(contains(e.what(), std::to_string(depth) + " levels"));
    }
    CHECK(f.delivery_count() == 2);
}

TEST_CASE("published data nested max_data_depth deep is accepted; one level more is answered 400 naming data",
          "[limits]")
{
    Limits limits;
    limits.dispatcher.max_data_depth = 8;
    Fixture f(limits);
    f.subscribe();
    require_status(f.publish({{"event_type", "package-created"}, {"data", nested(8)}}), status::accepted);
    const std::string message = require_error(f.publish({{"event_type", "package-created"}, {"data", nested(9)}}),
                                              status::bad_request, "whisperer_invalid", "data");
    CHECK(contains(message, "8 levels"));
    CHECK(f.delivery_count() == 1);
}

TEST_CASE("an idempotency key of 255 characters is accepted; 256 are answered 400 and store nothing", "[limits]")
{
    Fixture f;
    f.subscribe();
    require_status(f.publish({{"event_type", "package-created"}, {"data", 1}, {"idempotency_key", std::string(255, 'k')}}),
                   status::accepted);
    require_error(f.publish({{"event_type", "package-created"}, {"data", 1}, {"idempotency_key", std::string(256, 'k')}}),
                  status::bad_request, "whisperer_invalid", "idempotency_key");
    CHECK(f.delivery_count() == 1);
}

// --- hooks ---------------------------------------------------------------------------------------

TEST_CASE("an owner's hook beyond max_hooks_per_owner is answered 400 and not created, deleted hooks included",
          "[limits]")
{
    Limits limits;
    limits.store.max_hooks_per_owner = 2;
    Fixture f(limits);
    auto id_of = [](const http::Response& response) {
        INFO(response.body());
        REQUIRE(response.result() == status::created);
        return json::parse(response.body()).at("id").as_int64();
    };
    const std::int64_t first = id_of(f.create_hook(Fixture::hook_body("https://example.com/1")));
    id_of(f.create_hook(Fixture::hook_body("https://example.com/2")));

    const std::string message = require_error(f.create_hook(Fixture::hook_body("https://example.com/3")),
                                              status::bad_request, "whisperer_too_many_hooks");
    CHECK(contains(message, "2 webhooks, active or deleted"));
    CHECK(f.hook_count() == 2);

    // Another owner has a limit of its own.
    const std::string bob = issue_token(f.store, "bob");
    require_status(f.call(verb::post, "/whisperer/hooks/", bob, json::serialize(Fixture::hook_body("https://example.com/1"))),
                   status::created);

    // A deleted hook keeps its place until retention removes it: deleting and creating in a
    // loop cannot grow the store. The deleted hook can be taken up again.
    require_status(f.call(verb::delete_, "/whisperer/hooks/" + std::to_string(first) + "/", f.alice), status::no_content);
    require_error(f.create_hook(Fixture::hook_body("https://example.com/3")), status::bad_request,
                  "whisperer_too_many_hooks");
    require_status(f.call(verb::patch, "/whisperer/hooks/" + std::to_string(first) + "/", f.alice,
                          R"({"is_active": true, "target_url": "https://example.com/3"})"),
                   status::ok);
    CHECK(f.store.find_hook(first)->is_active);
    CHECK(f.hook_count() == 2);
}

TEST_CASE("target and auth URLs of max_url_length are accepted; one character more is answered 400 and creates "
          "nothing",
          "[limits]")
{
    Fixture f;
    const std::size_t limit = f.router->options().hook_rules.max_url_length;
    REQUIRE(limit == 2048);
    auto url_of = [](std::string_view path_start, std::size_t size) {
        std::string url = "https://example.com/" + std::string(path_start);
        return url + std::string(size - url.size(), 'u');
    };
    auto token_auth = [](std::string url) {
        return json::object{{"auth", {{"auth_type", "token"}, {"url", std::move(url)}, {"username", "u"}}}};
    };

    require_status(f.create_hook(Fixture::hook_body(url_of("a", limit))), status::created);
    require_error(f.create_hook(Fixture::hook_body(url_of("b", limit + 1))), status::bad_request, "whisperer_invalid",
                  "target_url");
    require_status(f.create_hook(Fixture::hook_body("https://example.com/c", {{"config", token_auth(url_of("c", limit))}})),
                   status::created);
    require_error(f.create_hook(Fixture::hook_body("https://example.com/d", {{"config", token_auth(url_of("d", limit + 1))}})),
                  status::bad_request, "whisperer_invalid", "config.auth.url");
    CHECK(f.hook_count() == 2);
}

TEST_CASE("a secret of max_secret_length is accepted; one character more is answered 400 and creates nothing",
          "[limits]")
{
    Fixture f;
    const std::size_t limit = f.router->options().hook_rules.max_secret_length;
    REQUIRE(limit == 512);
    require_status(f.create_hook(Fixture::hook_body("https://example.com/a", {{"secret_key", std::string(limit, 's')}})),
                   status::created);
    require_error(f.create_hook(Fixture::hook_body("https://example.com/b", {{"secret_key", std::string(limit + 1, 's')}})),
                  status::bad_request, "whisperer_invalid", "secret_key");
    CHECK(f.hook_count() == 1);
    CHECK(f.store.list_hooks(HookQuery{.owner = "alice"}).items.front().secret_key == std::string(limit, 's'));
}

TEST_CASE("additional headers at their count, name, value and total limits are accepted; one past each is answered "
          "400 and creates nothing",
          "[limits]")
{
    Fixture f;
    const HookRules& rules = f.router->options().hook_rules;
    REQUIRE(rules.max_additional_headers == 32);
    REQUIRE(rules.max_header_name_length == 256);
    REQUIRE(rules.max_header_value_length == 4096);
    REQUIRE(rules.max_additional_headers_size == 8192);
    int created = 0;
    auto attempt = [&](json::object headers, std::string_view field) {
        auto response = f.create_hook(Fixture::hook_body("https://example.com/" + std::to_string(created + 1),
                                                         {{"additional_headers", std::move(headers)}}));
        if (field.empty()) {
            require_status(response, status::created);
            ++created;
        } else {
            require_error(response, status::bad_request, "whisperer_invalid", field);
        }
    };

    json::object count;
    for (int i = 0; i < 32; ++i)
        count["X-H" + std::to_string(i)] = "v";
    attempt(count, {});
    count["X-H32"] = "v";
    attempt(count, "additional_headers");

    attempt({{"X-" + std::string(254, 'n'), "v"}}, {});
    attempt({{"X-" + std::string(255, 'n'), "v"}}, "additional_headers");

    attempt({{"X-Long", std::string(4096, 'v')}}, {});
    attempt({{"X-Long", std::string(4097, 'v')}}, "additional_headers.X-Long");

    // Two headers of 3 + 4093 characters make 8192 together.
    attempt({{"X-A", std::string(4093, 'a')}, {"X-B", std::string(4093, 'b')}}, {});
    attempt({{"X-A", std::string(4093, 'a')}, {"X-B", std::string(4094, 'b')}}, "additional_headers");

    CHECK(f.hook_count() == 4);
}

TEST_CASE("a config of max_config_size as JSON is accepted; one character more is answered 400 and creates nothing",
          "[limits]")
{
    Fixture f;
    const std::size_t limit = f.router->options().hook_rules.max_config_size;
    REQUIRE(limit == 16 * 1024);
    // {"k":"..."} is the string and 8 characters.
    require_status(f.create_hook(Fixture::hook_body("https://example.com/a", {{"config", {{"k", std::string(limit - 8, 'c')}}}})),
                   status::created);
    require_error(f.create_hook(Fixture::hook_body("https://example.com/b", {{"config", {{"k", std::string(limit - 7, 'c')}}}})),
                  status::bad_request, "whisperer_invalid", "config");
    CHECK(f.hook_count() == 1);
}

TEST_CASE("a config nested max_config_depth deep is accepted and read back; one level more is answered 400",
          "[limits]")
{
    Fixture f;
    const std::size_t limit = f.router->options().hook_rules.max_config_depth;
    REQUIRE(limit == 32);
    // config is level 1.
    require_status(f.create_hook(Fixture::hook_body("https://example.com/a", {{"config", {{"deep", nested(limit - 1)}}}})),
                   status::created);
    const std::string message = require_error(
        f.create_hook(Fixture::hook_body("https://example.com/b", {{"config", {{"deep", nested(limit)}}}})),
        status::bad_request, "whisperer_invalid", "config");
    CHECK(contains(message, "32 levels"));
    CHECK(f.hook_count() == 1);

    auto listing = f.call(verb::get, "/whisperer/hooks/", f.alice);
    require_status(listing, status::ok);
    const json::value body = json::parse(listing.body(), {}, {.max_depth = 100});
    const json::value& config = body.at("results").at(0).at("config");
    CHECK(config.at("deep") == nested(limit - 1));
}

TEST_CASE("the router applies the hook limits a host sets in RouterOptions::hook_rules", "[limits]")
{
    Limits limits;
    limits.router.hook_rules.max_url_length = 64;
    limits.router.hook_rules.max_secret_length = 16;
    Fixture f(limits);
    const std::string url = "https://example.com/";
    require_status(f.create_hook(Fixture::hook_body(url + std::string(64 - url.size(), 'u'))), status::created);
    require_error(f.create_hook(Fixture::hook_body(url + std::string(65 - url.size(), 'u'))), status::bad_request,
                  "whisperer_invalid", "target_url");
    require_error(f.create_hook(Fixture::hook_body(url + "s", {{"secret_key", std::string(17, 's')}})),
                  status::bad_request, "whisperer_invalid", "secret_key");
    // The router still judges IP literals by the dispatcher's address filter.
    require_error(f.create_hook(Fixture::hook_body("http://127.0.0.1/")), status::bad_request, "whisperer_invalid",
                  "target_url");
    CHECK(f.hook_count() == 1);
}
