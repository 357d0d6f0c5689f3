#include "catch.hpp"
#include "rejection.hpp"

#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>

using namespace whisperer;
namespace json = boost::json;
using whisperer::test::contains;
using whisperer::test::rejection_of;

namespace {

/// The hook of the Quick Start page, as its owner would create it.
Hook seed_hook()
{
    Hook hook;
    hook.owner = "alice";
    hook.event_type = "package-created";
    hook.secret_key = "<secret>";
    hook.target_url = "https://example.com/";
    hook.retry_countdown_config = json::parse(R"({"choice":"linear","kwargs":{"base":60,"limit":600}})").as_object();
    return hook;
}

Registry seed_registry()
{
    Registry registry;
    registry.register_json_event("package-created");
    return registry;
}

/// The field that validate_hook names for `hook`, or "<accepted>".
std::string rejected_field(const Hook& hook, const HookRules& rules = {})
{
    auto rejection = rejection_of([&] { validate_hook(hook, rules); });
    return rejection ? rejection->field : std::string("<accepted>");
}

Hook with_url(std::string url)
{
    Hook hook = seed_hook();
    hook.target_url = std::move(url);
    return hook;
}

Hook with_headers(json::object headers)
{
    Hook hook = seed_hook();
    hook.additional_headers = std::move(headers);
    return hook;
}

Hook with_auth(std::string_view auth)
{
    Hook hook = seed_hook();
    hook.config = {{"auth", json::parse(auth)}};
    return hook;
}

/// A host countdown policy: always ten seconds.
class TenSeconds final : public CountdownPolicy {
public:
    std::chrono::milliseconds delay(unsigned) const override { return std::chrono::seconds(10); }
};

} // namespace

// --- the whole hook ------------------------------------------------------------------------------

TEST_CASE("validate_hook accepts the Quick Start page's hook", "[hook]")
{
    const Registry registry = seed_registry();
    CHECK_NOTHROW(validate_hook(seed_hook()));
    CHECK_NOTHROW(validate_hook(seed_hook(), HookRules{.registry = &registry}));
}

TEST_CASE("validate_hook accepts a hook with every optional part set", "[hook]")
{
    const Registry registry = seed_registry();
    const std::set<std::string, std::less<>> callbacks = {"on_attempt"};
    Hook hook = seed_hook();
    hook.callback = "on_attempt";
    hook.additional_headers = {{"X-Tenant", "alice"}, {"Authorization", "Bearer abc"}, {"X-Trace", "a\tb"}};
    hook.config = {{"region", "eu"}, {"priority", 3}};
    CHECK_NOTHROW(validate_hook(hook, HookRules{.registry = &registry, .callbacks = &callbacks}));
}

TEST_CASE("validate_hook requires an owner", "[hook]")
{
    Hook hook = seed_hook();
    hook.owner.clear();
    CHECK(rejected_field(hook) == "owner");
}

// --- target_url ----------------------------------------------------------------------------------

TEST_CASE("validate_hook accepts absolute http and https URLs", "[hook]")
{
    for (const char* url : {"https://example.com/", "http://example.com", "https://example.com:8443/hooks/in?x=1",
                            "http://127.0.0.1:8080/hook", "http://[::1]:8080/hook", "HTTPS://EXAMPLE.COM/",
                            "https://sub.example.co.uk/a%20b", "https://example.com:65535/", "https://example.com:1/"}) {
        INFO(url);
        CHECK(rejected_field(with_url(url)) == "<accepted>");
    }
}

TEST_CASE("validate_hook rejects target URLs that are not absolute http(s) URLs with a host", "[hook]")
{
    for (const char* url : {"", "/hooks/", "hooks/in", "example.com/hook", "//example.com/hook",
                            "ftp://example.com/", "javascript:alert(1)", "file:///etc/passwd", "mailto:a@example.com",
                            "http:///path", "https://", "http:", "https://exa mple.com/", "https://example.com/\r\nX: y",
                            "https://example.com:99999/", "https://example.com:65536/", "https://example.com:0/",
                            "https://example.com:123456789012345678901/"}) {
        INFO(url);
        CHECK(rejected_field(with_url(url)) == "target_url");
    }
}

TEST_CASE("validate_hook rejects target URLs that carry credentials", "[hook]")
{
    for (const char* url : {"https://user:pass@example.com/", "https://user@example.com/", "http://:pw@example.com/"}) {
        INFO(url);
        auto rejection = rejection_of([&] { validate_hook(with_url(url)); });
        REQUIRE(rejection);
        CHECK(rejection->field == "target_url");
        CHECK(contains(rejection->message, "credentials"));
    }
}

