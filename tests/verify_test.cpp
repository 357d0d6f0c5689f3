// The receiver-side verifier: published vectors, both schemes, and every reason to refuse.

#include "catch.hpp"

#include <whisperer/signature.hpp>
#include <whisperer/verify.hpp>

#include <string>
#include <utility>
#include <vector>

using namespace whisperer;
using namespace std::chrono_literals;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Vector {
    const char* secret;
    const char* id;
    std::int64_t timestamp;
    const char* body;
    const char* signature;
};

/// The test vectors published with the Standard Webhooks reference libraries.
constexpr Vector vectors[] = {
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     R"({"test": 2432232314})", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     R"({"email":"test@example.com","username":"test_user"})", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
};

std::chrono::system_clock::time_point at(std::int64_t unix_seconds)
{
    return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
}

VerifyOptions options_at(std::int64_t unix_seconds)
{
    VerifyOptions o;
    o.now = at(unix_seconds);
    return o;
}

Headers standard_headers(const Vector& v, std::string signature)
{
    return {{"webhook-id", v.id}, {"webhook-timestamp", std::to_string(v.timestamp)},
            {"webhook-signature", std::move(signature)}};
}

std::int64_t now_seconds()
{
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace

TEST_CASE("the published Standard Webhooks vectors verify", "[verify]")
{
    for (const Vector& v : vectors) {
        INFO(v.id);
        const std::vector<std::string> secrets{v.secret};
        const VerifyResult r =
            verify_webhook(standard_headers(v, v.signature), v.body, secrets, options_at(v.timestamp));
        CHECK(r);
        CHECK(r.status == VerifyStatus::verified);
        CHECK(r.scheme == SignatureScheme::standard_webhooks);
    }
}

TEST_CASE("header names are matched in any case and the current time is the default", "[verify]")
{
    const std::vector<std::string> secrets{generate_secret()};
    const std::int64_t ts = now_seconds();
    const std::string body = R"({"event":{"type":"package-created"}})";
    const Headers headers{{"Webhook-Id", "msg_1"},
                          {"WEBHOOK-TIMESTAMP", std::to_string(ts)},
                          {"Webhook-Signature", standard_signature(secrets[0], "msg_1", ts, body)}};
    CHECK(verify_webhook(headers, body, secrets));
}

TEST_CASE("one matching signature among several, and one secret among several, suffice", "[verify]")
{
    const Vector& v = vectors[0];
    const std::vector<std::string> rotated{vectors[1].secret, v.secret};
    const std::string header = "v1a,AAAA v1,bm90IGl0 " + std::string(v.signature) + " v2,whatever";
    CHECK(verify_webhook(standard_headers(v, header), v.body, rotated, options_at(v.timestamp)));

    // The header that the dispatcher sends during a rotation verifies with either secret alone.
    const std::vector<std::string> both{generate_secret(), generate_secret()};
    const std::string signed_both = standard_signature_header(both, v.id, v.timestamp, v.body);
    for (const std::string& secret : both) {
        const std::vector<std::string> one{secret};
        CHECK(verify_webhook(standard_headers(v, signed_both), v.body, one, options_at(v.timestamp)));
    }
}

TEST_CASE("a bad signature, a changed body, id or timestamp, or a wrong secret is refused", "[verify]")
{
    const Vector& v = vectors[0];
    const std::vector<std::string> secrets{v.secret};
    const auto options = options_at(v.timestamp);
    const auto status = [&](const Headers& h, std::string_view body, std::span<const std::string> s) {
        return verify_webhook(h, body, s, options).status;
    };
    CHECK(status(standard_headers(v, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"), v.body, secrets) ==
          VerifyStatus::bad_signature);
    CHECK(status(standard_headers(v, "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), v.body, secrets) ==
          VerifyStatus::bad_signature);
    CHECK(status(standard_headers(v, v.signature), R"({"test":2432232314})", secrets) == VerifyStatus::bad_signature);
    Headers other_id = standard_headers(v, v.signature);
    other_id[0].second = "msg_p5jXN8AQM9LWM0D4loKWxJeK";
    CHECK(status(other_id, v.body, secrets) == VerifyStatus::bad_signature);
    Headers other_time = standard_headers(v, v.signature);
    other_time[1].second = std::to_string(v.timestamp + 1);
    CHECK(status(other_time, v.body, secrets) == VerifyStatus::bad_signature);
    const std::vector<std::string> wrong{vectors[1].secret};
    CHECK(status(standard_headers(v, v.signature), v.body, wrong) == VerifyStatus::bad_signature);
    CHECK(status(standard_headers(v, v.signature), v.body, {}) == VerifyStatus::no_secret);
    // The signature is not a secret-free value: using it as the secret does not help.
    const std::vector<std::string> signature_as_secret{v.signature};
    CHECK(status(standard_headers(v, v.signature), v.body, signature_as_secret) == VerifyStatus::bad_signature);
}

TEST_CASE("a timestamp outside the tolerance is refused as stale or future, at the boundary", "[verify]")
{
    const Vector& v = vectors[0];
    const std::vector<std::string> secrets{v.secret};
    const auto at_offset = [&](std::int64_t now_minus_timestamp, std::chrono::seconds tolerance = 300s) {
        VerifyOptions o = options_at(v.timestamp + now_minus_timestamp);
        o.tolerance = tolerance;
        return verify_webhook(standard_headers(v, v.signature), v.body, secrets, o).status;
    };
    CHECK(at_offset(300) == VerifyStatus::verified);
    CHECK(at_offset(301) == VerifyStatus::stale);
    CHECK(at_offset(-300) == VerifyStatus::verified);
    CHECK(at_offset(-301) == VerifyStatus::future);
    CHECK(at_offset(86400) == VerifyStatus::stale);
    CHECK(at_offset(61, 60s) == VerifyStatus::stale);
    CHECK(at_offset(60, 60s) == VerifyStatus::verified);

    // Without an explicit time the system clock judges: a published vector is years old.
    const VerifyResult old = verify_webhook(standard_headers(v, v.signature), v.body, secrets);
    CHECK(old.status == VerifyStatus::stale);
    CHECK_FALSE(old);
}

TEST_CASE("missing or malformed headers and unknown versions only are refused", "[verify]")
{
    const Vector& v = vectors[0];
    const std::vector<std::string> secrets{v.secret};
    const auto options = options_at(v.timestamp);
    for (std::size_t dropped = 0; dropped < 3; ++dropped) {
        Headers h = standard_headers(v, v.signature);
        h.erase(h.begin() + static_cast<std::ptrdiff_t>(dropped));
        INFO("without " << standard_headers(v, v.signature)[dropped].first);
        const VerifyResult r = verify_webhook(h, v.body, secrets, options);
        CHECK(r.status == VerifyStatus::missing_headers);
        CHECK_FALSE(r.reason.empty());
    }
    CHECK(verify_webhook(Headers{}, v.body, secrets, options).status == VerifyStatus::missing_headers);

    for (const char* timestamp : {"", "abc", "1614265330.5", "0x60380b52", "1614265330s", "99999999999999999999"}) {
        INFO(timestamp);
        Headers h = standard_headers(v, v.signature);
        h[1].second = timestamp;
        CHECK(verify_webhook(h, v.body, secrets, options).status == VerifyStatus::invalid_timestamp);
    }
    for (const char* only_unknown : {"v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                                     "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v0,abc", "", "   ",
                                     "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}) {
        INFO(only_unknown);
        CHECK(verify_webhook(standard_headers(v, only_unknown), v.body, secrets, options).status ==
              VerifyStatus::no_known_version);
    }
}

TEST_CASE("X-Whisperer-Signature verifies the body alone only when the caller opts in", "[verify]")
{
    const std::vector<std::string> secrets{"It's a Secret to Everybody"};
    const Headers good{{"X-Whisperer-Signature", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}};
    VerifyOptions legacy;
    legacy.accept_whisperer_signature = true;
    const VerifyResult r = verify_webhook(good, "Hello, World!", secrets, legacy);
    CHECK(r);
    CHECK(r.scheme == SignatureScheme::whisperer);

    CHECK(verify_webhook(good, "Hello, World?", secrets, legacy).status == VerifyStatus::bad_signature);
    const Headers upper{{"x-whisperer-signature", "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17"}};
    CHECK(verify_webhook(upper, "Hello, World!", secrets, legacy).status == VerifyStatus::bad_signature);

    CHECK_FALSE(VerifyOptions{}.accept_whisperer_signature);
    CHECK(verify_webhook(good, "Hello, World!", secrets).status == VerifyStatus::missing_headers);
    CHECK(verify_webhook(good, "Hello, World!", secrets, VerifyOptions{}).status == VerifyStatus::missing_headers);
}

TEST_CASE("a captured delivery whose webhook-* headers are stripped is refused by default", "[verify]")
{
    // A delivery as whisperer sends it: both schemes. An attacker who captured it strips the
    // timestamped headers and replays the body with X-Whisperer-Signature alone.
    const std::vector<std::string> secrets{generate_secret()};
    const std::string body = R"({"event":{"type":"payment-captured"},"data":{"amount":100}})";
    const Headers replayed{{"Content-Type", "application/json"},
                           {"X-Whisperer-Signature", whisperer_signature(secrets[0], body)}};
    const VerifyResult r = verify_webhook(replayed, body, secrets);
    CHECK_FALSE(r);
    CHECK(r.status == VerifyStatus::missing_headers);

    const HeaderLookup lookup = [&](std::string_view name) -> std::optional<std::string_view> {
        if (name == "x-whisperer-signature")
            return replayed[1].second;
        return std::nullopt;
    };
    CHECK(verify_webhook(lookup, body, secrets).status == VerifyStatus::missing_headers);
}

TEST_CASE("no secret or an empty secret is refused, even with a signature made with the empty key", "[verify]")
{
    const std::string body = R"({"event":{"type":"package-created"}})";
    const std::int64_t ts = now_seconds();
    VerifyOptions legacy;
    legacy.accept_whisperer_signature = true;
    for (const std::string empty : {"", "whsec_"}) {
        INFO("secret '" << empty << "'");
        const std::vector<std::string> secrets{empty};
        const Headers standard{{"webhook-id", "msg_1"},
                               {"webhook-timestamp", std::to_string(ts)},
                               {"webhook-signature", standard_signature(empty, "msg_1", ts, body)}};
        const VerifyResult r = verify_webhook(standard, body, secrets);
        CHECK_FALSE(r);
        CHECK(r.status == VerifyStatus::no_secret);
        const Headers whisperer{{"X-Whisperer-Signature", whisperer_signature(empty, body)}};
        CHECK(verify_webhook(whisperer, body, secrets, legacy).status == VerifyStatus::no_secret);
        // An empty secret beside a good one is still refused: the list is a configuration error.
        const std::vector<std::string> mixed{generate_secret(), empty};
        CHECK(verify_webhook(standard, body, mixed).status == VerifyStatus::no_secret);
    }
    CHECK(verify_webhook(Headers{}, body, std::span<const std::string>{}).status == VerifyStatus::no_secret);
    CHECK(to_string(VerifyStatus::no_secret) == "no_secret");
}

TEST_CASE("the Standard Webhooks headers take precedence over X-Whisperer-Signature", "[verify]")
{
    const Vector& v = vectors[0];
    const std::vector<std::string> secrets{v.secret};
    Headers h = standard_headers(v, "v1,bm90IGl0IGF0IGFsbA==");
    h.emplace_back("X-Whisperer-Signature", whisperer_signature(v.secret, v.body));
    const VerifyResult r = verify_webhook(h, v.body, secrets, options_at(v.timestamp));
    CHECK(r.status == VerifyStatus::bad_signature);
    CHECK(r.scheme == SignatureScheme::standard_webhooks);
}

TEST_CASE("a header lookup adapts any header container", "[verify]")
{
    const Vector& v = vectors[1];
    const std::vector<std::string> secrets{v.secret};
    const HeaderLookup lookup = [&](std::string_view name) -> std::optional<std::string_view> {
        if (name == "webhook-id")
            return v.id;
        if (name == "webhook-timestamp")
            return "1649367553";
        if (name == "webhook-signature")
            return v.signature;
        return std::nullopt;
    };
    CHECK(verify_webhook(lookup, v.body, secrets, options_at(v.timestamp)));
    CHECK(to_string(VerifyStatus::stale) == "stale");
    CHECK(to_string(SignatureScheme::standard_webhooks) == "standard_webhooks");
}
