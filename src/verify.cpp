#include <whisperer/signature.hpp>
#include <whisperer/verify.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <vector>

namespace whisperer {

namespace {

// Bounds the work an attacker can ask for: signatures looked at per request.
constexpr std::size_t max_signatures = 32;

bool iequals(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

VerifyResult refused(VerifyStatus status, SignatureScheme scheme, std::string reason)
{
    return {status, scheme, std::move(reason)};
}

VerifyResult verify_standard(std::string_view id, std::string_view timestamp_text, std::string_view signatures,
                             std::string_view body, std::span<const std::string> secrets, const VerifyOptions& options)
{
    constexpr auto scheme = SignatureScheme::standard_webhooks;
    std::int64_t timestamp = 0;
    timestamp_text = trim(timestamp_text);
    auto [end, ec] = std::from_chars(timestamp_text.data(), timestamp_text.data() + timestamp_text.size(), timestamp);
    if (timestamp_text.empty() || ec != std::errc() || end != timestamp_text.data() + timestamp_text.size())
        return refused(VerifyStatus::invalid_timestamp, scheme, "webhook-timestamp is not integer Unix seconds.");

    const auto now = options.now.value_or(std::chrono::system_clock::now());
    const std::int64_t now_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    const std::int64_t tolerance = options.tolerance.count();
    if (timestamp < now_seconds - tolerance)
        return refused(VerifyStatus::stale, scheme, "webhook-timestamp is older than the tolerance.");
    if (timestamp > now_seconds + tolerance)
        return refused(VerifyStatus::future, scheme, "webhook-timestamp is further ahead than the tolerance.");

    std::vector<std::string> expected;
    expected.reserve(secrets.size());
    for (const std::string& secret : secrets)
        expected.push_back(standard_signature(secret, id, timestamp, body));

    bool saw_v1 = false;
    bool matched = false;
    std::size_t seen = 0;
    for (std::size_t start = 0; start < signatures.size() && seen < max_signatures;) {
        std::size_t space = signatures.find(' ', start);
        if (space == std::string_view::npos)
            space = signatures.size();
        const std::string_view candidate = signatures.substr(start, space - start);
        start = space + 1;
        if (candidate.empty())
            continue;
        ++seen;
        if (!candidate.starts_with("v1,"))
            continue; // Another version (v1a, a future v2): not ours to judge.
        saw_v1 = true;
        // Every secret is compared, so the time does not tell which one matched.
        for (const std::string& e : expected)
            matched |= constant_time_equal(candidate, e);
    }
    if (!saw_v1)
        return refused(VerifyStatus::no_known_version, scheme, "webhook-signature holds no v1 signature.");
    if (!matched)
        return refused(VerifyStatus::bad_signature, scheme, "No v1 signature matches any of the secrets.");
    return {VerifyStatus::verified, scheme, "A v1 signature matches."};
}

VerifyResult verify_whisperer(std::string_view signatures, std::string_view body, std::span<const std::string> secrets)
{
    std::vector<std::string> expected;
    expected.reserve(secrets.size());
    for (const std::string& secret : secrets)
        expected.push_back(whisperer_signature(secret, body));
    // Several space-separated signatures while the sender rotates its secret.
    bool matched = false;
    std::size_t seen = 0;
    for (std::size_t start = 0; start < signatures.size() && seen < max_signatures;) {
        std::size_t space = signatures.find(' ', start);
        if (space == std::string_view::npos)
            space = signatures.size();
        const std::string_view candidate = trim(signatures.substr(start, space - start));
        start = space + 1;
        if (candidate.empty())
            continue;
        ++seen;
        for (const std::string& e : expected)
            matched |= constant_time_equal(candidate, e);
    }
    if (!matched)
        return refused(VerifyStatus::bad_signature, SignatureScheme::whisperer,
                       "X-Whisperer-Signature matches none of the secrets.");
    return {VerifyStatus::verified, SignatureScheme::whisperer, "X-Whisperer-Signature matches."};
}

} // namespace

std::string_view to_string(VerifyStatus status) noexcept
{
    switch (status) {
    case VerifyStatus::verified: return "verified";
    case VerifyStatus::missing_headers: return "missing_headers";
    case VerifyStatus::invalid_timestamp: return "invalid_timestamp";
    case VerifyStatus::stale: return "stale";
    case VerifyStatus::future: return "future";
    case VerifyStatus::no_known_version: return "no_known_version";
    case VerifyStatus::bad_signature: return "bad_signature";
    case VerifyStatus::no_secret: return "no_secret";
    }
    return "bad_signature";
}

std::string_view to_string(SignatureScheme scheme) noexcept
{
    switch (scheme) {
    case SignatureScheme::none: return "none";
    case SignatureScheme::standard_webhooks: return "standard_webhooks";
    case SignatureScheme::whisperer: return "whisperer";
    }
    return "none";
}

VerifyResult verify_webhook(const HeaderLookup& lookup, std::string_view body, std::span<const std::string> secrets,
                            const VerifyOptions& options)
{
    // An empty key is public: anyone can compute its signatures.
    if (secrets.empty() || std::any_of(secrets.begin(), secrets.end(),
                                       [](const std::string& s) { return standard_signing_key(s).empty(); }))
        return refused(VerifyStatus::no_secret, SignatureScheme::none,
                       "No secret was given, or one of them is empty.");
    const auto id = lookup("webhook-id");
    const auto timestamp = lookup("webhook-timestamp");
    const auto signature = lookup("webhook-signature");
    if (id && timestamp && signature)
        return verify_standard(*id, *timestamp, *signature, body, secrets, options);
    if (options.accept_whisperer_signature)
        if (const auto legacy = lookup("x-whisperer-signature"))
            return verify_whisperer(*legacy, body, secrets);
    if (id || timestamp || signature)
        return refused(VerifyStatus::missing_headers, SignatureScheme::standard_webhooks,
                       "webhook-id, webhook-timestamp and webhook-signature are all required.");
    return refused(VerifyStatus::missing_headers, SignatureScheme::none,
                   options.accept_whisperer_signature
                       ? "Neither the webhook-* headers nor X-Whisperer-Signature are present."
                       : "webhook-id, webhook-timestamp and webhook-signature are all required.");
}

VerifyResult verify_webhook(HeaderPairs headers, std::string_view body, std::span<const std::string> secrets,
                            const VerifyOptions& options)
{
    const HeaderLookup lookup = [headers](std::string_view name) -> std::optional<std::string_view> {
        for (const auto& [key, value] : headers)
            if (iequals(key, name))
                return std::string_view(value);
        return std::nullopt;
    };
    return verify_webhook(lookup, body, secrets, options);
}

VerifyResult verify_webhook(HeaderPairs headers, std::string_view body, std::span<const std::string> secrets,
                            std::chrono::seconds tolerance)
{
    VerifyOptions options;
    options.tolerance = tolerance;
    return verify_webhook(headers, body, secrets, options);
}

} // namespace whisperer
