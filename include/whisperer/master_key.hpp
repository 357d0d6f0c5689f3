#ifndef WHISPERER_MASTER_KEY_HPP
#define WHISPERER_MASTER_KEY_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// The 256-bit key that encrypts hook secrets at rest (AES-256-GCM); give it to a store through
/// `SqliteOptions::master_key`.
///
/// Losing the key loses every encrypted secret: keep it apart from the database and its
/// backups. The bytes are wiped when the object is destroyed. A value type; thread-safe to read.
class MasterKey {
public:
    static constexpr std::size_t size = 32;

    /// A key from exactly 32 raw bytes (from a KMS, a secret manager...); throws
    /// `std::invalid_argument` for any other length.
    static MasterKey from_bytes(std::string_view bytes);

    /// The key in the file at `path`. A missing file is created first, atomically, with 32 bytes
    /// from the CSPRNG and mode 0600. Throws `StoreError` with a clear message when the path is a
    /// symbolic link (never followed), the file is not a regular file, is owned by another user
    /// than the process's effective one, is readable or writable by group or others, does not
    /// hold exactly 32 bytes, or cannot be read or created.
    static MasterKey from_file(const std::string& path);

    /// A new key of 32 bytes from the CSPRNG.
    static MasterKey generate();

    MasterKey(const MasterKey&) = default;
    MasterKey& operator=(const MasterKey&) = default;
    ~MasterKey();

    std::span<const unsigned char, size> bytes() const noexcept { return bytes_; }

private:
    MasterKey() = default;
    std::array<unsigned char, size> bytes_{};
};

/// What re-sealing a store's credentials under a new master key did (`SqliteStore::rekey`,
/// `PostgresStore::rekey`).
struct RekeyResult {
    std::size_t hooks = 0;  ///< Hooks whose stored credentials were sealed again.
    std::size_t values = 0; ///< Credentials sealed again (secrets, retired secrets, passwords, header values).
    /// Hooks with a credential that the old key could not open (damaged, or moved from another
    /// hook): left as they were, and as unreadable as before.
    std::vector<std::int64_t> unreadable_hooks;
};

} // namespace whisperer

#endif
