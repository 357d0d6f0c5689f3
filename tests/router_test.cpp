// The hooks REST API, driven through HooksRouter with Beast requests against a real SQLite file,
// a real dispatcher and a real receiver on 127.0.0.1.

#include "catch.hpp"
#include "eventually.hpp"
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

#include <future>
#include <optional>
#include <set>
#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace bhttp = boost::beast::http;
using bhttp::status;
using bhttp::verb;

using whisperer::test::eventually;

namespace {

constexpr std::string_view seed_hook = R"({
    "event_type": "package-created",
    "secret_key": "<secret>",
    "target_url": "https://example.com/",
    "retry_countdown_config": {"choice": "linear", "kwargs": {"base": 60, "limit": 600}}
})";

/// A hook body for `target_url` with the seed's countdown, as a JSON text.
std::string hook_body(const std::string& target_url, const std::string& event_type = "package-created",
                      json::object extra = {})
{
    json::object body{{"event_type", event_type},
                      {"target_url", target_url},
                      {"retry_countdown_config", {{"choice", "linear"}, {"kwargs", {{"base", 60}, {"limit", 600}}}}}};
    for (auto& [key, value] : extra)
        body[key] = value;
    return json::serialize(body);
}

/// A store on a file, a dispatcher on two threads, the router, and tokens for two owners, an
/// admin and a publisher.
struct Fixture {
    test::TempDir dir;
    SqliteStore store{dir.file("router.db")};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::optional<Dispatcher> dispatcher;
    http::TokenAuthenticator authenticator{store};
    std::optional<http::HooksRouter> router;
    std::vector<std::thread> threads;
    std::string alice, bob, admin, publisher;

    explicit Fixture(http::RouterOptions options = {})
    {
        registry.register_json_event("package-created");
        registry.register_json_event("order-shipped");
        // The receivers run on loopback, which the SSRF guard refuses unless opened.
        DispatcherOptions dispatcher_options;
        dispatcher_options.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).as_filter();
        dispatcher.emplace(io.get_executor(), registry, store, std::move(dispatcher_options));
        dispatcher->register_callback("audit", [](const AttemptReport&) {});
        router.emplace(registry, store, *dispatcher, authenticator, std::move(options));
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
        dispatcher->start();
        alice = issue_token(store, "alice");
        bob = issue_token(store, "bob");
        admin = issue_token(store, "root", true);
        publisher = issue_token(store, "billing", false, true);
    }

    ~Fixture()
    {
        dispatcher->stop();
        work.reset();
        for (auto& t : threads)
            t.join();
    }

    http::Response call(verb method, const std::string& target, const std::string& token,
                        std::optional<std::string> body = std::nullopt,
                        const std::string& content_type = "application/json")
    {
        http::Request request{method, target, 11};
        if (!token.empty())
            request.set(bhttp::field::authorization, "Token " + token);
        if (body) {
            if (!content_type.empty())
                request.set(bhttp::field::content_type, content_type);
            request.body() = *body;
        }
        request.prepare_payload();
        return router->handle(std::move(request));
    }

    /// Creates a hook for the owner of `token` and returns its id.
    std::int64_t create(const std::string& token, const std::string& body)
    {
        auto response = call(verb::post, "/whisperer/hooks/", token, body);
        REQUIRE(response.result() == status::created);
        return json::parse(response.body()).at("id").as_int64();
    }

    std::size_t hook_count() { return store.list_hooks({}).items.size(); }
};

json::value body_of(const http::Response& response)
{
    INFO(response.body());
    REQUIRE(response[bhttp::field::content_type] == "application/json");
    return json::parse(response.body());
}

/// Checks an error response: status, code and (when given) the field it names.
void require_error(const http::Response& response, status expected, std::string_view code,
                   std::string_view field = {})
{
    INFO(response.body());
    REQUIRE(response.result() == expected);
    json::value body = body_of(response);
    CHECK(body.at("code").as_string() == code);
    CHECK(!body.at("en").as_string().empty());
    if (!field.empty())
        CHECK(body.at("field").as_string() == field);
}

std::string hook_path(std::int64_t id)
{
    return "/whisperer/hooks/" + std::to_string(id) + "/";
}

std::string delivery_path(std::int64_t id, std::string_view suffix = "")
{
    return "/whisperer/hook_events/" + std::to_string(id) + "/" + std::string(suffix);
}

/// Every id of every page of `path` with `limit`, following `next`.
std::vector<std::int64_t> all_pages(Fixture& f, const std::string& path, const std::string& token, int limit,
                                    std::size_t& pages)
{
    std::vector<std::int64_t> ids;
    std::string cursor;
    pages = 0;
    while (true) {
        std::string target = path + "?limit=" + std::to_string(limit) + (cursor.empty() ? "" : "&cursor=" + cursor);
        auto response = f.call(verb::get, target, token);
        REQUIRE(response.result() == status::ok);
        json::object page = body_of(response).as_object();
        ++pages;
        CHECK(page.at("results").as_array().size() <= static_cast<std::size_t>(limit));
        for (const auto& item : page.at("results").as_array())
            ids.push_back(item.at("id").as_int64());
        if (page.at("next").is_null())
            break;
        cursor = std::string(page.at("next").as_string());
        REQUIRE(pages < 100);
    }
    return ids;
}

} // namespace

