#ifndef WHISPERER_ADDRESS_POLICY_HPP
#define WHISPERER_ADDRESS_POLICY_HPP

#include <boost/asio/ip/address.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// An IPv4 or IPv6 network such as `127.0.0.0/8` or `fd00::/8`. A value type.
class Cidr {
public:
    /// `network` is masked to `prefix_length` bits; throws `ValidationError` (field "cidr") when
    /// the length exceeds the address's width.
    Cidr(const boost::asio::ip::address& network, unsigned prefix_length);

    /// Parses `ADDRESS/LENGTH`, or a bare address (a single host). Throws `ValidationError`
    /// (field "cidr") on anything else.
    static Cidr parse(std::string_view text);

    /// True when `address` lies in this network. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is treated as the IPv4 address it carries.
    bool contains(const boost::asio::ip::address& address) const noexcept;

    /// The canonical `ADDRESS/LENGTH` text.
    std::string to_string() const;

private:
    boost::asio::ip::address network_;
    unsigned prefix_length_;
};

/// True for addresses a webhook must not reach by default: unspecified, loopback, private
/// (RFC 1918, IPv6 unique local), shared (100.64.0.0/10), link-local, multicast, broadcast and
/// reserved ranges. An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
bool is_internal_address(const boost::asio::ip::address& address) noexcept;

/// Which resolved addresses deliveries may connect to: every public address, and internal ones
/// only inside an explicitly allowed network (e.g. `127.0.0.0/8` for local demos and tests).
///
/// A value type; `permits` is safe to call from several threads once configured.
class AddressPolicy {
public:
    AddressPolicy() = default;
    explicit AddressPolicy(std::vector<Cidr> allowed) : allowed_(std::move(allowed)) {}

    /// Lets deliveries reach internal addresses inside `network`.
    void allow(Cidr network) { allowed_.push_back(std::move(network)); }

    /// True when a delivery may connect to `address`.
    bool permits(const boost::asio::ip::address& address) const noexcept;

    /// A copy of this policy as a `DispatcherOptions::address_filter`.
    std::function<bool(const boost::asio::ip::address&)> as_filter() const;

    const std::vector<Cidr>& allowed() const noexcept { return allowed_; }

private:
    std::vector<Cidr> allowed_;
};

} // namespace whisperer

#endif
