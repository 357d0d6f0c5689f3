// POST /hooks/{id}/rotate_secret/ through the router, and what receivers see during and after a
// rotation's grace period: deliveries to a real receiver, checked with verify_webhook.

#include "api_fixture.hpp"
#include "receiver.hpp"

#include <whisperer/hook.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/verify.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;
using boost::beast::http::status;
using boost::beast::http::verb;

namespace {

const std::string old_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

std::string rotate_path(std::int64_t hook_id)
{
    return "/whisperer/hooks/" + std::to_string(hook_id) + "/rotate_secret/";
}

/// A hook of alice's for `url` with `old_secret`, created through the API; returns its id.
std::int64_t hook_with_old_secret(ApiFixture& api, const std::string& url)
{
    json::object body{{"event_type", "package-created"},
                      {"target_url", url},
                      {"secret_key", old_secret},
                      {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 0.01}}}}}};
    auto response = api.call(verb::post, "/whisperer/hooks/", api.alice, json::serialize(body));
    INFO(response.body());
    REQUIRE(response.result() == status::created);
    return json::parse(response.body()).at("id").as_int64();
}

/// The headers of a received request as verify_webhook takes them; `keep` filters them.
template <class Keep>
std::vector<std::pair<std::string, std::string>> headers_of(const ReceivedRequest& request, Keep keep)
{
    std::vector<std::pair<std::string, std::string>> headers;
    for (const auto& [name, value] : request.headers)
        if (keep(name))
            headers.emplace_back(name, value);
    return headers;
}

/// Which of the Standard Webhooks and the X-Whisperer-Signature headers verify under `secret` alone.
struct Verdicts {
    VerifyStatus standard;
    VerifyStatus whisperer;
};

Verdicts verify_with(const ReceivedRequest& request, const std::string& secret)
{
    const std::vector<std::string> secrets{secret};
    const auto standard = headers_of(request, [](const std::string& name) { return name != "x-whisperer-signature"; });
    const auto legacy = headers_of(request, [](const std::string& name) { return !name.starts_with("webhook-"); });
    const VerifyResult by_standard = verify_webhook(standard, request.body, secrets);
    VerifyOptions accept_legacy;
    accept_legacy.accept_whisperer_signature = true;
    const VerifyResult by_legacy = verify_webhook(legacy, request.body, secrets, accept_legacy);
    CHECK(by_standard.scheme == SignatureScheme::standard_webhooks);
    CHECK(by_legacy.scheme == SignatureScheme::whisperer);
    return {by_standard.status, by_legacy.status};
}

std::size_t signature_count(const std::string& header)
{
    std::size_t count = header.empty() ? 0 : 1;
    for (char c : header)
        count += c == ' ' ? 1 : 0;
    return count;
}

/// Publishes one event and returns the request the receiver got for it.
ReceivedRequest deliver_one(ApiFixture& api, Receiver& receiver)
{
    const std::size_t before = receiver.count();
    api.dispatcher->deliver_event(json::object{{"id", 7}}, "package-created");
    REQUIRE(receiver.wait_for(before + 1));
    return receiver.requests().at(before);
}

} // namespace

TEST_CASE("rotate_secret answers the new secret once, and reads show it and the old one masked", "[router]")
{
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, "https://example.com/hook");

    auto response = api.call(verb::post, rotate_path(id), api.alice);
    REQUIRE(response.result() == status::ok);
    const json::object rotated = json_body(response).as_object();
    const std::string new_secret(rotated.at("secret_key").as_string());
    CHECK(new_secret.starts_with("whsec_"));
    CHECK(standard_signing_key(new_secret).size() == 32);
    CHECK(new_secret != old_secret);
    CHECK(rotated.at("id").as_int64() == id);
    const json::array& retired = rotated.at("retired_secrets").as_array();
    REQUIRE(retired.size() == 1);
    CHECK(retired[0].at("secret_key").as_string() == mask_secret(old_secret));
    CHECK(response.body().find(old_secret) == std::string::npos);

    // The store holds both; the default grace period is one day.
    const Hook stored = *api.store.find_hook(id);
    CHECK(stored.secret_key == new_secret);
    REQUIRE(stored.retired_secrets.size() == 1);
    CHECK(stored.retired_secrets[0].secret == old_secret);
    CHECK(stored.retired_secrets[0].expires > Clock::now() + 23h);
    CHECK(stored.retired_secrets[0].expires <= Clock::now() + 24h);

    for (const std::string& path : {"/whisperer/hooks/" + std::to_string(id) + "/", std::string("/whisperer/hooks/")}) {
        auto read = api.call(verb::get, path, api.alice);
        REQUIRE(read.result() == status::ok);
        CHECK(read.body().find(new_secret) == std::string::npos);
        CHECK(read.body().find(old_secret) == std::string::npos);
        CHECK(read.body().find(mask_secret(new_secret)) != std::string::npos);
        CHECK(read.body().find(mask_secret(old_secret)) != std::string::npos);
    }
}