TEST_CASE("the seed page's subscription creates a hook whose secret is never shown in clear", "[router]")
{
    Fixture f;
    auto response = f.call(verb::post, "/whisperer/hooks/", f.alice, std::string(seed_hook));
    REQUIRE(response.result() == status::created);
    json::object hook = body_of(response).as_object();
    CHECK(hook.at("owner").as_string() == "alice");
    CHECK(hook.at("target_url").as_string() == "https://example.com/");
    CHECK(hook.at("event_type").as_string() == "package-created");
    CHECK(hook.at("is_active").as_bool());
    CHECK(hook.at("secret_key").as_string() == mask_secret("<secret>"));
    CHECK(hook.at("retry_countdown_config").at("kwargs").at("limit").to_number<int>() == 600);
    CHECK(hook.at("additional_headers").as_object().empty());
    CHECK(hook.at("created_date").as_string().ends_with("Z"));
    for (const char* key : {"id", "callback", "config", "modified_date"})
        CHECK(hook.contains(key));

    std::int64_t id = hook.at("id").as_int64();
    CHECK(f.store.find_hook(id)->secret_key == "<secret>");
    for (const std::string& target : {hook_path(id), std::string("/whisperer/hooks/")}) {
        auto read = f.call(verb::get, target, f.alice);
        REQUIRE(read.result() == status::ok);
        CHECK(read.body().find("<secret>") == std::string::npos);
        CHECK(read.body().find(mask_secret("<secret>")) != std::string::npos);
    }
}

TEST_CASE("requests without valid credentials are answered 401 and change nothing", "[router]")
{
    Fixture f;
    auto missing = f.call(verb::post, "/whisperer/hooks/", "", std::string(seed_hook));
    require_error(missing, status::unauthorized, "not_authenticated");
    CHECK(missing[bhttp::field::www_authenticate] == "Token");
    require_error(f.call(verb::get, "/whisperer/hooks/", "not-a-token"), status::unauthorized, "not_authenticated");

    http::Request bearer{verb::get, "/whisperer/hooks/", 11};
    bearer.set(bhttp::field::authorization, "Bearer " + f.alice);
    require_error(f.router->handle(std::move(bearer)), status::unauthorized, "not_authenticated");
    http::Request lowercase{verb::get, "/whisperer/hooks/", 11};
    lowercase.set(bhttp::field::authorization, "token " + f.alice);
    CHECK(f.router->handle(std::move(lowercase)).result() == status::ok);
    CHECK(f.hook_count() == 0);
}

TEST_CASE("unknown paths answer 404 and wrong methods 405 with Allow", "[router]")
{
    Fixture f;
    require_error(f.call(verb::get, "/whisperer/nothing/", f.alice), status::not_found, "not_found");
    require_error(f.call(verb::get, "/whisperer/hooks/abc/", f.alice), status::not_found, "not_found");
    require_error(f.call(verb::get, "/whisperer/hooks/1/2/", f.alice), status::not_found, "not_found");
    require_error(f.call(verb::get, "/elsewhere/hooks/", f.alice), status::not_found, "not_found");
    require_error(f.call(verb::get, "/whisperer/hooks//", f.alice), status::not_found, "not_found");

    struct Case {
        verb method;
        std::string target;
        std::string allow;
    };
    for (const Case& c : {Case{verb::put, "/whisperer/hooks/", "GET, POST"},
                          Case{verb::post, "/whisperer/hooks/1/", "GET, PUT, PATCH, DELETE"},
                          Case{verb::delete_, "/whisperer/hooks/registry/", "GET"},
                          Case{verb::post, "/whisperer/hook_events/", "GET"},
                          Case{verb::put, "/whisperer/hook_events/1/", "GET"},
                          Case{verb::get, "/whisperer/hook_events/1/retry/", "POST"},
                          Case{verb::post, "/whisperer/event_queues/", "GET"},
                          Case{verb::get, "/whisperer/events/", "POST"}}) {
        auto response = f.call(c.method, c.target, f.alice);
        INFO(c.target);
        require_error(response, status::method_not_allowed, "method_not_allowed");
        CHECK(response[bhttp::field::allow] == c.allow);
    }
}

TEST_CASE("routes answer with or without the trailing slash and with a query string", "[router]")
{
    Fixture f;
    CHECK(f.call(verb::get, "/whisperer/hooks", f.alice).result() == status::ok);
    CHECK(f.call(verb::get, "/whisperer/hooks/?is_active=true", f.alice).result() == status::ok);
    CHECK(f.router->matches("/whisperer/hooks/?x=1"));
    CHECK_FALSE(f.router->matches("/health"));
}

TEST_CASE("the registry route lists the registered event types", "[router]")
{
    Fixture f;
    auto response = f.call(verb::get, "/whisperer/hooks/registry/", f.bob);
    REQUIRE(response.result() == status::ok);
    CHECK(body_of(response) == json::parse(R"({"event_types": ["order-shipped", "package-created"]})"));
}

