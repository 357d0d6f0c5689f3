#include "detail/secret_box.hpp"

#include "detail/base64.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace whisperer::detail {

namespace {

constexpr int nonce_size = 12;
constexpr int tag_size = 16;
/// What `enc:v1:` values were authenticated with: one label for every secret of every hook.
constexpr std::string_view unbound_associated_data = "whisperer hook secret v1";

struct CipherContextFree {
    void operator()(EVP_CIPHER_CTX* context) const noexcept { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextFree>;

CipherContext new_context()
{
    CipherContext context{EVP_CIPHER_CTX_new()};
    if (!context)
        throw std::runtime_error("whisperer: cannot allocate an AES-256-GCM context");
    return context;
}

const unsigned char* bytes_of(std::string_view s) noexcept
{
    return reinterpret_cast<const unsigned char*>(s.data());
}

std::string seal_with(const MasterKey& key, std::string_view prefix, std::string_view value,
                      std::string_view associated_data)
{
    std::string raw(nonce_size + value.size() + tag_size, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (RAND_bytes(out, nonce_size) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    auto context = new_context();
    int length = 0;
    if (EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), out) != 1 ||
        EVP_EncryptUpdate(context.get(), nullptr, &length, bytes_of(associated_data),
                          static_cast<int>(associated_data.size())) != 1 ||
        EVP_EncryptUpdate(context.get(), out + nonce_size, &length, bytes_of(value),
                          static_cast<int>(value.size())) != 1 ||
        EVP_EncryptFinal_ex(context.get(), out + nonce_size + length, &length) != 1 ||
        EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, tag_size, out + nonce_size + value.size()) != 1)
        throw std::runtime_error("whisperer: AES-256-GCM encryption failed");
    return std::string(prefix) + base64_encode(raw);
}

std::optional<std::string> open_with(const MasterKey& key, std::string_view prefix, std::string_view sealed,
                                     std::string_view associated_data)
{
    if (!sealed.starts_with(prefix))
        return std::nullopt;
    auto raw = base64_decode(sealed.substr(prefix.size()));
    if (!raw || raw->size() < static_cast<std::size_t>(nonce_size + tag_size))
        return std::nullopt;
    const auto* in = bytes_of(*raw);
    const std::size_t text_size = raw->size() - nonce_size - tag_size;
    std::string value(text_size, '\0');
    auto* out = reinterpret_cast<unsigned char*>(value.data());
    auto context = new_context();
    int length = 0;
    // The tag is set before the final step, which checks it.
    std::string tag = raw->substr(nonce_size + text_size);
    if (EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), in) != 1 ||
        EVP_DecryptUpdate(context.get(), nullptr, &length, bytes_of(associated_data),
                          static_cast<int>(associated_data.size())) != 1 ||
        EVP_DecryptUpdate(context.get(), out, &length, in + nonce_size, static_cast<int>(text_size)) != 1 ||
        EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) != 1 ||
        EVP_DecryptFinal_ex(context.get(), out + length, &length) != 1)
        return std::nullopt;
    return value;
}

} // namespace

std::string SecretBox::seal(std::string_view value, std::string_view binding) const
{
    return seal_with(key_, prefix, value, binding);
}

std::optional<std::string> SecretBox::open(std::string_view sealed, std::string_view binding) const
{
    return open_with(key_, prefix, sealed, binding);
}

std::optional<std::string> SecretBox::open_unbound(std::string_view sealed) const
{
    return open_with(key_, unbound_prefix, sealed, unbound_associated_data);
}

std::string SecretBox::key_check() const
{
    constexpr std::string_view label = "whisperer master key check v1";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (HMAC(EVP_sha256(), key_.bytes().data(), static_cast<int>(key_.bytes().size()), bytes_of(label),
             label.size(), digest, &length) == nullptr)
        throw std::runtime_error("whisperer: HMAC-SHA256 failed");
    return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::string credential_binding(std::int64_t hook_id, std::string_view field)
{
    // The id is digits and ends at the space, so no two (hook, field) pairs give one text.
    return "whisperer v2 hook " + std::to_string(hook_id) + " " + std::string(field);
}

} // namespace whisperer::detail
