// Fuzzes how whisperer reads and judges addresses (the SSRF guard): `parse_url_host` on URL hosts
// in every IPv4 and IPv6 form, `Cidr::parse`, `internal_range` and `AddressPolicy`, and hook
// target URLs as `validate_hook` and the dispatcher read them.
//
// The input is read as a URL host, as a network, as a target URL and inside `http://.../`, and
// its first bytes as a raw address. Besides sanitizer reports, an input fails when:
// - an address read from a host is not the one its canonical text means, disagrees with the
//   strict dotted-decimal reading, or comes from text with a NUL byte in it;
// - a parsed network does not contain its own address or does not read back from its text;
// - an IPv4 address is judged differently when carried inside IPv6 (mapped, compatible, NAT64,
//   6to4), or an allowed network does not open its addresses;
// - a target URL that validation accepts is one the dispatcher cannot parse, or has an IP-literal
//   host that the default guard refuses.

#include <whisperer/address_policy.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>

#include "detail/http_target.hpp"

#include <boost/asio/ip/address.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace whisperer;
namespace ip = boost::asio::ip;

[[noreturn]] void fail(const std::string& why, std::string_view input)
{
    std::fprintf(stderr, "address_fuzzer: %s\n  input: %.*s\n", why.c_str(), static_cast<int>(input.size()),
                 input.data());
    std::abort();
}

void check_host(std::string_view host)
{
    const UrlHost parsed = parse_url_host(host);
    if (parsed.kind == UrlHost::Kind::address) {
        if (host.find('\0') != std::string_view::npos)
            fail("an address read from a host with a NUL byte", host);
        (void)internal_range(parsed.address);
        const UrlHost again = parse_url_host(parsed.address.to_string());
        if (again.kind != UrlHost::Kind::address || again.address != parsed.address)
            fail("the address " + parsed.address.to_string() + " does not read back from its text", host);
    }
    // Where the strict reading (inet_pton) accepts dotted decimal, the URL reading agrees.
    if (host.find('\0') == std::string_view::npos) {
        boost::system::error_code ec;
        const ip::address_v4 strict = ip::make_address_v4(std::string(host), ec);
        if (!ec && (parsed.kind != UrlHost::Kind::address || parsed.address != ip::address(strict)))
            fail("dotted decimal read as something else", host);
    }
}

void check_cidr(std::string_view text)
{
    try {
        const Cidr network = Cidr::parse(text);
        const std::string canonical = network.to_string();
        const std::string address = canonical.substr(0, canonical.find('/'));
        if (!network.contains(ip::make_address(address)))
            fail("the network " + canonical + " does not contain its own address", text);
        if (Cidr::parse(canonical).to_string() != canonical)
            fail("the network " + canonical + " does not read back from its text", text);
    } catch (const ValidationError& e) {
        if (e.field() != "cidr")
            fail("a network refused with the field " + e.field(), text);
    }
}

/// What the dispatcher relies on when validation accepts a target URL.
void check_url(const std::string& url)
{
    static const HookRules rules = [] {
        HookRules r;
        r.address_filter = address_filter_or_default(nullptr);
        return r;
    }();
    Hook hook;
    hook.owner = "alice";
    hook.event_type = "package-created";
    hook.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 60}}}};
    hook.target_url = url;
    try {
        validate_hook(hook, rules);
    } catch (const ValidationError& e) {
        if (e.field() != "target_url")
            fail("a target URL refused with the field " + e.field(), url);
        return;
    }
    auto target = detail::HttpTarget::parse(url);
    if (!target)
        fail("the dispatcher cannot parse an accepted target URL", url);
    const UrlHost host = parse_url_host(target->host);
    if (host.kind == UrlHost::Kind::invalid)
        fail("the dispatcher reads an invalid host in an accepted target URL", url);
    if (host.kind == UrlHost::Kind::address && !rules.address_filter(host.address))
        fail("an accepted target URL points to " + host.address.to_string(), url);
}

/// An IPv4 address is judged alike in every IPv6 form that carries it, and an allowed network
/// opens it in each form.
void check_embeddings(const std::uint8_t* bytes)
{
    const ip::address_v4 v4(ip::address_v4::bytes_type{bytes[0], bytes[1], bytes[2], bytes[3]});
    const bool internal = is_internal_address(v4);
    const auto v6 = [&](std::array<unsigned char, 12> prefix) {
        ip::address_v6::bytes_type b{};
        std::copy(prefix.begin(), prefix.end(), b.begin());
        std::copy(bytes, bytes + 4, b.begin() + 12);
        return ip::address_v6(b);
    };
    const ip::address_v6 mapped = ip::make_address_v6(ip::v4_mapped, v4);
    const ip::address_v6 nat64 = v6({0x00, 0x64, 0xff, 0x9b});
    ip::address_v6::bytes_type six_to_four{0x20, 0x02, bytes[0], bytes[1], bytes[2], bytes[3]};
    for (const ip::address_v6& carrier : {mapped, nat64, ip::address_v6(six_to_four)})
        if (is_internal_address(carrier) != internal)
            fail(carrier.to_string() + " is judged unlike " + v4.to_string(), {});
    // IPv4-compatible ::a.b.c.d, except :: and ::1, which are judged as themselves.
    if (bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0)
        if (is_internal_address(v6({})) != internal)
            fail(v6({}).to_string() + " is judged unlike " + v4.to_string(), {});

    const unsigned length = bytes[4] % 33;
    AddressPolicy policy;
    policy.allow(Cidr(v4, length));
    if (!policy.permits(v4) || !policy.permits(mapped))
        fail("an allowed network " + Cidr(v4, length).to_string() + " does not open " + v4.to_string(), {});
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    check_host(text);
    check_cidr(text);
    check_url(std::string(text));
    check_url("http://" + std::string(text) + "/");
    if (size >= 5)
        check_embeddings(data);
    if (size >= 17) {
        ip::address_v6::bytes_type b;
        std::copy(data, data + 16, b.begin());
        const ip::address_v6 v6(b);
        (void)internal_range(v6);
        const Cidr network(v6, data[16] % 129);
        if (!network.contains(v6))
            fail("the network " + network.to_string() + " does not contain " + v6.to_string(), {});
    }
    return 0;
}