TEST_CASE("bad hook input is answered 400 naming the field, and nothing is created", "[router]")
{
    Fixture f;
    const std::string url = "https://example.com/hook";
    struct Case {
        std::string body;
        std::string field;
    };
    std::vector<Case> cases = {
        {hook_body(url, "no-such-type"), "event_type"},
        {hook_body("example.com/hook"), "target_url"},
        {hook_body("/relative"), "target_url"},
        {hook_body("ftp://example.com/"), "target_url"},
        {hook_body(url, "package-created", {{"retry_countdown_config", {{"choice", "linear"}, {"kwargs", {{"base", -1}}}}}}),
         "retry_countdown_config.kwargs.base"},
        {hook_body(url, "package-created", {{"retry_countdown_config", {{"choice", "sometimes"}}}}),
         "retry_countdown_config.choice"},
        {hook_body(url, "package-created", {{"retry_countdown_config", "linear"}}), "retry_countdown_config"},
        {hook_body(url, "package-created", {{"additional_headers", {{"X-Evil", "a\r\nInjected: yes"}}}}),
         "additional_headers.X-Evil"},
        {hook_body(url, "package-created", {{"additional_headers", {{"Bad Name", "x"}}}}),
         "additional_headers.Bad Name"},
        {hook_body(url, "package-created", {{"additional_headers", {{"X-Whisperer-Signature", "sha256=0"}}}}),
         "additional_headers.X-Whisperer-Signature"},
        {hook_body(url, "package-created", {{"additional_headers", {{"Content-Type", "text/plain"}}}}),
         "additional_headers.Content-Type"},
        {hook_body(url, "package-created", {{"additional_headers", "X-A: b"}}), "additional_headers"},
        {hook_body(url, "package-created", {{"callback", "no.such.callback"}}), "callback"},
        {hook_body(url, "package-created", {{"is_active", "yes"}}), "is_active"},
        {hook_body(url, "package-created", {{"secret_key", 42}}), "secret_key"},
        {hook_body(url, "package-created", {{"config", {{"auth", {{"auth_type", "magic"}}}}}}), "config.auth.auth_type"},
        {R"({"event_type": "package-created", "retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": 5}}})",
         "target_url"},
        {R"({"target_url": "https://example.com/", "retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": 5}}})",
         "event_type"},
        {R"({"target_url": "https://example.com/", "event_type": "package-created"})", "retry_countdown_config"},
        {"", "target_url"},
    };
    for (const Case& c : cases) {
        INFO(c.body);
        require_error(f.call(verb::post, "/whisperer/hooks/", f.alice, c.body, c.body.empty() ? "" : "application/json"),
                      status::bad_request, "whisperer_invalid", c.field);
    }
    auto unknown = f.call(verb::post, "/whisperer/hooks/", f.alice, hook_body(url, "no-such-type"));
    CHECK(body_of(unknown).at("en").as_string() == "\"no-such-type\" is not a valid choice.");
    CHECK(f.hook_count() == 0);
}

TEST_CASE("malformed JSON is 400 and a wrong content type 415", "[router]")
{
    Fixture f;
    for (const std::string& body : std::vector<std::string>{"{", "{\"event_type\": }", "[1, 2]", "\"text\"", "nul", std::string(1000, '[')}) {
        INFO(body);
        require_error(f.call(verb::post, "/whisperer/hooks/", f.alice, body), status::bad_request, "parse_error");
    }
    require_error(f.call(verb::post, "/whisperer/hooks/", f.alice, std::string(seed_hook), "text/plain"),
                  status::unsupported_media_type, "unsupported_media_type");
    require_error(f.call(verb::post, "/whisperer/hooks/", f.alice, std::string(seed_hook), ""),
                  status::unsupported_media_type, "unsupported_media_type");
    require_error(f.call(verb::post, "/whisperer/hooks/", f.alice, "a=b", "application/x-www-form-urlencoded"),
                  status::unsupported_media_type, "unsupported_media_type");
    CHECK(f.call(verb::post, "/whisperer/hooks/", f.alice, std::string(seed_hook), "Application/JSON; charset=utf-8")
              .result() == status::created);
    CHECK(f.hook_count() == 1);
}

TEST_CASE("a duplicate active hook is refused with 406 webhook_100_2; a deleted one can be made again", "[router]")
{
    Fixture f;
    std::int64_t id = f.create(f.alice, std::string(seed_hook));
    auto duplicate = f.call(verb::post, "/whisperer/hooks/", f.alice, std::string(seed_hook));
    require_error(duplicate, status::not_acceptable, "webhook_100_2");
    CHECK(f.hook_count() == 1);

    // Another owner may subscribe the same URL to the same type.
    f.create(f.bob, std::string(seed_hook));

    CHECK(f.call(verb::delete_, hook_path(id), f.alice).result() == status::no_content);
    std::int64_t again = f.create(f.alice, std::string(seed_hook));
    CHECK(again != id);
}

TEST_CASE("PUT and PATCH update a hook; a duplicate or invalid update changes nothing", "[router]")
{
    Fixture f;
    std::int64_t id = f.create(f.alice, hook_body("https://a.example/", "package-created",
                                                  {{"secret_key", "s3cret-value"}, {"callback", "audit"}}));
    std::int64_t other = f.create(f.alice, hook_body("https://b.example/"));

    auto patched = f.call(verb::patch, hook_path(id), f.alice, R"({"additional_headers": {"X-Tenant": "7"}})");
    REQUIRE(patched.result() == status::ok);
    CHECK(body_of(patched).at("additional_headers") == json::parse(R"({"X-Tenant": "****"})"));
    CHECK(f.store.find_hook(id)->additional_headers.at("X-Tenant") == "7");
    CHECK(body_of(patched).at("target_url").as_string() == "https://a.example/");

    // Sending back what a read showed keeps the secret instead of storing its mask.
    json::object read = body_of(f.call(verb::get, hook_path(id), f.alice)).as_object();
    auto echoed = f.call(verb::put, hook_path(id), f.alice, json::serialize(read));
    REQUIRE(echoed.result() == status::ok);
    CHECK(f.store.find_hook(id)->secret_key == "s3cret-value");
    CHECK(f.store.find_hook(id)->additional_headers.at("X-Tenant") == "7");

    auto replaced = f.call(verb::put, hook_path(id), f.alice,
                           hook_body("https://c.example/", "order-shipped", {{"secret_key", "new-secret-1"}}));
    REQUIRE(replaced.result() == status::ok);
    Hook stored = *f.store.find_hook(id);
    CHECK(stored.target_url == "https://c.example/");
    CHECK(stored.event_type == "order-shipped");
    CHECK(stored.secret_key == "new-secret-1");
    CHECK(stored.callback == "audit"); // PUT keeps optional fields it does not name.

    Hook before = *f.store.find_hook(other);
    require_error(f.call(verb::put, hook_path(other), f.alice, R"({"target_url": "https://x.example/"})"),
                  status::bad_request, "whisperer_invalid", "event_type");
    require_error(f.call(verb::patch, hook_path(other), f.alice, R"({"target_url": "https://c.example/", "event_type": "order-shipped"})"),
                  status::not_acceptable, "webhook_100_2");
    require_error(f.call(verb::patch, hook_path(other), f.alice, R"({"event_type": "nope"})"), status::bad_request,
                  "whisperer_invalid", "event_type");
    require_error(f.call(verb::patch, hook_path(other), f.alice, R"({"target_url": null})"), status::bad_request,
                  "whisperer_invalid", "target_url");
    require_error(f.call(verb::patch, hook_path(other), f.alice, "{", "application/json"), status::bad_request,
                  "parse_error");
    Hook after = *f.store.find_hook(other);
    CHECK(after.target_url == before.target_url);
    CHECK(after.event_type == before.event_type);
    CHECK(after.modified == before.modified);
    require_error(f.call(verb::patch, hook_path(999), f.alice, "{}"), status::not_found, "webhook_100_1");
}

TEST_CASE("DELETE deactivates the hook (soft delete) and answers 204", "[router]")
{
    Fixture f;
    std::int64_t id = f.create(f.alice, std::string(seed_hook));
    auto deleted = f.call(verb::delete_, hook_path(id), f.alice);
    CHECK(deleted.result() == status::no_content);
    CHECK(deleted.body().empty());
    CHECK(deleted.find(bhttp::field::content_length) == deleted.end());
    REQUIRE(f.store.find_hook(id));
    CHECK_FALSE(f.store.find_hook(id)->is_active);
    CHECK_FALSE(body_of(f.call(verb::get, hook_path(id), f.alice)).at("is_active").as_bool());
    CHECK(f.store.active_hooks("package-created").empty());
    require_error(f.call(verb::delete_, hook_path(id + 100), f.alice), status::not_found, "webhook_100_1");
}

TEST_CASE("owners see only their own hooks, deliveries and outbox rows; an admin sees all", "[router]")
{
    Fixture f;
    test::Receiver receiver([](const test::ReceivedRequest&) { return test::Reply{.status = 500}; });
    std::int64_t alices = f.create(f.alice, hook_body(receiver.url("/alice")));
    std::int64_t bobs = f.create(f.bob, hook_body(receiver.url("/bob")));
    auto published = f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(published.hook_count == 2);
    REQUIRE(eventually([&] { return receiver.count() >= 2; }));
    auto deliveries = f.store.deliveries_of_event(published.event_uuid);
    REQUIRE(deliveries.size() == 2);
    std::int64_t alices_delivery = deliveries[0].hook_id == alices ? deliveries[0].id : deliveries[1].id;

    // Bob cannot see, change or delete Alice's hook: it does not exist for him.
    require_error(f.call(verb::get, hook_path(alices), f.bob), status::not_found, "webhook_100_1");
    require_error(f.call(verb::patch, hook_path(alices), f.bob, R"({"target_url": "https://bob.example/"})"),
                  status::not_found, "webhook_100_1");
    require_error(f.call(verb::put, hook_path(alices), f.bob, hook_body("https://bob.example/")), status::not_found,
                  "webhook_100_1");
    require_error(f.call(verb::delete_, hook_path(alices), f.bob), status::not_found, "webhook_100_1");
    require_error(f.call(verb::get, delivery_path(alices_delivery), f.bob), status::not_found, "event_100_1");
    require_error(f.call(verb::post, delivery_path(alices_delivery, "retry/"), f.bob, "{}"), status::not_found,
                  "event_100_1");
    CHECK(f.store.find_hook(alices)->is_active);
    CHECK(f.store.find_hook(alices)->target_url == receiver.url("/alice"));

    auto ids_of = [&](const std::string& path, const std::string& token, const char* key) {
        std::set<std::int64_t> ids;
        json::value page = body_of(f.call(verb::get, path, token));
        for (const auto& item : page.at("results").as_array())
            ids.insert(item.at(key).as_int64());
        return ids;
    };
    CHECK(ids_of("/whisperer/hooks/", f.bob, "id") == std::set<std::int64_t>{bobs});
    CHECK(ids_of("/whisperer/hooks/", f.admin, "id") == std::set<std::int64_t>{alices, bobs});
    CHECK(ids_of("/whisperer/hooks/?owner=alice", f.admin, "id") == std::set<std::int64_t>{alices});
    CHECK(ids_of("/whisperer/hooks/?owner=alice", f.bob, "id") == std::set<std::int64_t>{bobs});
    CHECK(ids_of("/whisperer/hook_events/", f.bob, "webhook") == std::set<std::int64_t>{bobs});
    CHECK(ids_of("/whisperer/hook_events/", f.admin, "webhook") == std::set<std::int64_t>{alices, bobs});
    REQUIRE(eventually([&] { return f.store.find_delivery(alices_delivery)->attempt_count == 1; }));
    CHECK(ids_of("/whisperer/event_queues/", f.alice, "webhook") == std::set<std::int64_t>{alices});
    CHECK(ids_of("/whisperer/event_queues/", f.admin, "webhook") == std::set<std::int64_t>{alices, bobs});

    CHECK(f.call(verb::get, hook_path(alices), f.admin).result() == status::ok);
    CHECK(f.call(verb::get, delivery_path(alices_delivery), f.admin).result() == status::ok);
    CHECK(f.call(verb::patch, hook_path(alices), f.admin, R"({"config": {"tier": "gold"}})").result() == status::ok);
    CHECK(f.store.find_hook(alices)->owner == "alice");
}

TEST_CASE("hook listings page with a cursor and filter by target_url, event_type and is_active", "[router]")
{
    Fixture f;
    std::set<std::int64_t> created;
    for (int i = 0; i < 7; ++i)
        created.insert(f.create(f.alice, hook_body("https://example.com/" + std::to_string(i),
                                                   i % 2 ? "order-shipped" : "package-created")));
    f.create(f.bob, hook_body("https://example.com/bob"));

    std::size_t pages = 0;
    auto ids = all_pages(f, "/whisperer/hooks/", f.alice, 3, pages);
    CHECK(pages == 3);
    CHECK(ids.size() == 7);
    CHECK(std::set<std::int64_t>(ids.begin(), ids.end()) == created);

    auto count = [&](const std::string& query) {
        return body_of(f.call(verb::get, "/whisperer/hooks/?" + query, f.alice)).at("results").as_array().size();
    };
    CHECK(count("event_type=order-shipped") == 3);
    CHECK(count("target_url=https%3A%2F%2Fexample.com%2F4") == 1);
    f.call(verb::delete_, hook_path(*created.begin()), f.alice);
    CHECK(count("is_active=false") == 1);
    CHECK(count("is_active=true") == 6);
    CHECK(count("is_active=True&event_type=package-created") == 3);
    CHECK(count("limit=1000") == 7);
    CHECK(body_of(f.call(verb::get, "/whisperer/hooks/?limit=7", f.alice)).at("next").is_null());

    require_error(f.call(verb::get, "/whisperer/hooks/?limit=0", f.alice), status::bad_request, "whisperer_invalid", "limit");
    require_error(f.call(verb::get, "/whisperer/hooks/?limit=ten", f.alice), status::bad_request, "whisperer_invalid", "limit");
    require_error(f.call(verb::get, "/whisperer/hooks/?cursor=abc", f.alice), status::bad_request, "whisperer_invalid", "cursor");
    require_error(f.call(verb::get, "/whisperer/hooks/?is_active=maybe", f.alice), status::bad_request,
                  "whisperer_invalid", "is_active");
}

TEST_CASE("the default page is 50 and no page exceeds 250", "[router]")
{
    http::RouterOptions options;
    options.default_page_size = 2;
    options.max_page_size = 3;
    Fixture f(options);
    for (int i = 0; i < 5; ++i)
        f.create(f.alice, hook_body("https://example.com/" + std::to_string(i)));
    CHECK(body_of(f.call(verb::get, "/whisperer/hooks/", f.alice)).at("results").as_array().size() == 2);
    CHECK(body_of(f.call(verb::get, "/whisperer/hooks/?limit=250", f.alice)).at("results").as_array().size() == 3);
    CHECK(http::RouterOptions{}.default_page_size == 50);
    CHECK(http::RouterOptions{}.max_page_size == 250);
}

TEST_CASE("a publish with owners reaches only those owners' hooks, whatever config other subscribers copy",
          "[router][security]")
{
    Fixture f;
    test::Receiver receiver;
    f.create(f.alice, hook_body(receiver.url("/alice"), "package-created", {{"config", {{"tenant", "acme"}}}}));
    f.create(f.bob, hook_body(receiver.url("/bob"), "package-created", {{"config", {{"tenant", "acme"}}}}));

    auto published = f.call(verb::post, "/whisperer/events/", f.publisher,
                            R"({"event_type": "package-created", "data": {"id": 1},
                                "config_filter": {"tenant": "acme"}, "owners": ["alice"]})");
    REQUIRE(published.result() == status::accepted);
    CHECK(body_of(published).at("hooks").as_int64() == 1);
    REQUIRE(receiver.wait_for(1));
    CHECK(receiver.requests().front().target == "/alice");

    for (const char* owners : {R"("alice")", "[]", "[1]", R"([""])", "{}"}) {
        INFO(owners);
        require_error(f.call(verb::post, "/whisperer/events/", f.publisher,
                             std::string(R"({"event_type": "package-created", "data": {}, "owners": )") + owners + "}"),
                      status::bad_request, "whisperer_invalid", "owners");
    }
    // Without owners both receive the next event: the filter, not the receivers, kept bob out.
    auto everyone = f.call(verb::post, "/whisperer/events/", f.publisher,
                           R"({"event_type": "package-created", "data": {"id": 2}, "config_filter": {"tenant": "acme"}})");
    REQUIRE(everyone.result() == status::accepted);
    CHECK(body_of(everyone).at("hooks").as_int64() == 2);
    REQUIRE(receiver.wait_for(3));
    std::size_t to_bob = 0;
    for (const auto& request : receiver.requests())
        to_bob += request.target == "/bob" ? 1 : 0;
    CHECK(to_bob == 1);
}

TEST_CASE("a publisher's event is accepted with 202 and reaches the subscriber signed", "[router]")
{
    Fixture f;
    test::Receiver receiver;
    std::int64_t hook = f.create(f.alice, hook_body(receiver.url("/hook"), "package-created",
                                                    {{"secret_key", "<secret>"}, {"config", {{"region", "eu"}}}}));
    f.create(f.bob, hook_body(receiver.url("/other"), "package-created", {{"config", {{"region", "us"}}}}));

    auto published = f.call(verb::post, "/whisperer/events/", f.publisher,
                            R"({"event_type": "package-created", "data": {"id": 61, "order_number": "248398923123"},
                                "config_filter": {"region": "eu"}})");
    REQUIRE(published.result() == status::accepted);
    json::object answer = body_of(published).as_object();
    CHECK(answer.at("hooks").as_int64() == 1);
    std::string uuid(answer.at("uuid").as_string());
    CHECK(is_event_uuid(uuid));

    REQUIRE(receiver.wait_for(1));
    auto request = receiver.requests().front();
    CHECK(request.target == "/hook");
    CHECK(json::parse(request.body) ==
          json::parse(R"({"event": {"type": "package-created", "uuid": ")" + uuid +
                      R"("}, "data": {"id": 61, "order_number": "248398923123"}})"));
    CHECK(request.header("x-whisperer-signature") == whisperer_signature("<secret>", request.body));
    CHECK(request.header("x-whisperer-event") == "package-created");

    REQUIRE(eventually([&] {
        auto page = f.store.list_deliveries(DeliveryQuery{.hook_id = hook});
        return !page.items.empty() && page.items.front().delivered();
    }));
    auto listed = body_of(f.call(verb::get, "/whisperer/hook_events/?uuid=" + uuid, f.alice)).at("results").as_array();
    REQUIRE(listed.size() == 1);
    CHECK(listed[0].at("request_payload").at("data").at("id").to_number<int>() == 61);
    CHECK(listed[0].at("delivered").as_bool());

    // The same idempotency key twice makes one event.
    const std::string keyed = R"({"event_type": "package-created", "data": {"id": 62}, "idempotency_key": "pkg-62"})";
    auto first = body_of(f.call(verb::post, "/whisperer/events/", f.admin, keyed));
    auto second = body_of(f.call(verb::post, "/whisperer/events/", f.admin, keyed));
    CHECK(first.at("uuid") == second.at("uuid"));
    CHECK(second.at("duplicate").as_bool());
    CHECK(f.store.deliveries_of_event(std::string(first.at("uuid").as_string())).size() == 2);
}

