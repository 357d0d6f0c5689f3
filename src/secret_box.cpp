#include "detail/secret_box.hpp"

#include "detail/base64.hpp"

#include <whisperer/error.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace whisperer::detail {

namespace {

constexpr int nonce_size = 12;
constexpr int tag_size = 16;
/// Authenticated with every value: a sealed secret means nothing in another role.
constexpr std::string_view associated_data = "whisperer hook secret v1";

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

} // namespace

std::string SecretBox::seal(std::string_view secret) const
{
    std::string raw(nonce_size + secret.size() + tag_size, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (RAND_bytes(out, nonce_size) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    auto context = new_context();
    int length = 0;
    if (EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key_.bytes().data(), out) != 1 ||
        EVP_EncryptUpdate(context.get(), nullptr, &length, bytes_of(associated_data),
                          static_cast<int>(associated_data.size())) != 1 ||
        EVP_EncryptUpdate(context.get(), out + nonce_size, &length, bytes_of(secret),
                          static_cast<int>(secret.size())) != 1 ||
        EVP_EncryptFinal_ex(context.get(), out + nonce_size + length, &length) != 1 ||
        EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, tag_size, out + nonce_size + secret.size()) != 1)
        throw std::runtime_error("whisperer: AES-256-GCM encryption failed");
    return std::string(prefix) + base64_encode(raw);
}

std::optional<std::string> SecretBox::open(std::string_view sealed) const
{
    if (!is_sealed(sealed))
        return std::nullopt;
    auto raw = base64_decode(sealed.substr(prefix.size()));
    if (!raw || raw->size() < static_cast<std::size_t>(nonce_size + tag_size))
        return std::nullopt;
    const auto* in = bytes_of(*raw);
    const std::size_t text_size = raw->size() - nonce_size - tag_size;
    std::string secret(text_size, '\0');
    auto* out = reinterpret_cast<unsigned char*>(secret.data());
    auto context = new_context();
    int length = 0;
    // The tag is set before the final step, which checks it.
    std::string tag = raw->substr(nonce_size + text_size);
    if (EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key_.bytes().data(), in) != 1 ||
        EVP_DecryptUpdate(context.get(), nullptr, &length, bytes_of(associated_data),
                          static_cast<int>(associated_data.size())) != 1 ||
        EVP_DecryptUpdate(context.get(), out, &length, in + nonce_size, static_cast<int>(text_size)) != 1 ||
        EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, tag_size, tag.data()) != 1 ||
        EVP_DecryptFinal_ex(context.get(), out + length, &length) != 1)
        return std::nullopt;
    return secret;
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

std::string stored_secret(std::string_view secret, const SecretBox* box)
{
    if (box == nullptr || secret.empty())
        return std::string(secret);
    return box->seal(secret);
}

std::string revealed_secret(std::string stored, const SecretBox* box, std::int64_t hook_id)
{
    if (!SecretBox::is_sealed(stored))
        return stored;
    if (box == nullptr)
        throw StoreError("A secret of hook " + std::to_string(hook_id) +
                         " is encrypted and the store has no master key to decrypt it");
    auto secret = box->open(stored);
    if (!secret)
        throw StoreError("A secret of hook " + std::to_string(hook_id) +
                         " cannot be decrypted with the master key (another key, or damaged data)");
    return std::move(*secret);
}

} // namespace whisperer::detail
