#ifndef WHISPERER_SIGNATURE_HPP
#define WHISPERER_SIGNATURE_HPP

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// `sha256=<hex HMAC-SHA256(secret, body)>`: dj-whisperer's `X-Whisperer-Signature`.
/// The key is the secret string's bytes as given, also for a `whsec_` secret.
std::string whisperer_signature(std::string_view secret, std::string_view body);

/// The `X-Whisperer-Signature` header value: one `sha256=<hex>` per secret, space-separated
/// (several only while a rotation's grace period runs).
std::string whisperer_signature_header(std::span<const std::string> secrets, std::string_view body);

/// The Standard Webhooks v1 signature `v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`.
/// For a `whsec_<base64>` secret the key is the decoded bytes; any other secret is used as is.
std::string standard_signature(std::string_view secret, std::string_view webhook_id,
                               std::int64_t timestamp, std::string_view body);

/// The HMAC key of the Standard Webhooks scheme: the base64-decoded bytes of a `whsec_` secret,
/// any other secret as is.
std::string standard_signing_key(std::string_view secret);

/// The `webhook-signature` header value: one v1 signature per secret, space-separated.
std::string standard_signature_header(std::span<const std::string> secrets,
                                      std::string_view webhook_id, std::int64_t timestamp,
                                      std::string_view body);

/// A new secret: `whsec_` + base64 of 32 bytes from a CSPRNG.
std::string generate_secret();

/// Lowercase hex SHA-256 of `data` (how API token keys are stored).
std::string sha256_hex(std::string_view data);

/// Constant-time comparison of two strings (the time depends only on their lengths).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

} // namespace whisperer

#endif
