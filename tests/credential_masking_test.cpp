// Credentials (config.auth.password, additional_headers values) never leave through the REST
// API or the log: every route that returns a hook masks them, a masked value sent back keeps
// the stored one, and the receiver still gets the real values.

#include "api_fixture.hpp"
#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/subscription_store.hpp>
#include <whisperer/hook.hpp>

#include "detail/base64.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using boost::beast::http::status;
using boost::beast::http::verb;
namespace json = boost::json;

namespace {

const std::string basic_password = "basic-pw-Q7mZ2xRt";
const std::string token_password = "token-pw-Vb4Nc8Lk";
const std::string api_key = "hdr-key-Hs3Pq9Wd";
const std::string other_header = "hdr-other-Jf6Ty1Gm";
const std::string login_token = "login-token-Rz5Xe2Ua";

/// Every credential value the tests store, which no response body nor log line may hold.
const std::vector<std::string> credentials{basic_password, token_password, api_key, other_header};

/// A hook body with basic auth and two additional headers.
json::object basic_hook_body(const std::string& target_url)
{
    return json::object{
        {"event_type", "package-created"},
        {"target_url", target_url},
        {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 0.01}}}}},
        {"additional_headers", {{"X-Api-Key", api_key}, {"X-Other", other_header}}},
        {"config", {{"auth", {{"auth_type", "basic"}, {"username", "alice-user"}, {"password", basic_password}}}}},
    };
}

/// A hook body with token login against `login_url`.
json::object token_hook_body(const std::string& target_url, const std::string& login_url)
{
    return json::object{
        {"event_type", "package-created"},
        {"target_url", target_url},
        {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 0.01}}}}},
        {"config",
         {{"auth", {{"auth_type", "token"}, {"url", login_url}, {"username", "bob-user"}, {"password", token_password}}}}},
    };
}

void require_no_credential(const std::string& text)
{
    for (const std::string& credential : credentials) {
        INFO(text);
        CHECK(text.find(credential) == std::string::npos);
    }
}

/// Log lines of a dispatcher, kept.
struct LogLines {
    std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
    std::shared_ptr<std::vector<std::string>> lines = std::make_shared<std::vector<std::string>>();

    LogHandler handler() const
    {
        return [mutex = mutex, lines = lines](LogLevel, std::string_view line) {
            std::lock_guard lock(*mutex);
            lines->emplace_back(line);
        };
    }
    std::vector<std::string> all() const
    {
        std::lock_guard lock(*mutex);
        return *lines;
    }
};

std::int64_t created_id(const http::Response& response)
{
    INFO(response.body());
    REQUIRE(response.result() == status::created);
    return json::parse(response.body()).at("id").as_int64();
}

} // namespace

TEST_CASE("no route that returns a hook shows a stored password or header value", "[credentials]")
{
    ApiFixture api;
    const std::string admin = issue_token(api.store, "root", true);
    const std::string base = "/whisperer/hooks/";

    const auto basic = api.call(verb::post, base, api.alice, json::serialize(basic_hook_body("https://a.example/h")));
    require_no_credential(basic.body());
    const std::int64_t basic_id = created_id(basic);
    const auto token = api.call(verb::post, base, api.alice,
                                json::serialize(token_hook_body("https://b.example/h", "https://b.example/login")));
    require_no_credential(token.body());
    const std::int64_t token_id = created_id(token);

    struct Route {
        const char* name;
        verb method;
        std::function<std::string(std::int64_t)> target;
        const std::string* caller;
        std::function<std::string(std::int64_t)> body;
    };
    const auto hook_path = [&](std::int64_t id) { return base + std::to_string(id) + "/"; };
    const auto nothing = [](std::int64_t) { return std::string(); };
    const std::vector<Route> routes{
        {"list", verb::get, [&](std::int64_t) { return base; }, &api.alice, nothing},
        {"list filtered", verb::get, [&](std::int64_t) { return base + "?event_type=package-created"; }, &api.alice,
         nothing},
        {"read", verb::get, hook_path, &api.alice, nothing},
        {"admin list", verb::get, [&](std::int64_t) { return base + "?owner=alice"; }, &admin, nothing},
        {"admin read", verb::get, hook_path, &admin, nothing},
        {"replace", verb::put, hook_path, &api.alice,
         [&](std::int64_t id) {
             json::object body = id == basic_id ? basic_hook_body("https://a.example/put")
                                                : token_hook_body("https://b.example/put", "https://b.example/login");
             return json::serialize(body);
         }},
        {"patch", verb::patch, hook_path, &api.alice,
         [](std::int64_t) { return std::string(R"({"is_active": true})"); }},
        {"admin patch", verb::patch, hook_path, &admin, [](std::int64_t) { return std::string(R"({})"); }},
        {"rotate", verb::post, [&](std::int64_t id) { return hook_path(id) + "rotate_secret/"; }, &api.alice,
         [](std::int64_t) { return std::string(R"({"grace_period": 60})"); }},
    };
    for (const std::int64_t id : {basic_id, token_id}) {
        for (const Route& route : routes) {
            DYNAMIC_SECTION(route.name << " of hook " << id)
            {
                const std::string body = route.body(id);
                const auto response = api.call(route.method, route.target(id), *route.caller,
                                               body.empty() && route.method == verb::get ? std::nullopt
                                                                                         : std::optional{body});
                INFO(response.body());
                REQUIRE(response.result() == status::ok);
                require_no_credential(response.body());
                // The mark shows where each credential is, and the header names stay visible.
                json::value shown = json::parse(response.body());
                json::object hook = shown.as_object().contains("results")
                                        ? shown.at("results").as_array().at(id == basic_id ? 0 : 1).as_object()
                                        : shown.as_object();
                CHECK(hook.at("config").at("auth").at("password") == "****");
                if (id == basic_id) {
                    CHECK(hook.at("additional_headers").at("X-Api-Key") == "****");
                    CHECK(hook.at("additional_headers").at("X-Other") == "****");
                }
            }
        }
    }
}

