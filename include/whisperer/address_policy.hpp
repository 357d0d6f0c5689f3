#ifndef WHISPERER_ADDRESS_POLICY_HPP
#define WHISPERER_ADDRESS_POLICY_HPP

#include <boost/asio/ip/address.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// Decides for one resolved address whether a delivery may connect to it (the SSRF guard).
using AddressFilter = std::function<bool(const boost::asio::ip::address&)>;

/// An IPv4 or IPv6 network such as `127.0.0.0/8` or `fd00::/8`. A value type.
class Cidr {
public:
    /// `network` is masked to `prefix_length` bits; throws `ValidationError` (field "cidr") when
    /// the length exceeds the address's width. An IPv4-mapped network of length 96 or more is
    /// the IPv4 network it carries (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
    Cidr(const boost::asio::ip::address& network, unsigned prefix_length);

    /// Parses `ADDRESS/LENGTH`, or a bare address (a single host). Throws `ValidationError`
    /// (field "cidr") on anything else.
    static Cidr parse(std::string_view text);

    /// True when `address` lies in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// and the IPv4 address it carries are the same address.
    bool contains(const boost::asio::ip::address& address) const noexcept;

    /// The canonical `ADDRESS/LENGTH` text.
    std::string to_string() const;

private:
    boost::asio::ip::address network_;
    unsigned prefix_length_;
};

/// The name of the special-purpose range `address` lies in ("loopback", "private", ...), or
/// empty for a public unicast address.
///
/// IPv4: 0/8, 10/8, 100.64/10 (CGNAT), 127/8, 169.254/16 (link-local, cloud metadata),
/// 172.16/12, 192.0.0/24, the documentation nets 192.0.2/24, 198.51.100/24, 203.0.113/24,
/// 192.88.99/24 (6to4 relay), 192.168/16, 198.18/15 (benchmarking), 224/4 (multicast) and
/// 240/4 (reserved, with the broadcast address). IPv6: everything outside 2000::/3 (unspecified,
/// loopback, unique-local fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast,
/// discard 100::/64, ...), 2001::/23 (IETF assignments, with Teredo 2001::/32 and benchmarking),
/// documentation 2001:db8::/32 and 3fff::/20, and local-use NAT64 64:ff9b:1::/48.
///
/// IPv4 carried inside IPv6 is judged as the IPv4 address it carries: IPv4-mapped
/// `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:AABB:CCDD::/48`. Teredo is refused as a whole. Thread-safe.
std::string_view internal_range(const boost::asio::ip::address& address) noexcept;

/// True when `internal_range(address)` is not empty: a webhook must not reach it by default.
bool is_internal_address(const boost::asio::ip::address& address) noexcept;

/// What the host of a URL is, read the way URL parsers (WHATWG) and `inet_aton` read it.
struct UrlHost {
    enum class Kind {
        name,    ///< A host name, to be resolved.
        address, ///< An IP literal; `address` holds what it means.
        invalid, ///< Ends in a number, so it must be IPv4, but is not a valid IPv4 address.
    };
    Kind kind = Kind::name;
    boost::asio::ip::address address;
};

/// Reads `host` (as it appears in a URL, percent-decoded; IPv6 with or without brackets).
/// Besides dotted decimal, IPv4 is accepted in every form the WHATWG URL standard and
/// `inet_aton` accept: one to four parts, each decimal, octal (leading `0`) or hex (`0x`), the
/// last part filling the remaining bytes (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`), and
/// one trailing dot. A host whose last label is numeric but that is not a valid IPv4 address
/// (`1.2.3.256`, `1.2.3.4.5`) is `invalid`.
UrlHost parse_url_host(std::string_view host) noexcept;

/// Which resolved addresses deliveries may connect to: every public address, and internal ones
/// only inside an explicitly allowed network (e.g. `127.0.0.0/8` for local demos and tests).
///
/// A value type; `permits` is safe to call from several threads once configured.
class AddressPolicy {
public:
    AddressPolicy() = default;
    explicit AddressPolicy(std::vector<Cidr> allowed) : allowed_(std::move(allowed)) {}

    /// A policy that permits every address: the guard turned off. Only for hosts whose every
    /// subscriber is trusted.
    static AddressPolicy unrestricted();

    /// Lets deliveries reach internal addresses inside `network`; returns `*this` to chain.
    AddressPolicy& allow(Cidr network)
    {
        allowed_.push_back(std::move(network));
        return *this;
    }

    /// True when a delivery may connect to `address`.
    bool permits(const boost::asio::ip::address& address) const noexcept;

    /// A copy of this policy as a `DispatcherOptions::address_filter`.
    AddressFilter as_filter() const;

    const std::vector<Cidr>& allowed() const noexcept { return allowed_; }

private:
    std::vector<Cidr> allowed_;
};

/// `filter`, or the default policy's filter (public unicast addresses only) when it is null.
AddressFilter address_filter_or_default(AddressFilter filter);

} // namespace whisperer

#endif