TEST_CASE("validate_hook rejects target URLs with a percent-encoded host", "[hook]")
{
    // Found by fuzzing: validation read "1.%31.256" decoded, as the address 1.1.1.0, while the
    // dispatcher resolves hosts as written.
    for (const char* url : {"http://1.%31.256/", "https://ex%61mple.com/", "http://%31%32%37.0.0.1/"}) {
        INFO(url);
        auto rejection = rejection_of([&] { validate_hook(with_url(url)); });
        REQUIRE(rejection);
        CHECK(rejection->field == "target_url");
        CHECK(contains(rejection->message, "percent-encode"));
    }
    CHECK(rejected_field(with_url("https://example.com/a%20b?q=%31")) == "<accepted>");
}

TEST_CASE("validate_hook enforces the maximum URL length", "[hook]")
{
    const std::string prefix = "https://example.com/";
    CHECK(rejected_field(with_url(prefix + std::string(2048 - prefix.size(), 'a'))) == "<accepted>");
    CHECK(rejected_field(with_url(prefix + std::string(2049 - prefix.size(), 'a'))) == "target_url");

    const HookRules strict{.max_url_length = 255};
    CHECK(rejected_field(with_url(prefix + std::string(255 - prefix.size(), 'a')), strict) == "<accepted>");
    CHECK(rejected_field(with_url(prefix + std::string(256 - prefix.size(), 'a')), strict) == "target_url");
}

// --- event_type ----------------------------------------------------------------------------------

TEST_CASE("validate_hook rejects an unregistered event type when given a registry", "[hook]")
{
    const Registry registry = seed_registry();
    Hook hook = seed_hook();
    hook.event_type = "x";
    auto rejection = rejection_of([&] { validate_hook(hook, HookRules{.registry = &registry}); });
    REQUIRE(rejection);
    CHECK(rejection->field == "event_type");
    CHECK(rejection->message == "\"x\" is not a valid choice.");

    // Without a registry any well-formed type is accepted.
    CHECK(rejected_field(hook) == "<accepted>");
}

TEST_CASE("validate_hook rejects a malformed event type with or without a registry", "[hook]")
{
    const Registry registry = seed_registry();
    for (const char* type : {"", "package created", "a/b"}) {
        INFO(type);
        Hook hook = seed_hook();
        hook.event_type = type;
        CHECK(rejected_field(hook) == "event_type");
        CHECK(rejected_field(hook, HookRules{.registry = &registry}) == "event_type");
    }
}

// --- secret and countdown ------------------------------------------------------------------------

TEST_CASE("validate_hook limits the secret's length and rejects control characters in it", "[hook]")
{
    Hook hook = seed_hook();
    hook.secret_key = std::string(512, 's');
    CHECK(rejected_field(hook) == "<accepted>");
    hook.secret_key = std::string(513, 's');
    CHECK(rejected_field(hook) == "secret_key");
    hook.secret_key = "line\nbreak";
    CHECK(rejected_field(hook) == "secret_key");
    hook.secret_key.clear();
    CHECK(rejected_field(hook) == "<accepted>");
}

TEST_CASE("validate_hook validates the retry countdown config", "[hook]")
{
    Hook hook = seed_hook();
    hook.retry_countdown_config = json::parse(R"({"choice":"linear","kwargs":{"base":-1}})").as_object();
    CHECK(rejected_field(hook) == "retry_countdown_config.kwargs.base");

    hook.retry_countdown_config = {};
    CHECK(rejected_field(hook) == "retry_countdown_config.choice");

    hook.retry_countdown_config = json::parse(R"({"choice":"stepped","kwargs":{}})").as_object();
    CHECK(rejected_field(hook) == "retry_countdown_config.choice");
}

TEST_CASE("validate_hook uses the host's countdown registry when given one", "[hook]")
{
    CountdownRegistry countdowns;
    countdowns.register_choice("ten", [](const json::object&) { return std::make_shared<const TenSeconds>(); });
    Hook hook = seed_hook();
    hook.retry_countdown_config = json::parse(R"({"choice":"ten","kwargs":{}})").as_object();
    CHECK(rejected_field(hook) == "retry_countdown_config.choice");
    CHECK(rejected_field(hook, HookRules{.countdowns = &countdowns}) == "<accepted>");
}

// --- additional_headers --------------------------------------------------------------------------