TEST_CASE("publishing needs the publisher or admin right and valid input", "[router]")
{
    Fixture f;
    const std::string event = R"({"event_type": "package-created", "data": {"id": 1}})";
    require_error(f.call(verb::post, "/whisperer/events/", f.alice, event), status::forbidden, "permission_denied");
    require_error(f.call(verb::post, "/whisperer/events/", "", event), status::unauthorized, "not_authenticated");

    auto unknown = f.call(verb::post, "/whisperer/events/", f.publisher, R"({"event_type": "nope", "data": {}})");
    require_error(unknown, status::bad_request, "whisperer_invalid", "event_type");
    CHECK(body_of(unknown).at("en").as_string() == "\"nope\" is not a valid choice.");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher, R"({"data": {}})"), status::bad_request,
                  "whisperer_invalid", "event_type");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher, R"({"event_type": 5, "data": {}})"),
                  status::bad_request, "whisperer_invalid", "event_type");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher, R"({"event_type": "package-created"})"),
                  status::bad_request, "whisperer_invalid", "data");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher,
                         R"({"event_type": "package-created", "data": {}, "config_filter": [1]})"),
                  status::bad_request, "whisperer_invalid", "config_filter");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher,
                         R"({"event_type": "package-created", "data": {}, "idempotency_key": ""})"),
                  status::bad_request, "whisperer_invalid", "idempotency_key");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher, event, "text/plain"),
                  status::unsupported_media_type, "unsupported_media_type");
    require_error(f.call(verb::post, "/whisperer/events/", f.publisher, "{\"event_type\""), status::bad_request,
                  "parse_error");
    CHECK(f.store.list_deliveries({}).items.empty());
    CHECK(f.store.list_outbox({}).items.empty());
}

