#include <whisperer/address_policy.hpp>
#include <whisperer/error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <optional>

namespace whisperer {

namespace ip = boost::asio::ip;

namespace {

/// The IPv4 address inside an IPv4-mapped IPv6 address, so that `::ffff:127.0.0.1` cannot
/// slip past a rule written for `127.0.0.0/8`.
ip::address unmapped(const ip::address& address) noexcept
{
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        return ip::make_address_v4(ip::v4_mapped, address.to_v6());
    return address;
}

template <std::size_t N>
bool prefix_equal(const std::array<unsigned char, N>& a, const std::array<unsigned char, N>& b,
                  unsigned bits) noexcept
{
    std::size_t whole = bits / 8;
    for (std::size_t i = 0; i < whole; ++i)
        if (a[i] != b[i])
            return false;
    if (unsigned rest = bits % 8) {
        auto mask = static_cast<unsigned char>(0xff << (8 - rest));
        return (a[whole] & mask) == (b[whole] & mask);
    }
    return true;
}

template <std::size_t N>
std::array<unsigned char, N> masked(std::array<unsigned char, N> bytes, unsigned bits) noexcept
{
    for (std::size_t i = 0; i < N; ++i) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : (bits > 8 * i ? bits - 8 * i : 0);
        bytes[i] &= static_cast<unsigned char>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    return bytes;
}

ValidationError bad_cidr(std::string_view text, std::string_view why)
{
    return ValidationError("cidr", "\"" + std::string(text) + "\" is not a valid network: " + std::string(why));
}

struct NamedRange {
    std::string_view network;
    unsigned length;
    std::string_view name;
};

// IANA's special-purpose registries; documentation ranges are refused too, so that a hook
// pointing at them fails where it is made rather than on a network that happens to route them.
constexpr std::array<NamedRange, 16> v4_ranges{{
    {"0.0.0.0", 8, "this network"},
    {"10.0.0.0", 8, "private"},
    {"100.64.0.0", 10, "shared (CGNAT)"},
    {"127.0.0.0", 8, "loopback"},
    {"169.254.0.0", 16, "link-local"},
    {"172.16.0.0", 12, "private"},
    {"192.0.0.0", 24, "IETF protocol assignments"},
    {"192.0.2.0", 24, "documentation"},
    {"192.88.99.0", 24, "6to4 relay anycast"},
    {"192.168.0.0", 16, "private"},
    {"198.18.0.0", 15, "benchmarking"},
    {"198.51.100.0", 24, "documentation"},
    {"203.0.113.0", 24, "documentation"},
    {"224.0.0.0", 4, "multicast"},
    {"255.255.255.255", 32, "broadcast"},
    {"240.0.0.0", 4, "reserved"},
}};

// Checked in order after the IPv4 embeddings; 2000::/3 is the only global unicast space.
constexpr std::array<NamedRange, 12> v6_ranges{{
    {"::", 128, "unspecified"},
    {"::1", 128, "loopback"},
    {"64:ff9b:1::", 48, "local-use NAT64"},
    {"100::", 64, "discard-only"},
    {"2001::", 32, "Teredo"},
    {"2001::", 23, "IETF protocol assignments"},
    {"2001:db8::", 32, "documentation"},
    {"3fff::", 20, "documentation"},
    {"fc00::", 7, "unique local"},
    {"fe80::", 10, "link-local"},
    {"fec0::", 10, "site-local"},
    {"ff00::", 8, "multicast"},
}};

template <std::size_t N>
std::vector<std::pair<Cidr, std::string_view>> compile(const std::array<NamedRange, N>& ranges)
{
    std::vector<std::pair<Cidr, std::string_view>> out;
    for (const NamedRange& r : ranges)
        out.emplace_back(Cidr(ip::make_address(std::string(r.network)), r.length), r.name);
    return out;
}

std::string_view v4_range(const ip::address_v4& address) noexcept
{
    static const auto ranges = compile(v4_ranges);
    for (const auto& [network, name] : ranges)
        if (network.contains(address))
            return name;
    return {};
}

ip::address_v4 v4_at(const ip::address_v6::bytes_type& bytes, std::size_t offset) noexcept
{
    return ip::address_v4(ip::address_v4::bytes_type{bytes[offset], bytes[offset + 1], bytes[offset + 2],
                                                     bytes[offset + 3]});
}

bool all_zero(const ip::address_v6::bytes_type& bytes, std::size_t from, std::size_t to) noexcept
{
    for (std::size_t i = from; i < to; ++i)
        if (bytes[i] != 0)
            return false;
    return true;
}

/// The IPv4 address carried by a mapped, compatible, NAT64 (64:ff9b::/96) or 6to4 address.
std::optional<ip::address_v4> embedded_v4(const ip::address_v6& address) noexcept
{
    const auto b = address.to_bytes();
    if (all_zero(b, 0, 10) && b[10] == 0xff && b[11] == 0xff)
        return v4_at(b, 12);
    // IPv4-compatible (deprecated); :: and ::1 are judged as themselves.
    if (all_zero(b, 0, 12) && !all_zero(b, 12, 15))
        return v4_at(b, 12);
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && all_zero(b, 4, 12))
        return v4_at(b, 12);
    if (b[0] == 0x20 && b[1] == 0x02)
        return v4_at(b, 2);
    return std::nullopt;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

/// One part of an IPv4 literal (WHATWG "IPv4 number"): decimal, octal after a leading 0, hex
/// after 0x. Values beyond 32 bits are reported as such rather than wrapped.
std::optional<std::uint64_t> ipv4_number(std::string_view part) noexcept
{
    if (part.empty())
        return std::nullopt;
    unsigned radix = 10;
    if (part.size() >= 2 && part[0] == '0' && (part[1] == 'x' || part[1] == 'X')) {
        radix = 16;
        part.remove_prefix(2);
    } else if (part.size() >= 2 && part[0] == '0') {
        radix = 8;
        part.remove_prefix(1);
    }
    std::uint64_t value = 0;
    for (char c : part) {
        unsigned digit = 0;
        if (is_digit(c))
            digit = static_cast<unsigned>(c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = static_cast<unsigned>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            digit = static_cast<unsigned>(c - 'A' + 10);
        else
            return std::nullopt;
        if (digit >= radix)
            return std::nullopt;
        value = value * radix + digit;
        if (value > 0xffffffffull)
            value = 0x100000000ull; // Too big for any part; keep it from overflowing.
    }
    return value;
}

} // namespace

Cidr::Cidr(const ip::address& network, unsigned prefix_length) : prefix_length_(prefix_length)
{
    const unsigned width = network.is_v4() ? 32 : 128;
    if (prefix_length > width)
        throw bad_cidr(network.to_string() + "/" + std::to_string(prefix_length), "the prefix is too long.");
    // An IPv4-mapped network inside ::ffff:0:0/96 is the IPv4 network it carries; a shorter one
    // holds more than mapped addresses and stays IPv6.
    const bool mapped = network.is_v6() && network.to_v6().is_v4_mapped() && prefix_length >= 96;
    const ip::address net = mapped ? unmapped(network) : network;
    if (mapped)
        prefix_length_ -= 96;
    if (net.is_v4())
        network_ = ip::address_v4(masked(net.to_v4().to_bytes(), prefix_length_));
    else
        network_ = ip::address_v6(masked(net.to_v6().to_bytes(), prefix_length_));
}

Cidr Cidr::parse(std::string_view text)
{
    std::string_view address_text = text;
    std::optional<unsigned> length;
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
        address_text = text.substr(0, slash);
        std::string_view digits = text.substr(slash + 1);
        unsigned value = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
        if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size())
            throw bad_cidr(text, "the prefix length must be a number.");
        length = value;
    }
    boost::system::error_code ec;
    const ip::address address = ip::make_address(std::string(address_text), ec);
    if (ec)
        throw bad_cidr(text, "expected ADDRESS/LENGTH.");
    return Cidr(address, length.value_or(address.is_v4() ? 32u : 128u));
}