TEST_CASE("validate_hook rejects header values with CR, LF or other control characters", "[hook]")
{
    using namespace std::string_literals;
    for (const std::string& value : {"a\r\nX-Evil: 1"s, "a\nb"s, "a\rb"s, "nul\0byte"s, "bell\x07"s, "del\x7f"s}) {
        INFO(value);
        auto rejection = rejection_of([&] { validate_hook(with_headers({{"X-Tenant", value}})); });
        REQUIRE(rejection);
        CHECK(rejection->field == "additional_headers.X-Tenant");
    }
    CHECK(rejected_field(with_headers({{"X-Tenant", "tab\tis fine"}})) == "<accepted>");
    CHECK(rejected_field(with_headers({{"X-Tenant", ""}})) == "<accepted>");
}

TEST_CASE("validate_hook rejects header names that are not HTTP tokens", "[hook]")
{
    for (const char* name : {"X Tenant", "X-Tenant:", "", "X-T\xc3\xa9nant", "X-Tenant\r\n", "(comment)", "a/b"}) {
        INFO(name);
        CHECK(rejected_field(with_headers({{name, "v"}})) == "additional_headers." + std::string(name));
    }
    CHECK(rejected_field(with_headers({{"X-Custom_Header.v1~!#$%&'*+^`|", "v"}})) == "<accepted>");
}

TEST_CASE("validate_hook rejects reserved header names in any letter case", "[hook]")
{
    for (const char* name : {"Content-Type", "content-type", "CONTENT-TYPE", "X-Whisperer-Signature",
                             "x-whisperer-event", "X-WHISPERER-ANYTHING", "webhook-signature", "Webhook-Id",
                             "WEBHOOK-TIMESTAMP", "Host", "Content-Length", "User-Agent", "Transfer-Encoding",
                             "Connection", "Expect", "expect"}) {
        INFO(name);
        auto rejection = rejection_of([&] { validate_hook(with_headers({{name, "v"}})); });
        REQUIRE(rejection);
        CHECK(rejection->field == "additional_headers." + std::string(name));
        CHECK(contains(rejection->message, "may not be overridden"));
    }
}

TEST_CASE("validate_hook rejects an Authorization header only when config.auth sets one", "[hook]")
{
    Hook hook = with_headers({{"authorization", "Bearer abc"}});
    CHECK(rejected_field(hook) == "<accepted>");
    hook.config = {{"auth", {{"auth_type", "basic"}, {"username", "u"}, {"password", "p"}}}};
    CHECK(rejected_field(hook) == "additional_headers.authorization");
}

TEST_CASE("validate_hook rejects header values that are not strings", "[hook]")
{
    for (const json::value& value : {json::value(5), json::value(nullptr), json::value(true),
                                     json::value(json::array{"a"}), json::value(json::object{{"a", "b"}})}) {
        INFO(json::serialize(value));
        CHECK(rejected_field(with_headers({{"X-Count", value}})) == "additional_headers.X-Count");
    }
}

TEST_CASE("validate_hook limits the number and size of additional headers", "[hook]")
{
    json::object headers;
    for (int i = 0; i < 32; ++i)
        headers["X-H" + std::to_string(i)] = "v";
    CHECK(rejected_field(with_headers(headers)) == "<accepted>");
    headers["X-H32"] = "v";
    CHECK(rejected_field(with_headers(headers)) == "additional_headers");
    CHECK(rejected_field(with_headers({{"X-A", "v"}, {"X-B", "v"}}), HookRules{.max_additional_headers = 1}) ==
          "additional_headers");

    CHECK(rejected_field(with_headers({{"X-Long", std::string(4096, 'v')}})) == "<accepted>");
    CHECK(rejected_field(with_headers({{"X-Long", std::string(4097, 'v')}})) == "additional_headers.X-Long");
}

// --- callback ------------------------------------------------------------------------------------

TEST_CASE("validate_hook accepts only registered callbacks", "[hook]")
{
    const std::set<std::string, std::less<>> callbacks = {"on_attempt", "audit"};
    Hook hook = seed_hook();
    hook.callback = "on_attempt";
    CHECK(rejected_field(hook, HookRules{.callbacks = &callbacks}) == "<accepted>");

    hook.callback = "on_attempts";
    auto rejection = rejection_of([&] { validate_hook(hook, HookRules{.callbacks = &callbacks}); });
    REQUIRE(rejection);
    CHECK(rejection->field == "callback");
    CHECK(contains(rejection->message, "\"on_attempts\""));

    // Without a set of callbacks no callback name is known.
    hook.callback = "on_attempt";
    CHECK(rejected_field(hook) == "callback");
}

