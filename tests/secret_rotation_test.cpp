// Secret rotation as a rule on a hook's secrets: what retires, until when, what signs.

#include <whisperer/error.hpp>
#include <whisperer/secret_rotation.hpp>

#include "catch.hpp"

#include <string>

using namespace whisperer;
using namespace std::chrono_literals;

namespace {

const TimePoint t0{std::chrono::seconds{1'700'000'000}};

Hook hook_with_secret(std::string secret)
{
    Hook hook;
    hook.secret_key = std::move(secret);
    return hook;
}

std::string rejected_field(const SecretRotation& rotation)
{
    try {
        validate_rotation(rotation);
    } catch (const ValidationError& e) {
        return e.field();
    }
    return "";
}

} // namespace

TEST_CASE("a rotation makes the new secret current and retires the old one until the grace period ends",
          "[secret_rotation]")
{
    Hook hook = hook_with_secret("old-secret");
    apply_rotation(hook, "new-secret", 1h, t0);

    CHECK(hook.secret_key == "new-secret");
    REQUIRE(hook.retired_secrets.size() == 1);
    CHECK(hook.retired_secrets[0] == RetiredSecret{"old-secret", t0 + 1h});
    CHECK(signing_secrets(hook, t0) == std::vector<std::string>{"new-secret", "old-secret"});
    CHECK(signing_secrets(hook, t0 + 1h - 1s) == std::vector<std::string>{"new-secret", "old-secret"});
    CHECK(signing_secrets(hook, t0 + 1h) == std::vector<std::string>{"new-secret"});
}

TEST_CASE("retired secrets sign newest first, and a later rotation shortens none beyond its own grace",
          "[secret_rotation]")
{
    Hook hook = hook_with_secret("first");
    apply_rotation(hook, "second", 10h, t0);
    apply_rotation(hook, "third", 24h, t0 + 1h);

    CHECK(hook.retired_secrets == std::vector<RetiredSecret>{{"second", t0 + 25h}, {"first", t0 + 10h}});
    CHECK(signing_secrets(hook, t0 + 2h) == std::vector<std::string>{"third", "second", "first"});

    // A shorter grace period caps every older secret too.
    apply_rotation(hook, "fourth", 1h, t0 + 2h);
    CHECK(hook.retired_secrets ==
          std::vector<RetiredSecret>{{"third", t0 + 3h}, {"second", t0 + 3h}, {"first", t0 + 3h}});
}

TEST_CASE("a zero grace period ends the old secret and every older one at once", "[secret_rotation]")
{
    Hook hook = hook_with_secret("first");
    apply_rotation(hook, "second", 24h, t0);
    REQUIRE(hook.retired_secrets.size() == 1);

    apply_rotation(hook, "third", 0s, t0 + 1h);
    CHECK(hook.secret_key == "third");
    CHECK(hook.retired_secrets.empty());
    CHECK(signing_secrets(hook, t0 + 1h) == std::vector<std::string>{"third"});
}

TEST_CASE("at most ten retired secrets are kept, the oldest dropped first", "[secret_rotation]")
{
    Hook hook = hook_with_secret("secret-0");
    for (int i = 1; i <= 12; ++i)
        apply_rotation(hook, "secret-" + std::to_string(i), 24h, t0 + std::chrono::minutes(i));

    CHECK(hook.secret_key == "secret-12");
    REQUIRE(hook.retired_secrets.size() == max_retired_secrets);
    CHECK(max_retired_secrets == 10);
    CHECK(hook.retired_secrets.front().secret == "secret-11");
    CHECK(hook.retired_secrets.back().secret == "secret-2");
    CHECK(signing_secrets(hook, t0 + 1h).size() == 11);
}

TEST_CASE("expired retired secrets are dropped by the next rotation and never sign", "[secret_rotation]")
{
    Hook hook = hook_with_secret("first");
    apply_rotation(hook, "second", 1h, t0);
    CHECK(signing_secrets(hook, t0 + 2h) == std::vector<std::string>{"second"});

    apply_rotation(hook, "third", 24h, t0 + 2h);
    CHECK(hook.retired_secrets == std::vector<RetiredSecret>{{"second", t0 + 26h}});
}

TEST_CASE("a hook without a secret retires nothing, and a secret made current again signs once",
          "[secret_rotation]")
{
    Hook hook;
    apply_rotation(hook, "first", 24h, t0);
    CHECK(hook.secret_key == "first");
    CHECK(hook.retired_secrets.empty());

    apply_rotation(hook, "second", 24h, t0);
    apply_rotation(hook, "first", 24h, t0);
    CHECK(signing_secrets(hook, t0) == std::vector<std::string>{"first", "second"});
}

TEST_CASE("rotating to the current secret is refused", "[secret_rotation]")
{
    Hook hook = hook_with_secret("same");
    try {
        apply_rotation(hook, "same", 24h, t0);
        FAIL("no ValidationError");
    } catch (const ValidationError& e) {
        CHECK(e.field() == "secret_key");
    }
    CHECK(hook.secret_key == "same");
    CHECK(hook.retired_secrets.empty());
}

TEST_CASE("validate_rotation accepts grace periods from 0 to 30 days and secrets valid at creation",
          "[secret_rotation]")
{
    CHECK(rejected_field(SecretRotation{}).empty());
    CHECK(SecretRotation{}.grace_period == 24h);
    CHECK(rejected_field(SecretRotation{.grace_period = 0s}).empty());
    CHECK(rejected_field(SecretRotation{.grace_period = max_grace_period}).empty());
    CHECK(max_grace_period == std::chrono::days(30));
    CHECK(rejected_field(SecretRotation{.grace_period = max_grace_period + 1s}) == "grace_period");
    CHECK(rejected_field(SecretRotation{.grace_period = -1s}) == "grace_period");

    CHECK(rejected_field(SecretRotation{.new_secret = std::string(512, 's')}).empty());
    CHECK(rejected_field(SecretRotation{.new_secret = std::string(513, 's')}) == "secret_key");
    CHECK(rejected_field(SecretRotation{.new_secret = "line\nbreak"}) == "secret_key");
}
