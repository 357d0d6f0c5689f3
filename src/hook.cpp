#include <whisperer/error.hpp>
#include <whisperer/event.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/retry_countdown.hpp>

#include "detail/http_target.hpp"
#include "detail/json_depth.hpp"

#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace whisperer {

namespace {

namespace json = boost::json;

bool iequals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

bool starts_with_ci(std::string_view s, std::string_view prefix) noexcept
{
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

/// RFC 9110 token characters, what a header name may consist of.
bool is_token(std::string_view s) noexcept
{
    static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || extra.find(c) != std::string_view::npos;
    });
}

bool has_control_chars(std::string_view s) noexcept
{
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return (u < 0x20 && c != '\t') || u == 0x7f;
    });
}

/// Refuses a host that cannot be an address, and an IP literal (in any form) that `filter` refuses.
void validate_url_host(std::string_view host, std::string_view field, const AddressFilter& filter)
{
    const UrlHost parsed = parse_url_host(host);
    if (parsed.kind == UrlHost::Kind::invalid)
        throw ValidationError(std::string(field), std::string(field) + " has a host that ends in a number but is "
                                                                       "not a valid IPv4 address.");
    if (parsed.kind == UrlHost::Kind::address && filter && !filter(parsed.address)) {
        std::string_view range = internal_range(parsed.address);
        throw ValidationError(std::string(field),
                              std::string(field) + " points to " + parsed.address.to_string() + " (" +
                                  std::string(range.empty() ? "refused by the address filter" : range) +
                                  "), which deliveries may not reach.");
    }
}

void validate_http_url(std::string_view url, std::string_view field, std::size_t max_length,
                       const AddressFilter& filter)
{
    if (url.empty())
        throw ValidationError(std::string(field), std::string(field) + " is required.");
    if (url.size() > max_length)
        throw ValidationError(std::string(field), std::string(field) + " may have at most " +
                                                      std::to_string(max_length) + " characters.");
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed)
        throw ValidationError(std::string(field), "Enter a valid URL: " + std::string(field) +
                                                      " must be an absolute http or https URL.");
    auto scheme = parsed->scheme_id();
    if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https)
        throw ValidationError(std::string(field), std::string(field) + " must use http or https.");
    if (parsed->encoded_host().empty())
        throw ValidationError(std::string(field), std::string(field) + " must name a host.");
    // Boost.URL 1.81 ends an IPv4 host early ("http://127.0.0.1.evil.com/" has host 127.0.0.1 and
    // path ".evil.com/"); after a host, a path must begin with "/", so refuse what it left over.
    if (!parsed->encoded_path().empty() && !parsed->encoded_path().starts_with('/'))
        throw ValidationError(std::string(field), std::string(field) + " has an invalid host.");
    // Read the port ourselves: port_number() is 0 or wraps around for ports beyond 65535.
    if (parsed->has_port() && !parsed->port().empty()) {
        std::string_view digits = parsed->port();
        std::uint32_t port = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
        if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535)
            throw ValidationError(std::string(field), std::string(field) + " must have a port from 1 to 65535.");
    }
    if (parsed->has_userinfo())
        throw ValidationError(std::string(field),
                              std::string(field) + " may not carry credentials; use config.auth.");
    // The dispatcher connects to the host as written; a percent-encoded one would be checked here
    // as one host ("1.%31.256" as 1.1.1.0) and resolved there as another name.
    if (parsed->host_type() == boost::urls::host_type::name &&
        std::string_view(parsed->encoded_host()).find('%') != std::string_view::npos)
        throw ValidationError(std::string(field), std::string(field) + " may not percent-encode its host.");
    if (parsed->host_type() == boost::urls::host_type::ipvfuture)
        throw ValidationError(std::string(field), std::string(field) + " has an unsupported IP literal.");
    validate_url_host(parsed->host_type() == boost::urls::host_type::ipv6 ? parsed->host_address()
                                                                          : parsed->host(),
                      field, filter);
}

