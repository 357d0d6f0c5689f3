#ifndef WHISPERER_VERIFY_HPP
#define WHISPERER_VERIFY_HPP

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace whisperer {

/// The signature scheme a webhook was verified with.
enum class SignatureScheme {
    none,              ///< Nothing verified.
    standard_webhooks, ///< `webhook-id`, `webhook-timestamp`, `webhook-signature` (v1).
    whisperer,         ///< `X-Whisperer-Signature: sha256=<hex>` over the body alone.
};

/// Why a webhook was or was not accepted.
enum class VerifyStatus {
    verified,          ///< A signature matched one of the secrets.
    missing_headers,   ///< Neither the Standard Webhooks headers nor X-Whisperer-Signature.
    invalid_timestamp, ///< `webhook-timestamp` is not integer Unix seconds.
    stale,             ///< The timestamp is older than the tolerance: possibly a replay.
    future,            ///< The timestamp is further ahead than the tolerance.
    no_known_version,  ///< `webhook-signature` holds no `v1,` signature (other versions are ignored).
    bad_signature,     ///< No signature matched any secret.
    no_secret,         ///< No secret was given, or one is empty: an empty key lets anyone sign.
};

/// The result of `verify_webhook`; converts to true only when verified.
struct VerifyResult {
    VerifyStatus status = VerifyStatus::missing_headers;
    SignatureScheme scheme = SignatureScheme::none;
    std::string reason; ///< One sentence for logs; never contains a secret or a signature.

    explicit operator bool() const noexcept { return status == VerifyStatus::verified; }
};

std::string_view to_string(VerifyStatus status) noexcept;
std::string_view to_string(SignatureScheme scheme) noexcept;

/// Request headers as name/value pairs; names are matched case-insensitively.
using HeaderPairs = std::span<const std::pair<std::string, std::string>>;

/// Returns a header's value (any case of `name`), or nullopt; adapts any header container.
using HeaderLookup = std::function<std::optional<std::string_view>(std::string_view name)>;

/// How `verify_webhook` decides.
struct VerifyOptions {
    /// A Standard Webhooks timestamp further than this from now, either way, is refused.
    std::chrono::seconds tolerance{300};
    /// Accept `X-Whisperer-Signature` when the Standard Webhooks headers are absent. Off by
    /// default: that signature covers the body only, so a captured delivery whose `webhook-*`
    /// headers are stripped could be replayed forever. Turn it on only for senders that cannot
    /// send the Standard Webhooks headers, and deduplicate by body on your side.
    bool accept_whisperer_signature = false;
    /// The time to judge timestamps against; the system clock when empty.
    std::optional<std::chrono::system_clock::time_point> now;
};

/// Verifies a received webhook in one call: the Standard Webhooks v1 signature when the
/// `webhook-*` headers are present (several space-separated signatures, unknown versions
/// ignored, the timestamp within `tolerance` of now); `X-Whisperer-Signature` (also several
/// space-separated `sha256=` signatures) only when `accept_whisperer_signature` is set.
/// `body` must be the exact bytes received. Each secret may be a `whsec_` secret or a raw one,
/// as when signing; pass the old and the new secret during a rotation. No secret, or an empty
/// one (also `whsec_` with nothing after it), is refused with `no_secret` before anything is
/// compared. Comparisons are constant time. Never throws for bad input; thread-safe.
VerifyResult verify_webhook(HeaderPairs headers, std::string_view body, std::span<const std::string> secrets,
                            std::chrono::seconds tolerance = std::chrono::minutes(5));

/// As above, with every option.
VerifyResult verify_webhook(HeaderPairs headers, std::string_view body, std::span<const std::string> secrets,
                            const VerifyOptions& options);

/// As above, reading headers through `lookup` (e.g. over a Beast or framework request).
VerifyResult verify_webhook(const HeaderLookup& lookup, std::string_view body, std::span<const std::string> secrets,
                            const VerifyOptions& options = {});

} // namespace whisperer

#endif
