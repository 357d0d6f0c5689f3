// Encryption of hook secrets and credentials at rest, for the stores.
#ifndef WHISPERER_SRC_DETAIL_SECRET_BOX_HPP
#define WHISPERER_SRC_DETAIL_SECRET_BOX_HPP

#include <whisperer/master_key.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace whisperer::detail {

/// Seals values with AES-256-GCM under a master key: the stored text is `enc:v2:` and the
/// base64 of a fresh random 96-bit nonce, the ciphertext and the 128-bit tag. Each value is
/// bound to where it belongs by associated data (see `credential_binding`): a sealed value
/// opens only with the same key and the same binding. Thread-safe: it holds nothing but the key.
class SecretBox {
public:
    /// The prefix of every value sealed now.
    static constexpr std::string_view prefix = "enc:v2:";
    /// The prefix of values sealed before schema version 8, without a binding: read only by
    /// the upgrade that re-seals them (`open_unbound`).
    static constexpr std::string_view unbound_prefix = "enc:v1:";

    explicit SecretBox(const MasterKey& key) : key_(key) {}

    /// The stored text of `value` bound to `binding`; a different one at every call (fresh nonce).
    std::string seal(std::string_view value, std::string_view binding) const;

    /// The value in `sealed`, or nullopt when it is not an `enc:v2:` value sealed with this key
    /// and `binding` (another key, another hook or field, changed bytes, not sealed at all).
    std::optional<std::string> open(std::string_view sealed, std::string_view binding) const;

    /// The value of an `enc:v1:` text (sealed without a binding), or nullopt.
    std::optional<std::string> open_unbound(std::string_view sealed) const;

    /// True for a text in either sealed format; a plaintext value (written without a key) is
    /// refused at validation when it starts with `enc:`, so it never looks sealed.
    static bool is_sealed(std::string_view stored) noexcept
    {
        return stored.starts_with(prefix) || stored.starts_with(unbound_prefix);
    }

    /// A value that identifies the key without revealing it (HMAC-SHA256 of a fixed label,
    /// base64), stored next to the secrets so that opening with another key fails at once.
    std::string key_check() const;

    const MasterKey& key() const noexcept { return key_; }

private:
    MasterKey key_;
};

/// The associated data that binds a sealed value to hook `hook_id` and to `field`
/// (`secret_key`, `retired_secrets`, `config.auth.password`, `additional_headers.<name>`).
std::string credential_binding(std::int64_t hook_id, std::string_view field);

} // namespace whisperer::detail

#endif
