// Issuing REST API tokens: random keys, stored only as their hash.

#include "catch.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/beast/http/field.hpp>

#include <chrono>
#include <optional>
#include <string>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using whisperer::test::TempDir;

TEST_CASE("an issued token is wsp_ and 40 hex digits, stored under its hash with its rights", "[api_token]")
{
    SqliteStore store(":memory:");
    std::string key = issue_token(store, "alice", false, true);
    REQUIRE(key.starts_with(token_key_prefix));
    CHECK(token_key_prefix == "wsp_");
    CHECK(key.size() == 44);
    CHECK(key.find_first_not_of("0123456789abcdef", token_key_prefix.size()) == std::string::npos);
    auto token = store.find_token(sha256_hex(key));
    REQUIRE(token);
    CHECK(token->owner == "alice");
    CHECK_FALSE(token->admin);
    CHECK(token->publisher);
    CHECK_FALSE(token->expires);
    CHECK_FALSE(token->last_used);
    CHECK(token->id > 0);
    CHECK_FALSE(store.find_token(key));
    CHECK(issue_token(store, "alice") != key);
    CHECK_THROWS_AS(issue_token(store, ""), ValidationError);
    CHECK_THROWS_AS(issue_token(store, "", true), ValidationError);
    CHECK_THROWS_AS(issue_token(store, "ali\nce"), ValidationError);
}

TEST_CASE("issue_token stores the grant's expiry and returns the token with its id", "[api_token]")
{
    SqliteStore store(":memory:");
    const TimePoint expires = Clock::now() + std::chrono::hours(12);
    const IssuedToken issued = issue_token(store, ApiToken{.owner = "alice", .admin = true, .expires = expires});
    const auto stored = store.find_token(sha256_hex(issued.key));
    REQUIRE(stored);
    CHECK(stored->id == issued.token.id);
    CHECK(stored->admin);
    REQUIRE(stored->expires);
    CHECK(std::chrono::abs(*stored->expires - expires) < std::chrono::microseconds(1));
    CHECK(issue_token(store, "bob").size() == 44);
    CHECK(store.list_tokens().size() == 2);
}

TEST_CASE("token lifetimes read a whole number and a unit; anything else is refused naming expires_in",
          "[api_token]")
{
    using std::chrono::seconds;
    CHECK(parse_token_lifetime("45m") == seconds(45 * 60));
    CHECK(parse_token_lifetime("12h") == seconds(12 * 3600));
    CHECK(parse_token_lifetime("30d") == seconds(30 * 86400));
    CHECK(parse_token_lifetime("2w") == seconds(14 * 86400));
    CHECK(parse_token_lifetime("90s") == seconds(90));
    CHECK(parse_token_lifetime("3650d") == max_token_lifetime);
    for (const char* bad : {"", "30", "d", "0d", "-1d", "+1d", "1.5d", "30x", "30 d", " 30d", "30D", "3651d",
                            "99999999999999999999d", "522w"}) {
        INFO(bad);
        try {
            parse_token_lifetime(bad);
            FAIL("accepted");
        } catch (const ValidationError& e) {
            CHECK(e.field() == "expires_in");
            CHECK(std::string(e.what()).find('"') != std::string::npos);
        }
    }
}

TEST_CASE("issue_token accepts an owner of 255 characters and refuses 256", "[api_token][limits]")
{
    SqliteStore store(":memory:");
    const std::string key = issue_token(store, std::string(255, 'o'));
    REQUIRE(store.find_token(sha256_hex(key)));
    CHECK(store.find_token(sha256_hex(key))->owner == std::string(255, 'o'));
    CHECK_THROWS_AS(issue_token(store, std::string(256, 'o')), ValidationError);
}

namespace {

std::optional<http::Principal> authenticate(http::Authenticator& authenticator, const std::string& authorization)
{
    http::Request request{boost::beast::http::verb::get, "/whisperer/hooks/", 11};
    request.set(boost::beast::http::field::authorization, authorization);
    return authenticator.authenticate(request);
}

} // namespace

TEST_CASE("a token key is accepted only exactly: one character changed, cut or added is refused", "[api_token]")
{
    SqliteStore store(":memory:");
    http::TokenAuthenticator authenticator(store);
    const std::string key = issue_token(store, "alice", false, true);

    auto principal = authenticate(authenticator, "Token " + key);
    REQUIRE(principal);
    CHECK(principal->owner == "alice");
    CHECK(principal->publisher);
    CHECK(authenticate(authenticator, "token  " + key + " "));

    for (std::size_t i = 0; i < key.size(); ++i) {
        std::string changed = key;
        changed[i] = changed[i] == '0' ? '1' : '0';
        INFO("position " << i);
        CHECK_FALSE(authenticate(authenticator, "Token " + changed));
    }
    CHECK_FALSE(authenticate(authenticator, "Token " + key.substr(0, key.size() - 1)));
    CHECK_FALSE(authenticate(authenticator, "Token " + key + "0"));
    CHECK_FALSE(authenticate(authenticator, "Bearer " + key));
    CHECK_FALSE(authenticate(authenticator, "Token"));
}

