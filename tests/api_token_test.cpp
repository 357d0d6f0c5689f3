// Issuing REST API tokens: random keys, stored only as their hash.

#include "catch.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

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