TEST_CASE("rotate_secret takes a chosen secret and grace period", "[router]")
{
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, "https://example.com/hook");

    auto response = api.call(verb::post, rotate_path(id), api.alice,
                             R"({"secret_key": "chosen-secret-value", "grace_period": 3600})");
    REQUIRE(response.result() == status::ok);
    CHECK(json_body(response).at("secret_key").as_string() == "chosen-secret-value");
    const Hook stored = *api.store.find_hook(id);
    CHECK(stored.secret_key == "chosen-secret-value");
    REQUIRE(stored.retired_secrets.size() == 1);
    CHECK(stored.retired_secrets[0].expires <= Clock::now() + 1h);
    CHECK(stored.retired_secrets[0].expires > Clock::now() + 59min);

    // A zero grace period ends the old secrets at once.
    response = api.call(verb::post, rotate_path(id), api.alice, R"({"grace_period": 0})");
    REQUIRE(response.result() == status::ok);
    CHECK(json_body(response).at("retired_secrets").as_array().empty());
    CHECK(api.store.find_hook(id)->retired_secrets.empty());
}

TEST_CASE("rotate_secret refuses a bad body with a 400 naming the field, and changes nothing", "[router]")
{
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, "https://example.com/hook");
    const Hook before = *api.store.find_hook(id);

    const std::vector<std::pair<std::string, std::string>> cases{
        {R"({"grace_period": -1})", "grace_period"},
        {R"({"grace_period": 1.5})", "grace_period"},
        {R"({"grace_period": 60.0})", "grace_period"},
        {R"({"grace_period": "60"})", "grace_period"},
        {R"({"grace_period": true})", "grace_period"},
        {R"({"grace_period": 2592001})", "grace_period"},
        {R"({"grace_period": 18446744073709551615})", "grace_period"},
        {R"({"grace_period": 1e300})", "grace_period"},
        {R"({"secret_key": 42})", "secret_key"},
        {R"({"secret_key": "line\nbreak"})", "secret_key"},
        {R"({"secret_key": ")" + std::string(513, 's') + R"("})", "secret_key"},
        {R"({"secret_key": ")" + old_secret + R"("})", "secret_key"},
        {R"({"secret_key": "valid-new-secret", "grace_period": -5})", "grace_period"},
    };
    for (const auto& [body, field] : cases) {
        INFO(body);
        require_api_error(api.call(verb::post, rotate_path(id), api.alice, body), status::bad_request,
                          "whisperer_invalid", field);
    }
    require_api_error(api.call(verb::post, rotate_path(id), api.alice, "{not json"), status::bad_request,
                      "parse_error");
    require_api_error(api.call(verb::post, rotate_path(id), api.alice, "[1]"), status::bad_request, "parse_error");

    const Hook after = *api.store.find_hook(id);
    CHECK(after.secret_key == before.secret_key);
    CHECK(after.retired_secrets.empty());
    CHECK(after.modified == before.modified);

    // The largest grace period is accepted.
    auto accepted = api.call(verb::post, rotate_path(id), api.alice, R"({"grace_period": 2592000})");
    INFO(accepted.body());
    CHECK(accepted.result() == status::ok);
}

TEST_CASE("another owner's hook cannot be rotated: 404, and its secret stays", "[router]")
{
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, "https://example.com/hook");

    require_api_error(api.call(verb::post, rotate_path(id), api.bob, R"({"grace_period": 0})"), status::not_found,
                      "webhook_100_1");
    require_api_error(api.call(verb::post, rotate_path(id + 1000), api.alice), status::not_found, "webhook_100_1");
    const Hook after = *api.store.find_hook(id);
    CHECK(after.secret_key == old_secret);
    CHECK(after.retired_secrets.empty());

    auto wrong_method = api.call(verb::get, rotate_path(id), api.alice);
    CHECK(wrong_method.result() == status::method_not_allowed);
    CHECK(wrong_method[boost::beast::http::field::allow] == "POST");
}