TEST_CASE("delivery listings filter and page; a delivery's detail has its attempts", "[router]")
{
    Fixture f;
    test::Receiver receiver([](const test::ReceivedRequest& r) {
        return test::Reply{.status = r.target == "/fail" ? 503 : 200};
    });
    std::int64_t good = f.create(f.alice, hook_body(receiver.url("/ok")));
    std::int64_t bad = f.create(f.alice, hook_body(receiver.url("/fail")));
    for (int i = 0; i < 3; ++i)
        f.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {});
    REQUIRE(eventually([&] {
        auto all = f.store.list_deliveries({});
        return all.items.size() == 6 && std::all_of(all.items.begin(), all.items.end(),
                                                    [](const Delivery& d) { return d.attempt_count == 1; });
    }));

    std::size_t pages = 0;
    CHECK(all_pages(f, "/whisperer/hook_events/", f.alice, 4, pages).size() == 6);
    CHECK(pages == 2);

    auto results = [&](const std::string& query) {
        return body_of(f.call(verb::get, "/whisperer/hook_events/?" + query, f.alice)).at("results").as_array();
    };
    CHECK(results("delivered=true").size() == 3);
    CHECK(results("delivered=false").size() == 3);
    CHECK(results("response_http_status=503").size() == 3);
    CHECK(results("webhook=" + std::to_string(good)).size() == 3);
    CHECK(results("event_type=order-shipped").empty());
    CHECK(results("created_date__gte=2000-01-01").size() == 6);
    CHECK(results("created_date__lte=2000-01-01T00:00:00Z").empty());
    CHECK(results("created_date__gte=2000-01-01T00:00:00.5%2B02:00").size() == 6);
    // Found by fuzzing: dates beyond what a time point holds overflowed; they are open bounds.
    CHECK(results("created_date__lte=9999-12-31").size() == 6);
    CHECK(results("created_date__gte=0001-01-01T00:00:00%2B23:59").size() == 6);
    CHECK(results("created_date__gte=6657-05-01T12:00:00-02:00").empty());
    json::array failing = results("webhook=" + std::to_string(bad) + "&limit=1");
    REQUIRE(failing.size() == 1);
    std::string uuid(failing[0].at("uuid").as_string());
    std::string dashed = uuid.substr(0, 8) + "-" + uuid.substr(8, 4) + "-" + uuid.substr(12, 4) + "-" +
                         uuid.substr(16, 4) + "-" + uuid.substr(20);
    CHECK(results("uuid=" + dashed).size() == 2);

    require_error(f.call(verb::get, "/whisperer/hook_events/?delivered=perhaps", f.alice), status::bad_request,
                  "whisperer_invalid", "delivered");
    require_error(f.call(verb::get, "/whisperer/hook_events/?created_date__gte=yesterday", f.alice),
                  status::bad_request, "whisperer_invalid", "created_date__gte");
    require_error(f.call(verb::get, "/whisperer/hook_events/?response_http_status=abc", f.alice), status::bad_request,
                  "whisperer_invalid", "response_http_status");
    require_error(f.call(verb::get, "/whisperer/hook_events/?webhook=-1", f.alice), status::bad_request,
                  "whisperer_invalid", "webhook");

    std::int64_t id = failing[0].at("id").as_int64();
    json::object detail = body_of(f.call(verb::get, delivery_path(id), f.alice)).as_object();
    for (const char* key : {"id", "uuid", "webhook", "event_type", "request_payload", "response_content",
                            "response_http_status", "delivered", "state", "retry_count", "response_time",
                            "last_failure", "last_error", "next_attempt_at", "created_date", "modified_date"})
        CHECK(detail.contains(key));
    CHECK(detail.at("state").as_string() == "pending");
    CHECK(detail.at("response_http_status").to_number<int>() == 503);
    CHECK(detail.at("last_failure").as_string() == "http_status");
    CHECK(detail.at("request_payload").at("event").at("uuid").as_string() == uuid);
    REQUIRE(detail.at("attempts").as_array().size() == 1);
    CHECK(detail.at("attempts").at(0).at("response_http_status").to_number<int>() == 503);
    require_error(f.call(verb::get, delivery_path(id + 1000), f.alice), status::not_found, "event_100_1");

    json::array queued = body_of(f.call(verb::get, "/whisperer/event_queues/", f.alice)).at("results").as_array();
    CHECK(queued.size() == 3);
    for (const auto& row : queued)
        CHECK(row.at("webhook").as_int64() == bad);
}