void require_string(const json::object& o, std::string_view key, const std::string& field, bool required)
{
    const json::value* v = o.if_contains(key);
    if (v == nullptr) {
        if (required)
            throw ValidationError(field + "." + std::string(key), std::string(key) + " is required.");
        return;
    }
    if (!v->is_string() || (required && v->as_string().empty()))
        throw ValidationError(field + "." + std::string(key), std::string(key) + " must be a non-empty string.");
    if (has_control_chars(v->as_string()))
        throw ValidationError(field + "." + std::string(key), std::string(key) + " may not contain control characters.");
}

/// The mark of a value sealed at rest (`enc:v1:`, `enc:v2:`): a credential stored in clear that
/// started with it would read as sealed, and fail every read of its hook.
constexpr std::string_view sealed_mark = "enc:";

void refuse_sealed_mark(std::string_view value, const std::string& field)
{
    if (value.starts_with(sealed_mark))
        throw ValidationError(field, field + " may not start with \"" + std::string(sealed_mark) +
                                         "\", which marks values encrypted at rest.");
}

void validate_auth(const json::value& auth, std::size_t max_url_length, const AddressFilter& filter)
{
    const std::string field = "config.auth";
    const json::object* o = auth.if_object();
    if (o == nullptr)
        throw ValidationError(field, "config.auth must be an object.");
    const json::value* type = o->if_contains("auth_type");
    if (type == nullptr || !type->is_string())
        throw ValidationError(field + ".auth_type", "auth_type is required: \"basic\" or \"token\".");
    if (type->as_string() == "basic") {
        require_string(*o, "username", field, true);
        require_string(*o, "password", field, false);
    } else if (type->as_string() == "token") {
        const json::value* url = o->if_contains("url");
        if (url == nullptr || !url->is_string())
            throw ValidationError(field + ".url", "url of the login endpoint is required.");
        validate_http_url(url->as_string(), field + ".url", max_url_length, filter);
        require_string(*o, "username", field, true);
        require_string(*o, "password", field, false);
        for (std::string_view key : {"username_field", "password_field", "token_key"})
            require_string(*o, key, field, false);
        require_string(*o, "header_format", field, false);
        if (const json::value* format = o->if_contains("header_format"))
            if (std::string_view(format->as_string()).find("{}") == std::string_view::npos)
                throw ValidationError(field + ".header_format", "header_format must contain \"{}\".");
    } else {
        throw ValidationError(field + ".auth_type", "\"" + std::string(type->as_string()) +
                                                        "\" is not a valid auth_type (basic, token).");
    }
    if (const json::value* password = o->if_contains("password"))
        refuse_sealed_mark(password->as_string(), field + ".password");
}

void validate_headers(const Hook& hook, const HookRules& rules)
{
    const json::object& headers = hook.additional_headers;
    if (headers.size() > rules.max_additional_headers)
        throw ValidationError("additional_headers", "additional_headers may hold at most " +
                                                        std::to_string(rules.max_additional_headers) + " headers.");
    bool has_auth = hook.config.contains("auth");
    std::size_t total = 0;
    for (const auto& entry : headers) {
        // Named before the field is, so that an overlong name is not repeated in the error.
        if (entry.key().size() > rules.max_header_name_length)
            throw ValidationError("additional_headers", "Header names may have at most " +
                                                            std::to_string(rules.max_header_name_length) +
                                                            " characters.");
        std::string field = "additional_headers." + std::string(entry.key());
        if (!is_token(entry.key()))
            throw ValidationError(field, "Header name \"" + std::string(entry.key()) + "\" is not a valid token.");
        if (is_reserved_header(entry.key()) || (has_auth && iequals(entry.key(), "authorization")))
            throw ValidationError(field, "Header \"" + std::string(entry.key()) +
                                             "\" is set by whisperer and may not be overridden.");
        if (!entry.value().is_string())
            throw ValidationError(field, "Header values must be strings.");
        std::string_view value = entry.value().as_string();
        if (value.size() > rules.max_header_value_length)
            throw ValidationError(field, "Header value is longer than " +
                                             std::to_string(rules.max_header_value_length) + " characters.");
        if (has_control_chars(value))
            throw ValidationError(field, "Header values may not contain CR, LF or other control characters.");
        refuse_sealed_mark(value, field);
        total += entry.key().size() + value.size();
    }
    if (total > rules.max_additional_headers_size)
        throw ValidationError("additional_headers", "The names and values of additional_headers may have at most " +
                                                        std::to_string(rules.max_additional_headers_size) +
                                                        " characters together.");
}