bool Cidr::contains(const ip::address& address) const noexcept
{
    if (network_.is_v4()) {
        const ip::address a = unmapped(address);
        return a.is_v4() && prefix_equal(a.to_v4().to_bytes(), network_.to_v4().to_bytes(), prefix_length_);
    }
    const ip::address_v6 a = address.is_v4() ? ip::make_address_v6(ip::v4_mapped, address.to_v4()) : address.to_v6();
    return prefix_equal(a.to_bytes(), network_.to_v6().to_bytes(), prefix_length_);
}

std::string Cidr::to_string() const
{
    return network_.to_string() + "/" + std::to_string(prefix_length_);
}

std::string_view internal_range(const ip::address& address) noexcept
{
    if (address.is_v4())
        return v4_range(address.to_v4());
    const ip::address_v6 v6 = address.to_v6();
    if (v6.is_loopback())
        return "loopback";
    if (v6.is_unspecified())
        return "unspecified";
    if (auto v4 = embedded_v4(v6))
        return v4_range(*v4);
    static const auto ranges = compile(v6_ranges);
    for (const auto& [network, name] : ranges)
        if (network.contains(address))
            return name;
    if ((v6.to_bytes()[0] & 0xe0) != 0x20)
        return "reserved";
    return {};
}

bool is_internal_address(const ip::address& address) noexcept
{
    return !internal_range(address).empty();
}

