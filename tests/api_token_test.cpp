// Issuing REST API tokens: random keys, stored only as their hash.

#include "catch.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/beast/http/field.hpp>

#include <optional>
#include <string>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;

TEST_CASE("an issued token is 40 hex digits, stored under its hash with its rights", "[api_token]")
{
    SqliteStore store(":memory:");
    std::string key = issue_token(store, "alice", false, true);
    CHECK(key.size() == 40);
    CHECK(key.find_first_not_of("0123456789abcdef") == std::string::npos);
    auto token = store.find_token(sha256_hex(key));
    REQUIRE(token);
    CHECK(token->owner == "alice");
    CHECK_FALSE(token->admin);
    CHECK(token->publisher);
    CHECK_FALSE(store.find_token(key));
    CHECK(issue_token(store, "alice") != key);
    CHECK_THROWS_AS(issue_token(store, ""), ValidationError);
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
