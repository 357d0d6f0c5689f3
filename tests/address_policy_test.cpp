// Which addresses deliveries may reach: internal ranges refused unless explicitly allowed.

#include "catch.hpp"

#include <whisperer/address_policy.hpp>
#include <whisperer/error.hpp>

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
