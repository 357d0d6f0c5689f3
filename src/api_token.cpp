#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/signature.hpp>

#include <openssl/rand.h>

#include <stdexcept>

namespace whisperer {

std::string issue_token(SubscriptionStore& store, std::string owner, bool admin, bool publisher)
{
    if (owner.empty())
        throw ValidationError("owner", "owner is required.");
    // An owner that no hook could have is refused now rather than at the token's first hook.
    if (const std::size_t limit = HookRules{}.max_name_length; owner.size() > limit)
        throw ValidationError("owner", "owner may have at most " + std::to_string(limit) + " characters.");
    unsigned char bytes[20];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string key(2 * sizeof bytes, '0');
    for (std::size_t i = 0; i < sizeof bytes; ++i) {
        key[2 * i] = hex[bytes[i] >> 4];
        key[2 * i + 1] = hex[bytes[i] & 0x0f];
    }
    ApiToken token;
    token.owner = std::move(owner);
    token.admin = admin;
    token.publisher = publisher;
    token.created = Clock::now();
    store.add_token(sha256_hex(key), token);
    return key;
}

} // namespace whisperer
