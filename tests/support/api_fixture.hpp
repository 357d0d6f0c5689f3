#pragma once
// A SQLite file, a registry of JSON event types, a dispatcher on two threads and the hooks router
// with tokens for two owners: what the reliability tests drive through the REST API.

#include "catch.hpp"
#include "eventually.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/dispatcher.hpp>
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

namespace whisperer::test {

/// Dispatcher options that make tests quick: short lease, poll and timeouts.
inline DispatcherOptions quick_dispatcher_options()
{
    DispatcherOptions o;
    o.lease = std::chrono::seconds(2);
    o.idle_poll = std::chrono::milliseconds(100);
    o.connect_timeout = std::chrono::seconds(2);
    o.request_timeout = std::chrono::seconds(2);
    // The receivers listen on loopback, which the default SSRF guard refuses.
    o.address_filter = [](const boost::asio::ip::address&) { return true; };
    return o;
}

/// The store, dispatcher and router; the dispatcher starts only when the test says so.
struct ApiFixture {
    TempDir dir;
    SqliteStore store;
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::optional<Dispatcher> dispatcher;
    http::TokenAuthenticator authenticator{store};
    std::optional<http::HooksRouter> router;
    std::vector<std::thread> threads;
    std::string alice, bob;

    explicit ApiFixture(DispatcherOptions options = quick_dispatcher_options(), SqliteOptions store_options = {},
                        http::RouterOptions router_options = {})
        : store(dir.file("whisperer.db"), std::move(store_options))
    {
        registry.register_json_event("package-created");
        dispatcher.emplace(io.get_executor(), registry, store, std::move(options));
        router.emplace(registry, store, *dispatcher, authenticator, std::move(router_options));
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
        alice = issue_token(store, "alice");
        bob = issue_token(store, "bob");
    }

    ~ApiFixture()
    {
        dispatcher->stop(std::chrono::seconds(1));
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }

    http::Response call(boost::beast::http::verb method, const std::string& target, const std::string& token,
                        std::optional<std::string> body = std::nullopt)
    {
        http::Request request{method, target, 11};
        request.set(boost::beast::http::field::authorization, "Token " + token);
        if (body) {
            request.set(boost::beast::http::field::content_type, "application/json");
            request.body() = *body;
        }
        request.prepare_payload();
        return router->handle(std::move(request));
    }

    /// Creates a hook of `token`'s owner for `target_url`, retrying every `retry_seconds`.
    std::int64_t create_hook(const std::string& token, const std::string& target_url, double retry_seconds = 0.01)
    {
        boost::json::object body{{"event_type", "package-created"},
                                 {"target_url", target_url},
                                 {"retry_countdown_config",
                                  {{"choice", "fixed"}, {"kwargs", {{"seconds", retry_seconds}}}}}};
        auto response = call(boost::beast::http::verb::post, "/whisperer/hooks/", token, boost::json::serialize(body));
        INFO(response.body());
        REQUIRE(response.result() == boost::beast::http::status::created);
        return boost::json::parse(response.body()).at("id").as_int64();
    }
};

/// The JSON body of `response`, checked to be JSON.
inline boost::json::value json_body(const http::Response& response)
{
    INFO(response.body());
    REQUIRE(response[boost::beast::http::field::content_type] == "application/json");
    return boost::json::parse(response.body());
}

/// Checks an error response: status, code and (when given) the field it names.
inline void require_api_error(const http::Response& response, boost::beast::http::status expected,
                              std::string_view code, std::string_view field = {})
{
    INFO(response.body());
    REQUIRE(response.result() == expected);
    boost::json::value body = json_body(response);
    CHECK(body.at("code").as_string() == code);
    if (!field.empty()) {
        REQUIRE(body.as_object().contains("field"));
        CHECK(body.at("field").as_string() == field);
    }
}

} // namespace whisperer::test