// --- config.auth ---------------------------------------------------------------------------------

TEST_CASE("validate_hook accepts basic and token auth configs", "[hook]")
{
    for (const char* auth : {
             R"({"auth_type":"basic","username":"u","password":"p"})",
             R"({"auth_type":"basic","username":"u"})",
             R"({"auth_type":"basic","username":"u","password":""})",
             R"({"auth_type":"token","url":"https://example.com/login/","username":"u","password":"p"})",
             R"({"auth_type":"token","url":"https://example.com/login/","username":"u","password":"p",
                 "username_field":"email","password_field":"pass","token_key":"access",
                 "header_format":"Bearer {}"})",
         }) {
        INFO(auth);
        CHECK(rejected_field(with_auth(auth)) == "<accepted>");
    }
}

TEST_CASE("validate_hook rejects malformed auth configs naming the field", "[hook]")
{
    struct Case {
        const char* auth;
        const char* field;
    };
    const Case cases[] = {
        {R"("basic")", "config.auth"},
        {R"([])", "config.auth"},
        {R"({"username":"u","password":"p"})", "config.auth.auth_type"},
        {R"({"auth_type":5,"username":"u"})", "config.auth.auth_type"},
        {R"({"auth_type":"digest","username":"u","password":"p"})", "config.auth.auth_type"},
        {R"({"auth_type":"basic","password":"p"})", "config.auth.username"},
        {R"({"auth_type":"basic","username":"","password":"p"})", "config.auth.username"},
        {R"({"auth_type":"basic","username":42,"password":"p"})", "config.auth.username"},
        {R"({"auth_type":"basic","username":"u\r\nX: y","password":"p"})", "config.auth.username"},
        {R"({"auth_type":"basic","username":"u","password":7})", "config.auth.password"},
        {R"({"auth_type":"token","username":"u","password":"p"})", "config.auth.url"},
        {R"({"auth_type":"token","url":5,"username":"u","password":"p"})", "config.auth.url"},
        {R"({"auth_type":"token","url":"ftp://example.com/login","username":"u","password":"p"})", "config.auth.url"},
        {R"({"auth_type":"token","url":"/login/","username":"u","password":"p"})", "config.auth.url"},
        {R"({"auth_type":"token","url":"https://u:p@example.com/login","username":"u","password":"p"})", "config.auth.url"},
        {R"({"auth_type":"token","url":"https://example.com/login/","password":"p"})", "config.auth.username"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","token_key":1})", "config.auth.token_key"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","username_field":[]})", "config.auth.username_field"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","password_field":null})", "config.auth.password_field"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","header_format":"Token"})", "config.auth.header_format"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","header_format":""})", "config.auth.header_format"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","header_format":3})", "config.auth.header_format"},
        {R"({"auth_type":"token","url":"https://example.com/login/","username":"u","header_format":"Token {}\n"})", "config.auth.header_format"},
    };
    for (const Case& c : cases) {
        INFO(c.auth);
        CHECK(rejected_field(with_auth(c.auth)) == c.field);
    }
}

// --- helpers -------------------------------------------------------------------------------------

TEST_CASE("is_reserved_header recognises whisperer's own headers case-insensitively", "[hook]")
{
    for (const char* name : {"Content-Type", "content-type", "Content-Length", "Content-Encoding", "Host", "HOST",
                             "User-Agent", "Transfer-Encoding", "Connection", "Keep-Alive", "TE", "Upgrade",
                             "Expect", "X-Whisperer-Event", "X-Whisperer-Signature", "x-whisperer-signature", "webhook-id",
                             "webhook-timestamp", "webhook-signature", "Webhook-Signature"}) {
        INFO(name);
        CHECK(is_reserved_header(name));
    }
    for (const char* name : {"X-Tenant", "Authorization", "Accept", "Content", "Content-Typo", "X-Whisperers",
                             "Webhooks", "My-Webhook-Id", "T", ""}) {
        INFO(name);
        CHECK_FALSE(is_reserved_header(name));
    }
}

TEST_CASE("mask_secret shows only the last four characters of a long secret", "[hook]")
{
    CHECK(mask_secret("") == "");
    CHECK(mask_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == "****LaSw");
    CHECK(mask_secret("123456789") == "****6789");
}

TEST_CASE("mask_secret reveals nothing of a short secret", "[hook]")
{
    for (const char* secret : {"a", "abcd", "abcdefgh"}) {
        INFO(secret);
        const std::string masked = mask_secret(secret);
        CHECK(masked == "****");
    }
}

// --- limits --------------------------------------------------------------------------------------

TEST_CASE("validate_hook limits the length of header names and the size of all headers together", "[hook][limits]")
{
    CHECK(rejected_field(with_headers({{"X-" + std::string(254, 'n'), "v"}})) == "<accepted>");
    auto rejection = rejection_of([] { validate_hook(with_headers({{"X-" + std::string(255, 'n'), "v"}})); });
    REQUIRE(rejection);
    CHECK(rejection->field == "additional_headers");
    CHECK(contains(rejection->message, "256"));

    // Names and values count together: 3 + 4093 twice is 8192.
    CHECK(rejected_field(with_headers({{"X-A", std::string(4093, 'a')}, {"X-B", std::string(4093, 'b')}})) ==
          "<accepted>");
    rejection = rejection_of(
        [] { validate_hook(with_headers({{"X-A", std::string(4093, 'a')}, {"X-B", std::string(4094, 'b')}})); });
    REQUIRE(rejection);
    CHECK(rejection->field == "additional_headers");
    CHECK(contains(rejection->message, "8192"));

    const HookRules strict{.max_header_name_length = 4, .max_additional_headers_size = 10};
    CHECK(rejected_field(with_headers({{"X-AB", "123456"}}), strict) == "<accepted>");
    CHECK(rejected_field(with_headers({{"X-ABC", "1"}}), strict) == "additional_headers");
    CHECK(rejected_field(with_headers({{"X-AB", "1234567"}}), strict) == "additional_headers");
}

TEST_CASE("validate_hook limits the size of config as JSON", "[hook][limits]")
{
    Hook hook = seed_hook();
    // {"k":"..."} is the string and 8 characters.
    hook.config = {{"k", std::string(16 * 1024 - 8, 'c')}};
    REQUIRE(json::serialize(hook.config).size() == 16 * 1024);
    CHECK(rejected_field(hook) == "<accepted>");
    hook.config = {{"k", std::string(16 * 1024 - 7, 'c')}};
    CHECK(rejected_field(hook) == "config");
    CHECK(rejected_field(hook, HookRules{.max_config_size = 32 * 1024}) == "<accepted>");
}

TEST_CASE("validate_hook limits how deep config nests", "[hook][limits]")
{
    // config is level 1; each wrapping array adds one.
    auto config_of_depth = [](std::size_t depth) {
        json::value inner = json::array{};
        for (std::size_t level = 3; level <= depth; ++level)
            inner = json::array{std::move(inner)};
        return json::object{{"deep", std::move(inner)}};
    };
    Hook hook = seed_hook();
    hook.config = config_of_depth(32);
    CHECK(rejected_field(hook) == "<accepted>");
    hook.config = config_of_depth(33);
    auto rejection = rejection_of([&] { validate_hook(hook); });
    REQUIRE(rejection);
    CHECK(rejection->field == "config");
    CHECK(contains(rejection->message, "32 levels"));

    hook.config = config_of_depth(2);
    CHECK(rejected_field(hook, HookRules{.max_config_depth = 2}) == "<accepted>");
    hook.config = config_of_depth(3);
    CHECK(rejected_field(hook, HookRules{.max_config_depth = 2}) == "config");
    hook.config = {{"flat", 1}};
    CHECK(rejected_field(hook, HookRules{.max_config_depth = 1}) == "<accepted>");
    hook.config = {};
    CHECK(rejected_field(hook, HookRules{.max_config_depth = 1}) == "<accepted>");
}

TEST_CASE("validate_hook limits the length of the owner and callback names", "[hook][limits]")
{
    Hook hook = seed_hook();
    hook.owner = std::string(255, 'o');
    CHECK(rejected_field(hook) == "<accepted>");
    hook.owner += 'o';
    CHECK(rejected_field(hook) == "owner");

    // Even a registered callback is refused past the limit, so no error repeats a long name.
    const std::set<std::string, std::less<>> callbacks = {std::string(255, 'c'), std::string(256, 'c')};
    hook = seed_hook();
    hook.callback = std::string(255, 'c');
    CHECK(rejected_field(hook, HookRules{.callbacks = &callbacks}) == "<accepted>");
    hook.callback += 'c';
    CHECK(rejected_field(hook, HookRules{.callbacks = &callbacks}) == "callback");
    CHECK(rejected_field(hook, HookRules{.callbacks = &callbacks, .max_name_length = 256}) == "<accepted>");
}