TEST_CASE("masked_hook masks every credential and keeps names and empty values", "[credentials]")
{
    Hook hook;
    hook.secret_key = "whsec_abcdefghijklmnop";
    hook.retired_secrets.push_back({"old-secret-123456789", Clock::now()});
    hook.additional_headers = {{"X-Api-Key", api_key}, {"X-Empty", ""}};
    hook.config = {{"auth", {{"auth_type", "basic"}, {"username", "u"}, {"password", basic_password}}},
                   {"tenant", "acme"}};
    const Hook masked = masked_hook(hook);
    CHECK(masked.secret_key == "****mnop");
    CHECK(masked.retired_secrets.at(0).secret == "****6789");
    CHECK(masked.additional_headers.at("X-Api-Key") == "****");
    CHECK(masked.additional_headers.at("X-Empty") == "");
    CHECK(masked.config.at("auth").at("password") == "****");
    CHECK(masked.config.at("auth").at("username") == "u");
    CHECK(masked.config.at("tenant") == "acme");
}

TEST_CASE("a masked credential sent back keeps the stored one and the receiver still gets it", "[credentials]")
{
    LogLines log;
    DispatcherOptions options = quick_dispatcher_options();
    options.log = log.handler();
    ApiFixture api(options);
    const std::string publisher = issue_token(api.store, "publisher", false, true);
    std::vector<std::string> login_bodies;
    std::mutex login_mutex;
    Receiver receiver([&](const ReceivedRequest& request) {
        Reply reply;
        if (request.target == "/login") {
            std::lock_guard lock(login_mutex);
            login_bodies.push_back(request.body);
            reply.body = R"({"key": ")" + login_token + R"("})";
            reply.headers.emplace_back("Content-Type", "application/json");
        } else if (request.target == "/fails") {
            reply.status = 500;
        }
        return reply;
    });
    api.dispatcher->start();

    const std::int64_t basic_id = created_id(api.call(verb::post, "/whisperer/hooks/", api.alice,
                                                      json::serialize(basic_hook_body(receiver.url("/basic")))));
    const std::int64_t token_id = created_id(api.call(
        verb::post, "/whisperer/hooks/", api.bob,
        json::serialize(token_hook_body(receiver.url("/token"), receiver.url("/login")))));
    const std::string basic_path = "/whisperer/hooks/" + std::to_string(basic_id) + "/";
    const std::string token_path = "/whisperer/hooks/" + std::to_string(token_id) + "/";

    SECTION("PUT of a read with one field edited")
    {
        json::object read = json::parse(api.call(verb::get, basic_path, api.alice).body()).as_object();
        read["retry_countdown_config"] = json::object{{"choice", "fixed"}, {"kwargs", {{"seconds", 0.02}}}};
        const auto put = api.call(verb::put, basic_path, api.alice, json::serialize(read));
        INFO(put.body());
        REQUIRE(put.result() == status::ok);
        require_no_credential(put.body());
        json::object token_read = json::parse(api.call(verb::get, token_path, api.bob).body()).as_object();
        const auto token_put = api.call(verb::put, token_path, api.bob, json::serialize(token_read));
        REQUIRE(token_put.result() == status::ok);
    }
    SECTION("PATCH of the masked values, one header replaced")
    {
        const auto patch = api.call(
            verb::patch, basic_path, api.alice,
            R"({"additional_headers": {"X-Api-Key": "****", "X-Other": "replaced-value"},
                "config": {"auth": {"auth_type": "basic", "username": "alice-user", "password": "****"}}})");
        INFO(patch.body());
        REQUIRE(patch.result() == status::ok);
        CHECK(json::parse(patch.body()).at("additional_headers").at("X-Other") == "****");
        const auto token_patch = api.call(
            verb::patch, token_path, api.bob,
            R"({"config": {"auth": {"auth_type": "token", "url": ")" + receiver.url("/login") +
                R"(", "username": "bob-user", "password": "****"}}})");
        INFO(token_patch.body());
        REQUIRE(token_patch.result() == status::ok);
    }
    const bool replaced = api.store.find_hook(basic_id)->additional_headers.at("X-Other") == "replaced-value";

    const auto publish = api.call(verb::post, "/whisperer/events/", publisher,
                                  R"({"event_type": "package-created", "data": {"id": 1}})");
    INFO(publish.body());
    REQUIRE(publish.result() == status::accepted);
    REQUIRE(eventually([&] { return receiver.count() >= 3; }));
    std::optional<ReceivedRequest> to_basic, to_token;
    for (const ReceivedRequest& request : receiver.requests()) {
        if (request.target == "/basic")
            to_basic = request;
        if (request.target == "/token")
            to_token = request;
    }
    REQUIRE(to_basic);
    REQUIRE(to_token);
    CHECK(to_basic->header("authorization") == "Basic " + detail::base64_encode("alice-user:" + basic_password));
    CHECK(to_basic->header("x-api-key") == api_key);
    CHECK(to_basic->header("x-other") == (replaced ? "replaced-value" : other_header));
    CHECK(to_token->header("authorization") == "Token " + login_token);
    {
        std::lock_guard lock(login_mutex);
        REQUIRE(login_bodies.size() == 1);
        CHECK(login_bodies[0].find("password=" + token_password) != std::string::npos);
    }

    // A failing delivery and its retries log too; no line holds a credential.
    const auto to_failing = api.call(verb::patch, basic_path, api.alice,
                                     R"({"target_url": ")" + receiver.url("/fails") + R"("})");
    REQUIRE(to_failing.result() == status::ok);
    api.call(verb::post, "/whisperer/events/", publisher, R"({"event_type": "package-created", "data": {"id": 2}})");
    REQUIRE(eventually([&] {
        auto requests = receiver.requests();
        return std::count_if(requests.begin(), requests.end(),
                             [](const ReceivedRequest& r) { return r.target == "/fails"; }) >= 2;
    }));
    const auto lines = log.all();
    CHECK_FALSE(lines.empty());
    for (const std::string& line : lines)
        require_no_credential(line);
}

