// Which addresses deliveries may reach: internal ranges refused unless explicitly allowed.

#include "catch.hpp"

#include <whisperer/address_policy.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>

#include <string>
#include <string_view>

using namespace whisperer;
namespace ip = boost::asio::ip;

TEST_CASE("loopback, private, link-local and other internal addresses are classified internal", "[address_policy]")
{
    for (const char* internal : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255",
                                 "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                                 "255.255.255.255", "::1", "::", "fe80::1", "fd12:3456::1", "ff02::1",
                                 "::ffff:127.0.0.1", "::ffff:10.0.0.1"}) {
        INFO(internal);
        CHECK(is_internal_address(ip::make_address(internal)));
    }
    for (const char* external : {"93.184.216.34", "8.8.8.8", "172.32.0.1", "192.169.0.1", "100.128.0.1",
                                 "2606:4700::1111", "::ffff:8.8.8.8"}) {
        INFO(external);
        CHECK_FALSE(is_internal_address(ip::make_address(external)));
    }
}

TEST_CASE("a policy refuses internal addresses unless an allowed network contains them", "[address_policy]")
{
    AddressPolicy policy;
    CHECK_FALSE(policy.permits(ip::make_address("127.0.0.1")));
    CHECK(policy.permits(ip::make_address("93.184.216.34")));
    policy.allow(Cidr::parse("127.0.0.0/8"));
    CHECK(policy.permits(ip::make_address("127.0.0.1")));
    CHECK(policy.permits(ip::make_address("::ffff:127.0.0.2")));
    CHECK_FALSE(policy.permits(ip::make_address("10.0.0.1")));
    CHECK_FALSE(policy.permits(ip::make_address("::1")));
    auto filter = policy.as_filter();
    CHECK(filter(ip::make_address("127.1.1.1")));
    CHECK_FALSE(filter(ip::make_address("192.168.0.1")));
}

TEST_CASE("CIDR text is parsed, masked and checked", "[address_policy]")
{
    CHECK(Cidr::parse("10.1.2.3/8").to_string() == "10.0.0.0/8");
    CHECK(Cidr::parse("192.168.1.7").to_string() == "192.168.1.7/32");
    CHECK(Cidr::parse("fd00::1/8").to_string() == "fd00::/8");
    CHECK(Cidr::parse("10.0.0.0/9").contains(ip::make_address("10.127.0.1")));
    CHECK_FALSE(Cidr::parse("10.0.0.0/9").contains(ip::make_address("10.128.0.1")));
    CHECK_FALSE(Cidr::parse("10.0.0.0/8").contains(ip::make_address("fd00::1")));
    CHECK(Cidr::parse("0.0.0.0/0").contains(ip::make_address("8.8.8.8")));
    for (const char* bad : {"", "10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/x", "example.com/8", "10.0.0/8"}) {
        INFO(bad);
        CHECK_THROWS_AS(Cidr::parse(bad), ValidationError);
    }
}

TEST_CASE("an IPv4-mapped network is the IPv4 network it carries", "[address_policy]")
{
    // Found by fuzzing: a mapped address with an IPv6 prefix length was refused as too long.
    CHECK(Cidr::parse("::ffff:10.0.0.0/104").to_string() == "10.0.0.0/8");
    CHECK(Cidr::parse("::ffff:10.1.2.3").to_string() == "10.1.2.3/32");
    CHECK(Cidr(ip::make_address("::ffff:127.0.0.1"), 128).contains(ip::make_address("127.0.0.1")));
    CHECK(Cidr::parse("::ffff:10.0.0.0/104").contains(ip::make_address("::ffff:10.9.9.9")));
    CHECK_FALSE(Cidr::parse("::ffff:10.0.0.0/104").contains(ip::make_address("11.0.0.1")));
    // Shorter networks hold more than mapped addresses and stay IPv6, containing mapped ones.
    CHECK(Cidr::parse("::ffff:0.0.0.0/95").to_string() == "::fffe:0:0/95");
    CHECK(Cidr::parse("::/0").contains(ip::make_address("8.8.8.8")));
    CHECK(Cidr::parse("::/0").contains(ip::make_address("::ffff:8.8.8.8")));
    CHECK_FALSE(Cidr::parse("fd00::/8").contains(ip::make_address("::ffff:8.8.8.8")));
    CHECK_THROWS_AS(Cidr::parse("::ffff:10.0.0.0/129"), ValidationError);
}

