#ifndef WHISPERER_SRC_DETAIL_HTTP_TARGET_HPP
#define WHISPERER_SRC_DETAIL_HTTP_TARGET_HPP

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace whisperer::detail {

/// Where an absolute http(s) URL points: the origin to connect to and the request target.
struct HttpTarget {
    bool tls = false;
    std::string host;        ///< Name or IP literal, without brackets.
    unsigned short port = 0;
    std::string target;      ///< Path and query, never empty.
    std::string host_header; ///< `host[:port]` as the Host header spells it.
    std::string origin;      ///< `scheme://host:port`, the key of the connection pool.

    /// Parses `url`; nullopt unless it is an absolute http or https URL with a host.
    static std::optional<HttpTarget> parse(std::string_view url)
    {
        auto parsed = boost::urls::parse_uri(url);
        if (!parsed)
            return std::nullopt;
        const boost::urls::url_view& u = *parsed;
        HttpTarget t;
        if (u.scheme_id() == boost::urls::scheme::https)
            t.tls = true;
        else if (u.scheme_id() != boost::urls::scheme::http)
            return std::nullopt;
        std::string_view host = u.encoded_host_address();
        if (host.empty())
            return std::nullopt;
        // A path after a host begins with "/": anything else is a host that Boost.URL cut short
        // ("127.0.0.1.evil.com" read as 127.0.0.1 followed by ".evil.com").
        if (!u.encoded_path().empty() && !u.encoded_path().starts_with('/'))
            return std::nullopt;
        t.host.assign(host);
        const unsigned short default_port = t.tls ? 443 : 80;
        // An empty port ("http://host:/") is the scheme's default (RFC 3986 3.2.3).
        const bool has_port = u.has_port() && !u.port().empty();
        t.port = has_port ? u.port_number() : default_port;
        if (has_port && t.port == 0)
            return std::nullopt;
        std::string_view target = u.encoded_target();
        t.target = target.empty() ? std::string("/") : std::string(target);
        if (t.target.front() != '/')
            t.target.insert(0, 1, '/');
        const bool ipv6 = u.host_type() == boost::urls::host_type::ipv6;
        t.host_header = ipv6 ? "[" + t.host + "]" : t.host;
        if (t.port != default_port)
            t.host_header += ":" + std::to_string(t.port);
        t.origin = (t.tls ? "https://" : "http://") + t.host_header;
        if (t.port == default_port)
            t.origin += ":" + std::to_string(t.port);
        return t;
    }
};

} // namespace whisperer::detail

#endif