TEST_CASE("a mask for a credential the hook does not have, a sealed-looking value or a removed secret is refused",
          "[credentials]")
{
    ApiFixture api;
    const std::int64_t id = created_id(
        api.call(verb::post, "/whisperer/hooks/", api.alice, json::serialize(basic_hook_body("https://a.example/h"))));
    const std::string path = "/whisperer/hooks/" + std::to_string(id) + "/";
    const Hook before = *api.store.find_hook(id);

    require_api_error(api.call(verb::patch, path, api.alice, R"({"additional_headers": {"X-New": "****"}})"),
                      status::bad_request, "whisperer_invalid", "additional_headers.X-New");
    json::object create = basic_hook_body("https://a.example/other");
    create["config"].as_object()["auth"].as_object()["password"] = "****";
    require_api_error(api.call(verb::post, "/whisperer/hooks/", api.alice, json::serialize(create)),
                      status::bad_request, "whisperer_invalid", "config.auth.password");
    require_api_error(api.call(verb::patch, path, api.alice, R"({"secret_key": null})"), status::bad_request,
                      "whisperer_invalid", "secret_key");
    require_api_error(api.call(verb::patch, path, api.alice, R"({"secret_key": ""})"), status::bad_request,
                      "whisperer_invalid", "secret_key");
    require_api_error(api.call(verb::patch, path, api.alice, R"({"secret_key": "enc:v1:AAAA"})"),
                      status::bad_request, "whisperer_invalid", "secret_key");
    require_api_error(api.call(verb::patch, path, api.alice, R"({"additional_headers": {"X-Api-Key": "enc:v2:x"}})"),
                      status::bad_request, "whisperer_invalid", "additional_headers.X-Api-Key");
    json::object sealed_password = basic_hook_body("https://a.example/sealed");
    sealed_password["config"].as_object()["auth"].as_object()["password"] = "enc:v2:AAAA";
    require_api_error(api.call(verb::post, "/whisperer/hooks/", api.alice, json::serialize(sealed_password)),
                      status::bad_request, "whisperer_invalid", "config.auth.password");

    const Hook after = *api.store.find_hook(id);
    CHECK(after.secret_key == before.secret_key);
    CHECK(after.additional_headers == before.additional_headers);
    CHECK(after.config == before.config);
}