namespace {

/// One row of the guard's table: an address or a URL, and whether the default policy lets a
/// delivery reach it.
struct GuardCase {
    const char* input;
    bool permitted;
};

// Addresses, in their canonical text; each blocked range and each IPv6 embedding at least once.
constexpr GuardCase address_cases[] = {
    // IPv4 special-purpose ranges, at their edges.
    {"0.0.0.0", false},          {"0.255.255.255", false},   {"10.0.0.0", false},
    {"10.255.255.255", false},   {"100.64.0.0", false},      {"100.127.255.255", false},
    {"127.0.0.1", false},        {"127.255.255.254", false}, {"169.254.0.1", false},
    {"169.254.169.254", false},  {"172.16.0.0", false},      {"172.31.255.255", false},
    {"192.0.0.8", false},        {"192.0.0.170", false},     {"192.0.2.1", false},
    {"192.88.99.1", false},      {"192.168.0.1", false},     {"192.168.255.255", false},
    {"198.18.0.1", false},       {"198.19.255.255", false},  {"198.51.100.7", false},
    {"203.0.113.9", false},      {"224.0.0.1", false},       {"233.252.0.1", false},
    {"239.255.255.250", false},  {"240.0.0.1", false},       {"255.255.255.255", false},
    // IPv4 public, just outside the ranges above.
    {"1.1.1.1", true},           {"8.8.8.8", true},          {"9.255.255.255", true},
    {"11.0.0.0", true},          {"100.63.255.255", true},   {"100.128.0.0", true},
    {"126.255.255.255", true},   {"128.0.0.0", true},        {"169.253.255.255", true},
    {"172.15.255.255", true},    {"172.32.0.0", true},       {"192.0.1.255", true},
    {"192.167.255.255", true},   {"198.17.255.255", true},   {"198.20.0.0", true},
    {"223.255.255.255", true},   {"93.184.216.34", true},
    // IPv6 special-purpose ranges.
    {"::", false},               {"::1", false},             {"fe80::1", false},
    {"febf:ffff::1", false},     {"fec0::1", false},         {"fc00::1", false},
    {"fd12:3456:789a::1", false}, {"ff02::1", false},        {"ff0e::1", false},
    {"2001:db8::1", false},      {"3fff::1", false},         {"100::1", false},
    {"2001::1", false},          {"2001:2::1", false},       {"2001:10::1", false},
    {"4000::1", false},          {"::ffff:0:1.2.3.4", false}, {"5f00::1", false},
    // IPv4 inside IPv6: judged by the IPv4 address carried.
    {"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, {"::ffff:169.254.169.254", false},
    {"::ffff:8.8.8.8", true},    {"::127.0.0.1", false},     {"::10.1.2.3", false},
    {"::0.0.0.2", false},        {"::8.8.8.8", true},        {"64:ff9b::127.0.0.1", false},
    {"64:ff9b::a9fe:a9fe", false}, {"64:ff9b::8.8.8.8", true}, {"64:ff9b:1::8.8.8.8", false},
    {"64:ff9b:1:ffff::1", false}, {"2002:7f00:1::1", false}, {"2002:a00:1::", false},
    {"2002:c0a8:101::1", false}, {"2002:808:808::1", true},  {"2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
    // IPv6 public.
    {"2606:4700:4700::1111", true}, {"2a00:1450:4001:82a::200e", true}, {"2001:4860:4860::8888", true},
    {"2c0f:fb50:4003::1", true},
};

// URLs: every IP-literal form the URL parser accepts is judged as the address it means.
constexpr GuardCase url_cases[] = {
    {"http://127.0.0.1/", false},          {"http://2130706433/", false},
    {"http://0177.0.0.1/", false},         {"http://0x7f.1/", false},
    {"http://0x7F000001/", false},         {"http://127.1/", false},
    {"http://127.0.1/", false},            {"http://017700000001/", false},
    {"http://0x7f.0x0.0x0.0x1/", false},   {"http://127.0.0.1./", false},
    {"http://0/", false},                  {"http://0x0/", false},
    {"http://10.1/", false},               {"http://3232235777/", false},
    {"http://0xa9fea9fe/latest/meta-data", false}, {"http://0251.0376.0251.0376/", false},
    {"http://%31%32%37.0.0.1/", false},    {"https://[::1]:8443/", false},
    {"http://[::ffff:127.0.0.1]/", false}, {"http://[::ffff:7f00:1]/", false},
    {"http://[64:ff9b::7f00:1]/", false},  {"http://[2002:7f00:1::]/", false},
    {"http://[fe80::1%25eth0]/", false},   {"http://[fd00::1]/", false},
    {"http://134744072/", true},           {"http://0x8.0x8.0x8.0x8/", true},
    {"http://010.010.010.010/", true},     {"http://8.8.2056/", true},
    {"https://93.184.216.34/hooks", true}, {"https://[2606:4700::1111]/", true},
    {"https://example.com/", true},        {"http://localhost/", true}, // Names are checked at delivery.
    {"http://metadata.google.internal/", true},
};

/// A hook that passes validation except, perhaps, for its target_url.
Hook hook_for(const char* url)
{
    Hook hook;
    hook.owner = "alice";
    hook.event_type = "package-created";
    hook.target_url = url;
    hook.retry_countdown_config = {{"choice", "linear"}, {"kwargs", {{"base", 60}, {"limit", 600}}}};
    return hook;
}

// Hosts that end in a number but are no IPv4 address: invalid, as the URL standard has it.
constexpr const char* invalid_hosts[] = {"1.2.3.256", "1.2.3.4.5", "256.1", "1.16777216", "0x100000000",
                                         "4294967296", "08.1.1.1", "0xg.1", "1..2.3", "example.09",
                                         "[::1", "[1::2::3]"};

} // namespace

TEST_CASE("the default policy permits public unicast addresses and refuses every special range", "[address_policy]")
{
    const AddressPolicy policy;
    for (const GuardCase& c : address_cases) {
        INFO(c.input);
        const ip::address address = ip::make_address(c.input);
        CHECK(policy.permits(address) == c.permitted);
        CHECK(internal_range(address).empty() == c.permitted);
    }
    STATIC_REQUIRE(std::size(address_cases) >= 60);
}

TEST_CASE("IP-literal URL hosts in every accepted form are judged as the address they mean", "[address_policy]")
{
    const HookRules rules{.address_filter = AddressPolicy{}.as_filter()};
    for (const GuardCase& c : url_cases) {
        INFO(c.input);
        const Hook hook = hook_for(c.input);
        if (c.permitted)
            CHECK_NOTHROW(validate_hook(hook, rules));
        else
            CHECK_THROWS_AS(validate_hook(hook, rules), ValidationError);
    }
}

TEST_CASE("the URL host parser reads decimal, octal, hex and short IPv4 forms", "[address_policy]")
{
    const std::pair<const char*, const char*> forms[] = {
        {"2130706433", "127.0.0.1"},   {"0177.0.0.1", "127.0.0.1"},    {"0x7f.1", "127.0.0.1"},
        {"127.1", "127.0.0.1"},        {"127.0.1", "127.0.0.1"},       {"0x7F.0X0.0.01", "127.0.0.1"},
        {"127.0.0.1.", "127.0.0.1"},   {"0", "0.0.0.0"},               {"0x", "0.0.0.0"},
        {"1.2.65535", "1.2.255.255"},  {"1.16777215", "1.255.255.255"}, {"4294967295", "255.255.255.255"},
        {"[::1]", "::1"},              {"::ffff:127.0.0.1", "::ffff:127.0.0.1"},
    };
    for (const auto& [host, meaning] : forms) {
        INFO(host);
        const UrlHost parsed = parse_url_host(host);
        REQUIRE(parsed.kind == UrlHost::Kind::address);
        CHECK(parsed.address == ip::make_address(meaning));
    }
    for (const char* host : invalid_hosts) {
        INFO(host);
        CHECK(parse_url_host(host).kind == UrlHost::Kind::invalid);
    }
    for (const char* name : {"example.com", "localhost", "1.2.3.example", "0x7f.example", "a1", "xn--e1afmkfd"}) {
        INFO(name);
        CHECK(parse_url_host(name).kind == UrlHost::Kind::name);
    }
}

TEST_CASE("an IPv6 host with a NUL byte is no address", "[address_policy]")
{
    // Found by fuzzing: the address was read up to the NUL byte only.
    using namespace std::string_view_literals;
    for (std::string_view host : {"::1\0junk"sv, "[::1\0]"sv, "::ffff:8.8.8.8\0"sv}) {
        INFO(host.substr(0, host.find('\0')));
        CHECK(parse_url_host(host).kind == UrlHost::Kind::invalid);
    }
}

TEST_CASE("a hook whose host ends in a number but is no IPv4 address is invalid even without a filter", "[address_policy]")
{
    Hook hook = hook_for("");
    for (const char* url : {"http://1.2.3.256/", "http://1.2.3.4.5/", "http://0x100000000/", "http://08.0.0.1/",
                            "http://127.0.0.1.evil.example/", "http://8.8.8.8.nip.io/", "http://10.0.0.1x/"}) {
        INFO(url);
        hook.target_url = url;
        CHECK_THROWS_AS(validate_hook(hook), ValidationError);
    }
    hook.target_url = "http://127.0.0.1:8080/";
    CHECK_NOTHROW(validate_hook(hook)); // No filter in the rules: names and literals pass.
}

TEST_CASE("a refused IP literal names the field and the range", "[address_policy]")
{
    Hook hook = hook_for("http://0xa9fea9fe/latest/meta-data/");
    try {
        validate_hook(hook, {.address_filter = AddressPolicy{}.as_filter()});
        FAIL("not refused");
    } catch (const ValidationError& e) {
        CHECK(e.field() == "target_url");
        CHECK(std::string(e.what()).find("169.254.169.254 (link-local)") != std::string::npos);
    }
    hook.target_url = "https://example.com/";
    hook.config = {{"auth", {{"auth_type", "token"}, {"url", "http://[::1]/login"}, {"username", "u"}}}};
    CHECK_THROWS_AS(validate_hook(hook, {.address_filter = AddressPolicy{}.as_filter()}), ValidationError);
}

TEST_CASE("the allow-list opens exactly the networks it names", "[address_policy]")
{
    AddressPolicy policy;
    policy.allow(Cidr::parse("10.1.0.0/16")).allow(Cidr::parse("fd00:1::/32")).allow(Cidr::parse("169.254.169.254"));
    const GuardCase cases[] = {
        {"10.1.2.3", true},           {"10.1.255.255", true},  {"10.2.0.1", false},
        {"::ffff:10.1.0.9", true},    {"fd00:1::5", true},     {"fd00:2::5", false},
        {"169.254.169.254", true},    {"169.254.169.253", false}, {"127.0.0.1", false},
        {"8.8.8.8", true},
    };
    for (const GuardCase& c : cases) {
        INFO(c.input);
        CHECK(policy.permits(ip::make_address(c.input)) == c.permitted);
    }
    Hook hook = hook_for("http://10.1.0.80:8080/in");
    CHECK_NOTHROW(validate_hook(hook, {.address_filter = policy.as_filter()}));
    hook.target_url = "http://10.2.0.80:8080/in";
    CHECK_THROWS_AS(validate_hook(hook, {.address_filter = policy.as_filter()}), ValidationError);
}

TEST_CASE("the unrestricted policy and a null filter", "[address_policy]")
{
    const AddressPolicy open = AddressPolicy::unrestricted();
    for (const char* a : {"127.0.0.1", "10.0.0.1", "::1", "fe80::1", "::ffff:192.168.0.1", "8.8.8.8"}) {
        INFO(a);
        CHECK(open.permits(ip::make_address(a)));
    }
    const AddressFilter fallback = address_filter_or_default(nullptr);
    REQUIRE(fallback);
    CHECK_FALSE(fallback(ip::make_address("127.0.0.1")));
    CHECK(fallback(ip::make_address("8.8.8.8")));
    const AddressFilter custom = address_filter_or_default([](const ip::address&) { return true; });
    CHECK(custom(ip::make_address("127.0.0.1")));
}
