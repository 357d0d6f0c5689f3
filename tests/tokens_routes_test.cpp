// The admin routes of API tokens (GET/POST tokens/, DELETE tokens/{id}/) and who may call them.

#include "api_fixture.hpp"

#include <whisperer/signature.hpp>

// GCC before 14 warns about every member a designated initializer leaves to its default.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::test;
using boost::beast::http::status;
using boost::beast::http::verb;
namespace json = boost::json;

namespace {

struct TokensFixture : ApiFixture {
    std::string root = issue_token(store, "root", true);

    http::Response create(const json::object& body) { return call(verb::post, "/whisperer/tokens/", root, json::serialize(body)); }

    json::array listed()
    {
        auto response = call(verb::get, "/whisperer/tokens/", root);
        REQUIRE(response.result() == status::ok);
        return json_body(response).at("results").as_array();
    }
};

} // namespace

TEST_CASE("an admin creates a token through the API, sees its key once, and the key works", "[router][api_token]")
{
    TokensFixture f;
    auto response = f.create({{"owner", "carol"}, {"publisher", true}, {"expires_in", "30d"}});
    REQUIRE(response.result() == status::created);
    const json::value created = json_body(response);
    const std::string key(created.at("key").as_string());
    CHECK(key.starts_with("wsp_"));
    CHECK(created.at("owner").as_string() == "carol");
    CHECK(created.at("publisher").as_bool());
    CHECK_FALSE(created.at("admin").as_bool());
    CHECK(created.at("expires").is_string());
    CHECK(created.at("last_used").is_null());
    const std::int64_t id = created.at("id").as_int64();
    const auto stored = f.store.find_token(sha256_hex(key));
    REQUIRE(stored);
    CHECK(stored->id == id);
    REQUIRE(stored->expires);
    CHECK(*stored->expires > Clock::now() + std::chrono::days(29));

    // The key acts for its owner.
    CHECK(f.call(verb::get, "/whisperer/hooks/", key).result() == status::ok);

    // Listed without the key or its hash.
    const json::array tokens = f.listed();
    REQUIRE(tokens.size() == 4); // alice, bob, root and carol
    const std::string hash = sha256_hex(key);
    for (const json::value& token : tokens) {
        const std::string text = json::serialize(token);
        CHECK_FALSE(token.as_object().contains("key"));
        CHECK(text.find(key.substr(4)) == std::string::npos);
        CHECK(text.find(hash) == std::string::npos);
    }
    const json::value& carol = tokens.back();
    CHECK(carol.at("id").as_int64() == id);
    CHECK(carol.at("owner").as_string() == "carol");
    // The use above was recorded.
    CHECK(carol.at("last_used").is_string());
}

TEST_CASE("an admin revokes a token through the API and the token is refused from its next request",
          "[router][api_token]")
{
    TokensFixture f;
    REQUIRE(f.call(verb::get, "/whisperer/hooks/", f.alice).result() == status::ok);
    const std::int64_t alice_id = f.store.find_token(sha256_hex(f.alice))->id;

    CHECK(f.call(verb::delete_, "/whisperer/tokens/" + std::to_string(alice_id) + "/", f.root).result() ==
          status::no_content);
    require_api_error(f.call(verb::get, "/whisperer/hooks/", f.alice), status::unauthorized, "not_authenticated");
    require_api_error(f.call(verb::delete_, "/whisperer/tokens/" + std::to_string(alice_id) + "/", f.root),
                      status::not_found, "token_not_found");
    CHECK(f.listed().size() == 2);
}

TEST_CASE("the token routes answer 404 to anyone but an admin, whatever the method", "[router][api_token]")
{
    TokensFixture f;
    const std::string publisher = issue_token(f.store, "billing", false, true);
    const std::string root_id = std::to_string(f.store.find_token(sha256_hex(f.root))->id);
    for (const std::string& token : {f.alice, publisher}) {
        require_api_error(f.call(verb::get, "/whisperer/tokens/", token), status::not_found, "not_found");
        require_api_error(f.call(verb::post, "/whisperer/tokens/", token, R"({"owner": "alice", "admin": true})"),
                          status::not_found, "not_found");
        require_api_error(f.call(verb::delete_, "/whisperer/tokens/" + root_id + "/", token), status::not_found,
                          "not_found");
        require_api_error(f.call(verb::put, "/whisperer/tokens/", token, "{}"), status::not_found, "not_found");
    }
    CHECK(f.store.list_tokens().size() == 4);
    require_api_error(f.call(verb::get, "/whisperer/tokens/", "wsp_nonsense"), status::unauthorized,
                      "not_authenticated");
}