UrlHost parse_url_host(std::string_view host) noexcept
{
    UrlHost out;
    boost::system::error_code ec;
    if (host.starts_with('[') || host.find(':') != std::string_view::npos) {
        if (host.starts_with('[')) {
            if (!host.ends_with(']')) {
                out.kind = UrlHost::Kind::invalid;
                return out;
            }
            host = host.substr(1, host.size() - 2);
        }
        // Asio reads the text up to a NUL byte only: "::1\0junk" would be ::1.
        if (host.find('\0') != std::string_view::npos) {
            out.kind = UrlHost::Kind::invalid;
            return out;
        }
        ip::address_v6 v6 = ip::make_address_v6(std::string(host), ec);
        out.kind = ec ? UrlHost::Kind::invalid : UrlHost::Kind::address;
        if (!ec)
            out.address = v6;
        return out;
    }

    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        std::size_t dot = host.find('.', start);
        parts.push_back(host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (dot == std::string_view::npos)
            break;
        start = dot + 1;
    }
    if (parts.size() > 1 && parts.back().empty())
        parts.pop_back();
    // Only a host whose last label is a number is read as IPv4 (the WHATWG "ends in a number").
    const std::string_view last = parts.back();
    const bool numeric_last = !last.empty() && (std::all_of(last.begin(), last.end(), is_digit) ||
                                                (last.size() >= 2 && last[0] == '0' &&
                                                 (last[1] == 'x' || last[1] == 'X') && ipv4_number(last)));
    if (!numeric_last)
        return out;

    out.kind = UrlHost::Kind::invalid;
    if (parts.size() > 4)
        return out;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        auto number = ipv4_number(parts[i]);
        if (!number)
            return out;
        if (i + 1 < parts.size()) {
            if (*number > 255)
                return out;
            value |= *number << (8 * (3 - i));
        } else {
            if (*number >= (std::uint64_t{1} << (8 * (5 - parts.size()))))
                return out;
            value |= *number;
        }
    }
    out.kind = UrlHost::Kind::address;
    out.address = ip::address_v4(static_cast<std::uint32_t>(value));
    return out;
}

AddressPolicy AddressPolicy::unrestricted()
{
    return AddressPolicy({Cidr::parse("0.0.0.0/0"), Cidr::parse("::/0")});
}

bool AddressPolicy::permits(const ip::address& address) const noexcept
{
    if (!is_internal_address(address))
        return true;
    for (const Cidr& network : allowed_)
        if (network.contains(address))
            return true;
    return false;
}

AddressFilter AddressPolicy::as_filter() const
{
    return [policy = *this](const ip::address& address) { return policy.permits(address); };
}

AddressFilter address_filter_or_default(AddressFilter filter)
{
    if (filter)
        return filter;
    return AddressPolicy{}.as_filter();
}

} // namespace whisperer