TEST_CASE("retry re-sends a delivery now; delivered and retrying ones need force", "[router]")
{
    Fixture f;
    std::atomic<int> status_code{200};
    test::Receiver receiver([&](const test::ReceivedRequest&) { return test::Reply{.status = status_code.load()}; });
    f.create(f.alice, hook_body(receiver.url("/hook")));
    auto event = f.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(f.dispatcher->wait_stored());
    auto delivery_id = [&] { return f.store.deliveries_of_event(event.event_uuid).front().id; };
    REQUIRE(eventually([&] { return f.store.find_delivery(delivery_id())->delivered(); }));
    std::int64_t id = delivery_id();

    auto refused = f.call(verb::post, delivery_path(id, "retry/"), f.alice, "{}");
    require_error(refused, status::not_acceptable, "event_100_3");
    require_error(f.call(verb::post, delivery_path(id, "retry/"), f.alice, ""), status::not_acceptable, "event_100_3");
    require_error(f.call(verb::post, delivery_path(id, "retry/"), f.alice, R"({"force": "yes"})"), status::bad_request,
                  "whisperer_invalid", "force");
    CHECK(receiver.count() == 1);

    auto forced = f.call(verb::post, delivery_path(id, "retry/"), f.alice, R"({"force": true})");
    REQUIRE(forced.result() == status::ok);
    json::object result = body_of(forced).as_object();
    CHECK(result.at("id").as_int64() == id);
    CHECK(result.at("delivered").as_bool());
    CHECK(result.at("attempt").at("response_http_status").to_number<int>() == 200);
    CHECK(receiver.count() == 2);

    status_code = 500;
    auto failing = f.dispatcher->deliver_data(json::object{{"id", 2}}, "package-created", {});
    REQUIRE(f.dispatcher->wait_stored());
    std::int64_t retrying = f.store.deliveries_of_event(failing.event_uuid).front().id;
    REQUIRE(eventually([&] { return f.store.find_delivery(retrying)->attempt_count == 1; }));
    require_error(f.call(verb::post, delivery_path(retrying, "retry/"), f.alice, "{}"), status::not_acceptable,
                  "event_100_6");
    status_code = 200;
    auto resent = f.call(verb::post, delivery_path(retrying, "retry/"), f.alice, R"({"force": true})");
    REQUIRE(resent.result() == status::ok);
    CHECK(body_of(resent).at("delivered").as_bool());
    CHECK(body_of(resent).at("attempt").at("trigger").as_string() == "manual");
    REQUIRE(eventually([&] { return f.store.find_delivery(retrying)->delivered(); }));

    require_error(f.call(verb::post, delivery_path(9999, "retry/"), f.alice, "{}"), status::not_found, "event_100_1");
}