TEST_CASE("a token created through the API is checked: owner, rights, lifetime and expiry", "[router][api_token]")
{
    TokensFixture f;
    const std::size_t before = f.store.list_tokens().size();
    require_api_error(f.create({{"publisher", true}}), status::bad_request, "whisperer_invalid", "owner");
    require_api_error(f.create({{"owner", ""}, {"admin", true}}), status::bad_request, "whisperer_invalid", "owner");
    require_api_error(f.create({{"owner", 7}}), status::bad_request, "whisperer_invalid", "owner");
    require_api_error(f.create({{"owner", "carol"}, {"admin", "yes"}}), status::bad_request, "whisperer_invalid", "admin");
    require_api_error(f.create({{"owner", "carol"}, {"expires_in", "30x"}}), status::bad_request, "whisperer_invalid",
                      "expires_in");
    require_api_error(f.create({{"owner", "carol"}, {"expires_in", 30}}), status::bad_request, "whisperer_invalid",
                      "expires_in");
    require_api_error(f.create({{"owner", "carol"}, {"expires", "2001-01-01T00:00:00Z"}}), status::bad_request,
                      "whisperer_invalid", "expires");
    require_api_error(f.create({{"owner", "carol"}, {"expires", "tomorrow"}}), status::bad_request, "whisperer_invalid",
                      "expires");
    require_api_error(f.create({{"owner", "carol"}, {"expires_in", "1d"}, {"expires", "2100-01-01T00:00:00Z"}}),
                      status::bad_request, "whisperer_invalid", "expires");
    CHECK(f.store.list_tokens().size() == before);

    // New Year's Day after next, as a date alone: midnight UTC.
    const std::chrono::year_month_day today{std::chrono::floor<std::chrono::days>(Clock::now())};
    const std::string year = std::to_string(static_cast<int>(today.year()) + 2);
    auto response = f.create({{"owner", "carol"}, {"expires", year + "-01-01"}});
    REQUIRE(response.result() == status::created);
    CHECK(json_body(response).at("expires").as_string() == year + "-01-01T00:00:00.000000Z");
}

TEST_CASE("a token whose expiry has passed gets 401 from the router", "[router][api_token]")
{
    TokensFixture f;
    const std::string key = "wsp_" + std::string(40, '1');
    f.store.add_token(sha256_hex(key), ApiToken{.owner = "alice", .created = Clock::now() - std::chrono::hours(2),
                                                .expires = Clock::now() - std::chrono::hours(1)});
    require_api_error(f.call(verb::get, "/whisperer/hooks/", key), status::unauthorized, "not_authenticated");
}

namespace {

/// Maps `Authorization` to a principal the test chose, as a host's own authenticator would.
class FixedAuthenticator final : public http::Authenticator {
public:
    explicit FixedAuthenticator(http::Principal principal) : principal_(std::move(principal)) {}
    std::optional<http::Principal> authenticate(const http::Request&) override { return principal_; }

private:
    http::Principal principal_;
};

} // namespace

TEST_CASE("a principal that is not an admin and has no owner gets 403, never every owner's hooks",
          "[router][security]")
{
    ApiFixture f;
    f.create_hook(f.alice, "https://alice.example/");
    f.create_hook(f.bob, "https://bob.example/");
    auto get_hooks = [&](http::Principal principal) {
        FixedAuthenticator authenticator(std::move(principal));
        http::HooksRouter router(f.registry, f.store, *f.dispatcher, authenticator);
        return router.handle(http::Request{verb::get, "/whisperer/hooks/", 11});
    };

    for (bool publisher : {false, true}) {
        const http::Response response = get_hooks(http::Principal{.owner = "", .publisher = publisher});
        require_api_error(response, status::forbidden, "permission_denied");
        CHECK(response.body().find("alice") == std::string::npos);
    }
    // An explicit admin sees every owner, with or without an owner of its own.
    const http::Response admin = get_hooks(http::Principal{.owner = "", .admin = true});
    REQUIRE(admin.result() == status::ok);
    CHECK(json_body(admin).at("results").as_array().size() == 2);
    const http::Response alice = get_hooks(http::Principal{.owner = "alice"});
    REQUIRE(alice.result() == status::ok);
    CHECK(json_body(alice).at("results").as_array().size() == 1);
}