TEST_CASE("during the grace period a delivery verifies under the old secret alone and under the new alone",
          "[router][secret_rotation]")
{
    Receiver receiver;
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, receiver.url("/hook"));
    api.dispatcher->start();

    const ReceivedRequest before = deliver_one(api, receiver);
    CHECK(signature_count(before.header("webhook-signature")) == 1);

    auto response = api.call(verb::post, rotate_path(id), api.alice);
    REQUIRE(response.result() == status::ok);
    const std::string new_secret(json_body(response).at("secret_key").as_string());

    const ReceivedRequest during = deliver_one(api, receiver);
    CHECK(signature_count(during.header("webhook-signature")) == 2);
    CHECK(signature_count(during.header("x-whisperer-signature")) == 2);
    CHECK(during.header("x-whisperer-signature").starts_with(whisperer_signature(new_secret, during.body) + " "));
    const Verdicts under_old = verify_with(during, old_secret);
    const Verdicts under_new = verify_with(during, new_secret);
    CHECK(under_old.standard == VerifyStatus::verified);
    CHECK(under_old.whisperer == VerifyStatus::verified);
    CHECK(under_new.standard == VerifyStatus::verified);
    CHECK(under_new.whisperer == VerifyStatus::verified);
    const Verdicts under_other = verify_with(during, "whsec_" + std::string(43, 'A') + "=");
    CHECK(under_other.standard == VerifyStatus::bad_signature);
    CHECK(under_other.whisperer == VerifyStatus::bad_signature);

    // The delivery made before the rotation verifies under the old secret only.
    CHECK(verify_with(before, old_secret).standard == VerifyStatus::verified);
    CHECK(verify_with(before, new_secret).standard == VerifyStatus::bad_signature);
}

TEST_CASE("after the grace period a delivery verifies under the new secret only", "[router][secret_rotation]")
{
    Receiver receiver;
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, receiver.url("/hook"));
    api.dispatcher->start();

    auto response = api.call(verb::post, rotate_path(id), api.alice, R"({"grace_period": 1})");
    REQUIRE(response.result() == status::ok);
    const std::string new_secret(json_body(response).at("secret_key").as_string());
    REQUIRE(api.store.find_hook(id)->retired_secrets.size() == 1);
    // Wait for the old secret to expire (a second), as a read shows it.
    REQUIRE(eventually([&] { return api.store.find_hook(id)->retired_secrets.empty(); }, 5s));

    const ReceivedRequest after = deliver_one(api, receiver);
    CHECK(signature_count(after.header("webhook-signature")) == 1);
    CHECK(signature_count(after.header("x-whisperer-signature")) == 1);
    const Verdicts under_new = verify_with(after, new_secret);
    const Verdicts under_old = verify_with(after, old_secret);
    CHECK(under_new.standard == VerifyStatus::verified);
    CHECK(under_new.whisperer == VerifyStatus::verified);
    CHECK(under_old.standard == VerifyStatus::bad_signature);
    CHECK(under_old.whisperer == VerifyStatus::bad_signature);
}

TEST_CASE("a delivery is signed with the new secret and the ten newest old ones, never more",
          "[router][secret_rotation]")
{
    Receiver receiver;
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, receiver.url("/hook"));
    api.dispatcher->start();

    // Through the C++ API, as a host without the router rotates.
    std::vector<std::string> secrets{old_secret};
    for (int i = 1; i <= 12; ++i) {
        SecretRotation rotation;
        rotation.new_secret = "rotated-secret-" + std::to_string(i);
        secrets.push_back(api.store.rotate_secret(id, rotation).secret_key);
    }
    REQUIRE(secrets.back() == "rotated-secret-12");

    const ReceivedRequest delivered = deliver_one(api, receiver);
    CHECK(signature_count(delivered.header("webhook-signature")) == 11);
    CHECK(signature_count(delivered.header("x-whisperer-signature")) == 11);
    for (std::size_t i = 0; i < secrets.size(); ++i) {
        INFO("secret " << i);
        const VerifyStatus expected = i >= 2 ? VerifyStatus::verified : VerifyStatus::bad_signature;
        const Verdicts verdicts = verify_with(delivered, secrets[i]);
        CHECK(verdicts.standard == expected);
        CHECK(verdicts.whisperer == expected);
    }
}

TEST_CASE("a chosen secret is held to the router's hook rules, as at creation", "[router]")
{
    ApiFixture api;
    const std::int64_t id = hook_with_old_secret(api, "https://example.com/hook");
    http::RouterOptions options;
    options.hook_rules.max_secret_length = 600;
    http::HooksRouter router{api.registry, api.store, *api.dispatcher, api.authenticator, options};
    auto rotate = [&](const std::string& secret) {
        http::Request request{verb::post, rotate_path(id), 11};
        request.set(boost::beast::http::field::authorization, "Token " + api.alice);
        request.set(boost::beast::http::field::content_type, "application/json");
        request.body() = json::serialize(json::object{{"secret_key", secret}});
        request.prepare_payload();
        return router.handle(std::move(request));
    };

    const std::string long_secret(600, 'l');
    CHECK(rotate(long_secret).result() == status::ok);
    CHECK(api.store.find_hook(id)->secret_key == long_secret);
    require_api_error(rotate(std::string(601, 'm')), status::bad_request, "whisperer_invalid", "secret_key");
    CHECK(api.store.find_hook(id)->secret_key == long_secret);
}