TEST_CASE("the asynchronous handle answers exactly once and never throws on garbage", "[router]")
{
    Fixture f;
    const std::vector<std::string> bodies = {"",       "{}",       "null",   "{\"a\":",  "\x01\x02\xff",
                                             "[]",     "{\"target_url\": {\"x\": 1}}", "1e999999",
                                             std::string(100000, '{'), R"({"event_type": "package-created", "data": 1})"};
    const std::vector<std::string> targets = {"/whisperer/hooks/", "/whisperer/hooks/1/", "/whisperer/events/",
                                              "/whisperer/hook_events/1/retry/", "/whisperer/hooks/?limit=%ZZ",
                                              "/whisperer/hooks/99999999999999999999/", "*", "http://x/whisperer/hooks/",
                                              "/whisperer/../whisperer/hooks/", "/whisperer/hooks/?cursor=-5"};
    for (const std::string& target : targets) {
        for (const std::string& body : bodies) {
            for (verb method : {verb::get, verb::post, verb::patch, verb::put, verb::delete_, verb::options}) {
                http::Request request{method, target, 11};
                request.set(bhttp::field::authorization, "Token " + f.publisher);
                request.set(bhttp::field::content_type, "application/json");
                request.body() = body;
                request.prepare_payload();
                std::promise<http::Response> answered;
                std::atomic<int> calls{0};
                f.router->handle(std::move(request), [&](http::Response response) {
                    if (calls++ == 0)
                        answered.set_value(std::move(response));
                });
                auto future = answered.get_future();
                REQUIRE(future.wait_for(10s) == std::future_status::ready);
                http::Response response = future.get();
                INFO(target << " " << body.substr(0, 40));
                CHECK(response.result_int() >= 200);
                CHECK(response.result_int() < 500);
                if (response.result() != status::no_content)
                    CHECK_NOTHROW(json::parse(response.body()));
                std::this_thread::sleep_for(1ms);
                CHECK(calls == 1);
            }
        }
    }
}

TEST_CASE("a router refuses a prefix that does not start and end with a slash", "[router]")
{
    Fixture f;
    http::RouterOptions options;
    options.prefix = "api";
    CHECK_THROWS_AS(http::HooksRouter(f.registry, f.store, *f.dispatcher, f.authenticator, options),
                    std::invalid_argument);
}
