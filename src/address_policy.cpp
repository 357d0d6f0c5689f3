#include <whisperer/address_policy.hpp>
#include <whisperer/error.hpp>

#include <array>
#include <charconv>
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

struct InternalRange {
    std::string_view network;
    unsigned length;
};

// Loopback, unspecified, private, shared, link-local, multicast and reserved ranges (IANA special
// purpose registries); documentation ranges are left out because nothing routes to them anyway.
constexpr std::array<InternalRange, 16> internal_ranges{{
    {"0.0.0.0", 8},       {"10.0.0.0", 8},   {"100.64.0.0", 10}, {"127.0.0.0", 8},
    {"169.254.0.0", 16},  {"172.16.0.0", 12}, {"192.0.0.0", 24}, {"192.168.0.0", 16},
    {"198.18.0.0", 15},   {"224.0.0.0", 3},  // multicast, reserved and broadcast
    {"::", 128},          {"::1", 128},      {"fc00::", 7},      {"fe80::", 10},
    {"fec0::", 10},       {"ff00::", 8},
}};

} // namespace

Cidr::Cidr(const ip::address& network, unsigned prefix_length) : prefix_length_(prefix_length)
{
    ip::address net = unmapped(network);
    unsigned width = net.is_v4() ? 32 : 128;
    if (prefix_length > width)
        throw bad_cidr(network.to_string() + "/" + std::to_string(prefix_length), "the prefix is too long.");
    if (net.is_v4())
        network_ = ip::address_v4(masked(net.to_v4().to_bytes(), prefix_length));
    else
        network_ = ip::address_v6(masked(net.to_v6().to_bytes(), prefix_length));
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
    ip::address address = ip::make_address(std::string(address_text), ec);
    if (ec)
        throw bad_cidr(text, "expected ADDRESS/LENGTH.");
    address = unmapped(address);
    return Cidr(address, length.value_or(address.is_v4() ? 32u : 128u));
}

bool Cidr::contains(const ip::address& address) const noexcept
{
    ip::address a = unmapped(address);
    if (a.is_v4() != network_.is_v4())
        return false;
    if (a.is_v4())
        return prefix_equal(a.to_v4().to_bytes(), network_.to_v4().to_bytes(), prefix_length_);
    return prefix_equal(a.to_v6().to_bytes(), network_.to_v6().to_bytes(), prefix_length_);
}

std::string Cidr::to_string() const
{
    return network_.to_string() + "/" + std::to_string(prefix_length_);
}

bool is_internal_address(const ip::address& address) noexcept
{
    static const std::vector<Cidr> ranges = [] {
        std::vector<Cidr> out;
        for (const InternalRange& r : internal_ranges)
            out.emplace_back(ip::make_address(std::string(r.network)), r.length);
        return out;
    }();
    for (const Cidr& range : ranges)
        if (range.contains(address))
            return true;
    return false;
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

std::function<bool(const ip::address&)> AddressPolicy::as_filter() const
{
    return [policy = *this](const ip::address& address) { return policy.permits(address); };
}

} // namespace whisperer
