// The dispatcher's log lines name a hook by its id and origin, never by its URL: Slack, Discord
// and Teams URLs carry their secret in the path, other receivers in the query.

#include "api_fixture.hpp"
#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"

#include <mutex>
#include <string>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

TEST_CASE("attempt and disable log lines show the hook id and origin, never the URL's path or query",
          "[dispatcher][security]")
{
    std::mutex mutex;
    std::vector<std::string> lines;
    auto options = quick_dispatcher_options();
    options.log = [&](LogLevel, std::string_view line) {
        std::lock_guard lock(mutex);
        lines.emplace_back(line);
    };
    auto logged = [&] {
        std::lock_guard lock(mutex);
        return lines;
    };
    // 410 Gone: one failed attempt, and the hook is disabled.
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 410}; });
    ApiFixture api(options);
    const std::string path_secret = "T0SECRETPATH/B0SECRETPATH/xoxbPathSecret";
    const std::string query_secret = "QuerySecretValue";
    const std::int64_t hook =
        api.create_hook(api.alice, receiver.url("/services/" + path_secret + "?token=" + query_secret));
    api.dispatcher->start();
    api.dispatcher->deliver_data(boost::json::object{{"n", 1}}, "package-created", {});

    const std::string hook_named = "hook " + std::to_string(hook) + " at http://127.0.0.1:" +
                                   std::to_string(receiver.port());
    auto has_line = [&](const std::string& a, const std::string& b) {
        for (const std::string& line : logged())
            if (line.find(a) != std::string::npos && line.find(b) != std::string::npos)
                return true;
        return false;
    };
    REQUIRE(eventually([&] { return has_line(hook_named, "disabled"); }, 20s));
    CHECK(has_line(hook_named, "attempt 1"));
    REQUIRE(receiver.count() == 1);
    CHECK(receiver.requests().front().target == "/services/" + path_secret + "?token=" + query_secret);
    for (const std::string& line : logged()) {
        INFO(line);
        CHECK(line.find("SECRETPATH") == std::string::npos);
        CHECK(line.find("PathSecret") == std::string::npos);
        CHECK(line.find(query_secret) == std::string::npos);
        CHECK(line.find("/services") == std::string::npos);
    }
}