void validate_name_length(std::string_view name, std::string_view field, std::size_t max_length)
{
    if (name.size() > max_length)
        throw ValidationError(std::string(field), std::string(field) + " may have at most " +
                                                      std::to_string(max_length) + " characters.");
}

} // namespace

std::string target_origin(std::string_view url)
{
    auto target = detail::HttpTarget::parse(url);
    return target ? std::move(target->origin) : std::string();
}

bool is_reserved_header(std::string_view name) noexcept
{
    static constexpr std::array<std::string_view, 11> exact = {
        "content-type", "content-length", "content-encoding", "transfer-encoding", "host",
        "user-agent",   "connection",     "keep-alive",       "te",                "upgrade",
        "expect"};
    for (std::string_view reserved : exact)
        if (iequals(name, reserved))
            return true;
    return starts_with_ci(name, "x-whisperer-") || starts_with_ci(name, "webhook-");
}

std::string mask_secret(std::string_view secret)
{
    if (secret.empty())
        return {};
    if (secret.size() <= 8)
        return "****";
    return "****" + std::string(secret.substr(secret.size() - 4));
}

void validate_secret(std::string_view secret, const HookRules& rules)
{
    if (secret.size() > rules.max_secret_length)
        throw ValidationError("secret_key", "secret_key may have at most " +
                                                std::to_string(rules.max_secret_length) + " characters.");
    if (has_control_chars(secret))
        throw ValidationError("secret_key", "secret_key may not contain control characters.");
    refuse_sealed_mark(secret, "secret_key");
}

void validate_hook(const Hook& hook, const HookRules& rules)
{
    validate_http_url(hook.target_url, "target_url", rules.max_url_length, rules.address_filter);
    validate_event_type(hook.event_type);
    if (rules.registry != nullptr && !rules.registry->contains(hook.event_type))
        throw ValidationError("event_type", "\"" + hook.event_type + "\" is not a valid choice.");
    if (hook.owner.empty())
        throw ValidationError("owner", "owner is required.");
    validate_name_length(hook.owner, "owner", rules.max_name_length);
    validate_secret(hook.secret_key, rules);
    static const CountdownRegistry builtin;
    (rules.countdowns ? *rules.countdowns : builtin).parse(hook.retry_countdown_config);
    validate_name_length(hook.callback, "callback", rules.max_name_length);
    if (!hook.callback.empty() && (rules.callbacks == nullptr || !rules.callbacks->contains(hook.callback)))
        throw ValidationError("callback", "\"" + hook.callback + "\" is not a registered callback.");
    validate_headers(hook, rules);
    if (json::serialize(hook.config).size() > rules.max_config_size)
        throw ValidationError("config", "config may have at most " + std::to_string(rules.max_config_size) +
                                            " characters as JSON.");
    if (detail::nested_deeper_than(hook.config, rules.max_config_depth))
        throw ValidationError("config", "config may nest arrays and objects at most " +
                                            std::to_string(rules.max_config_depth) + " levels deep.");
    if (const json::value* auth = hook.config.if_contains("auth"))
        validate_auth(*auth, rules.max_url_length, rules.address_filter);
}

} // namespace whisperer
