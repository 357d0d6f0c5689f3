// Encryption of hook secrets at rest, for the stores.
#ifndef WHISPERER_SRC_DETAIL_SECRET_BOX_HPP
#define WHISPERER_SRC_DETAIL_SECRET_BOX_HPP

#include <whisperer/master_key.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace whisperer::detail {

/// Seals hook secrets with AES-256-GCM under a master key: the stored text is `enc:v1:` and the
/// base64 of a fresh random 96-bit nonce, the ciphertext and the 128-bit tag. Thread-safe: it
/// holds nothing but the key.
class SecretBox {
public:
    /// The prefix of every sealed value; plaintext values (written before a key was configured)
    /// do not start with it.
    static constexpr std::string_view prefix = "enc:v1:";

    explicit SecretBox(const MasterKey& key) : key_(key) {}

    /// The stored text of `secret`; a different one at every call (fresh nonce).
    std::string seal(std::string_view secret) const;

    /// The secret in `sealed`, or nullopt when it is not a value sealed with this key (another
    /// key, changed bytes, not sealed at all).
    std::optional<std::string> open(std::string_view sealed) const;

    static bool is_sealed(std::string_view stored) noexcept { return stored.starts_with(prefix); }

    /// A value that identifies the key without revealing it (HMAC-SHA256 of a fixed label,
    /// base64), stored next to the secrets so that opening with another key fails at once.
    std::string key_check() const;

private:
    MasterKey key_;
};

/// The stored text of `secret`: sealed when `box` is set, as is otherwise (empty stays empty).
std::string stored_secret(std::string_view secret, const SecretBox* box);

/// The secret of a stored text: sealed ones are opened with `box`, plaintext ones returned as is.
/// Throws `StoreError` naming the hook when the text is sealed and `box` is null or cannot open it.
std::string revealed_secret(std::string stored, const SecretBox* box, std::int64_t hook_id);

} // namespace whisperer::detail

#endif