TEST_CASE("a token key of 256 characters is looked up; a longer one is refused", "[api_token][limits]")
{
    SqliteStore store(":memory:");
    http::TokenAuthenticator authenticator(store);
    // Keys are stored as their hash, so keys of any length can be planted for the test.
    const std::string longest(256, 'k');
    const std::string too_long(257, 'k');
    store.add_token(sha256_hex(longest), ApiToken{.owner = "alice"});
    store.add_token(sha256_hex(too_long), ApiToken{.owner = "bob"});

    auto principal = authenticate(authenticator, "Token " + longest);
    REQUIRE(principal);
    CHECK(principal->owner == "alice");
    CHECK_FALSE(authenticate(authenticator, "Token " + too_long));
}

TEST_CASE("a key issued before the wsp_ prefix still authenticates", "[api_token]")
{
    SqliteStore store(":memory:");
    http::TokenAuthenticator authenticator(store);
    // What issue_token made before: 40 hex digits, no prefix.
    const std::string legacy = "0123456789abcdef0123456789abcdef01234567";
    store.add_token(sha256_hex(legacy), ApiToken{.owner = "alice", .created = Clock::now()});
    auto principal = authenticate(authenticator, "Token " + legacy);
    REQUIRE(principal);
    CHECK(principal->owner == "alice");
    CHECK_FALSE(authenticate(authenticator, "Token wsp_" + legacy));
}

TEST_CASE("a token past its expiry is refused, one not yet expired is accepted", "[api_token]")
{
    SqliteStore store(":memory:");
    http::TokenAuthenticator authenticator(store);
    const TimePoint now = Clock::now();
    const std::string expired = "wsp_" + std::string(40, 'e');
    const std::string valid = "wsp_" + std::string(40, 'v');
    store.add_token(sha256_hex(expired), ApiToken{.owner = "alice", .created = now - std::chrono::hours(2),
                                                  .expires = now - std::chrono::seconds(1)});
    store.add_token(sha256_hex(valid), ApiToken{.owner = "bob", .created = now - std::chrono::hours(2),
                                                .expires = now + std::chrono::hours(1)});
    CHECK_FALSE(authenticate(authenticator, "Token " + expired));
    CHECK(authenticate(authenticator, "Token " + valid));
    // An expired token is not used: its last-used time stays unset.
    CHECK_FALSE(store.find_token(sha256_hex(expired))->last_used);
}

TEST_CASE("a revoked token is refused from the next request on, through another connection too",
          "[api_token]")
{
    TempDir dir;
    SqliteStore serving(dir.file("whisperer.db"));
    SqliteStore admin(dir.file("whisperer.db"));
    http::TokenAuthenticator authenticator(serving);
    const IssuedToken issued = issue_token(serving, ApiToken{.owner = "alice"});
    const std::string other = issue_token(serving, "bob");
    REQUIRE(authenticate(authenticator, "Token " + issued.key));

    CHECK(admin.revoke_token(issued.token.id));
    CHECK_FALSE(authenticate(authenticator, "Token " + issued.key));
    CHECK(authenticate(authenticator, "Token " + other));
    CHECK_FALSE(admin.revoke_token(issued.token.id));
}

TEST_CASE("a token's last use is written on its first use and then at most once a minute", "[api_token]")
{
    SqliteStore store(":memory:");
    http::TokenAuthenticator authenticator(store);
    const IssuedToken issued = issue_token(store, ApiToken{.owner = "alice"});
    const std::string hash = sha256_hex(issued.key);
    REQUIRE_FALSE(store.find_token(hash)->last_used);

    const TimePoint before = Clock::now();
    REQUIRE(authenticate(authenticator, "Token " + issued.key));
    const auto first = store.find_token(hash)->last_used;
    REQUIRE(first);
    CHECK(*first >= before - std::chrono::microseconds(1));

    // Used again within the minute: nothing is written.
    REQUIRE(authenticate(authenticator, "Token " + issued.key));
    CHECK(store.find_token(hash)->last_used == first);

    // Recorded more than a minute ago: the next use writes it again.
    ApiToken stale = *store.find_token(hash);
    stale.last_used = Clock::now() - http::TokenAuthenticator::last_used_resolution - std::chrono::seconds(1);
    store.add_token(hash, stale);
    REQUIRE(authenticate(authenticator, "Token " + issued.key));
    const auto again = store.find_token(hash)->last_used;
    REQUIRE(again);
    CHECK(*again >= *first);
}
