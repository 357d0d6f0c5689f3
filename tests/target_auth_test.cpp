// Target authentication (`config.auth`): the login tokens it caches, and the bounds of that cache.

#include "catch.hpp"
#include "receiver.hpp"

#include "detail/target_auth.hpp"

#include <whisperer/http_client.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::test;
using whisperer::detail::TargetAuth;

namespace {

/// A login endpoint that answers token n to its n-th login, and a client to reach it.
struct LoginFixture {
    std::atomic<int> logins{0};
    Receiver receiver{[this](const ReceivedRequest&) {
        return Reply{.status = 200, .body = R"({"key":"tok)" + std::to_string(++logins) + R"("})"};
    }};
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};
    HttpClient client{io.get_executor()};

    ~LoginFixture()
    {
        client.shutdown();
        work.reset();
        thread.join();
    }

    Hook hook(std::int64_t id, const std::string& password = "pw")
    {
        Hook h;
        h.id = id;
        h.config = {{"auth",
                     {{"auth_type", "token"}, {"url", receiver.url("/login")}, {"username", "u"}, {"password", password}}}};
        return h;
    }

    /// The Authorization header `auth` gives `hook`, waiting for its login if it needs one.
    std::string authorization(TargetAuth& auth, const Hook& hook)
    {
        std::promise<std::string> promise;
        auth.async_authorization(hook, client, [&](std::string authorization, std::string error) {
            CHECK(error.empty());
            promise.set_value(std::move(authorization));
        });
        auto future = promise.get_future();
        REQUIRE(future.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
        return future.get();
    }
};

} // namespace

TEST_CASE("a login token is cached per hook and credentials until invalidated", "[target_auth]")
{
    LoginFixture f;
    TargetAuth auth;
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok1");
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok1");
    CHECK(f.logins == 1);
    // New credentials log in again.
    CHECK(f.authorization(auth, f.hook(1, "new")) == "Token tok2");
    auth.invalidate(f.hook(1, "new"));
    CHECK(f.authorization(auth, f.hook(1, "new")) == "Token tok3");
    CHECK(f.logins == 3);
}

TEST_CASE("the login token cache holds at most its capacity, dropping the oldest token", "[target_auth]")
{
    LoginFixture f;
    TargetAuth auth(2);
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok1");
    CHECK(f.authorization(auth, f.hook(2)) == "Token tok2");
    CHECK(f.authorization(auth, f.hook(3)) == "Token tok3");
    CHECK(auth.cached() == 2);
    // Hook 1's token was the oldest: it was dropped, hooks 2 and 3 keep theirs.
    CHECK(f.authorization(auth, f.hook(2)) == "Token tok2");
    CHECK(f.authorization(auth, f.hook(3)) == "Token tok3");
    CHECK(f.logins == 3);
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok4");
    CHECK(auth.cached() == 2);

    // Credentials changed many times over stay within the capacity too.
    for (int i = 0; i < 20; ++i)
        f.authorization(auth, f.hook(5, "password " + std::to_string(i)));
    CHECK(auth.cached() == 2);
}

TEST_CASE("a cached login token is used only for the cache's lifetime", "[target_auth]")
{
    LoginFixture f;
    TargetAuth auth(TargetAuth::default_capacity, TargetAuth::Clock::duration::zero());
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok1");
    CHECK(f.authorization(auth, f.hook(1)) == "Token tok2");
    CHECK(f.logins == 2);
    CHECK(auth.cached() == 1);
}
