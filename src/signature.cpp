#include <whisperer/signature.hpp>

#include "detail/base64.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <initializer_list>
#include <stdexcept>

namespace whisperer {

namespace {

constexpr std::string_view standard_prefix = "whsec_";

/// SHA-256 as OpenSSL 3 implements it, fetched once: the one-shot HMAC() looks the algorithm up
/// again, under locks, on every call, which cost more than the hashing of a small envelope.
const EVP_MD* sha256()
{
    static const EVP_MD* md = [] {
        EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        if (fetched == nullptr)
            throw std::runtime_error("whisperer: SHA-256 is not available from OpenSSL");
        return fetched;
    }();
    return md;
}

/// HMAC-SHA256 (RFC 2104) over the prefetched digest, with a context per thread.
std::string hmac_sha256(std::string_view key, std::string_view message)
{
    constexpr std::size_t block = 64;
    struct Context {
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        ~Context() { EVP_MD_CTX_free(ctx); }
    };
    thread_local Context context;
    EVP_MD_CTX* ctx = context.ctx;
    if (ctx == nullptr)
        throw std::runtime_error("whisperer: HMAC-SHA256 failed (no digest context)");

    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    auto hash = [&](std::initializer_list<std::string_view> parts) {
        if (EVP_DigestInit_ex2(ctx, sha256(), nullptr) != 1)
            throw std::runtime_error("whisperer: HMAC-SHA256 failed");
        for (std::string_view part : parts)
            if (EVP_DigestUpdate(ctx, part.data(), part.size()) != 1)
                throw std::runtime_error("whisperer: HMAC-SHA256 failed");
        if (EVP_DigestFinal_ex(ctx, digest, &length) != 1)
            throw std::runtime_error("whisperer: HMAC-SHA256 failed");
        return std::string_view(reinterpret_cast<const char*>(digest), length);
    };

    unsigned char padded[block] = {};
    if (key.size() > block) {
        std::string_view hashed = hash({key});
        std::copy(hashed.begin(), hashed.end(), padded);
    } else {
        std::copy(key.begin(), key.end(), padded);
    }
    char inner_pad[block];
    char outer_pad[block];
    for (std::size_t i = 0; i < block; ++i) {
        inner_pad[i] = static_cast<char>(padded[i] ^ 0x36);
        outer_pad[i] = static_cast<char>(padded[i] ^ 0x5c);
    }
    OPENSSL_cleanse(padded, sizeof padded);
    const std::string inner(hash({std::string_view(inner_pad, block), message}));
    std::string mac(hash({std::string_view(outer_pad, block), inner}));
    OPENSSL_cleanse(inner_pad, sizeof inner_pad);
    OPENSSL_cleanse(outer_pad, sizeof outer_pad);
    return mac;
}

std::string to_hex(std::string_view bytes)
{
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(bytes.size() * 2, '0');
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        auto b = static_cast<unsigned char>(bytes[i]);
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 0x0f];
    }
    return out;
}

} // namespace

std::string standard_signing_key(std::string_view secret)
{
    if (secret.starts_with(standard_prefix))
        if (auto decoded = detail::base64_decode(secret.substr(standard_prefix.size())))
            return *decoded;
    return std::string(secret);
}

std::string whisperer_signature(std::string_view secret, std::string_view body)
{
    return "sha256=" + to_hex(hmac_sha256(secret, body));
}

std::string whisperer_signature_header(std::span<const std::string> secrets, std::string_view body)
{
    std::string header;
    for (const std::string& secret : secrets) {
        if (!header.empty())
            header += ' ';
        header += whisperer_signature(secret, body);
    }
    return header;
}

std::string standard_signature(std::string_view secret, std::string_view webhook_id, std::int64_t timestamp,
                               std::string_view body)
{
    std::string content;
    content.reserve(webhook_id.size() + body.size() + 24);
    content.append(webhook_id).append(".").append(std::to_string(timestamp)).append(".").append(body);
    return "v1," + detail::base64_encode(hmac_sha256(standard_signing_key(secret), content));
}

std::string standard_signature_header(std::span<const std::string> secrets, std::string_view webhook_id,
                                      std::int64_t timestamp, std::string_view body)
{
    std::string header;
    for (const std::string& secret : secrets) {
        if (!header.empty())
            header += ' ';
        header += standard_signature(secret, webhook_id, timestamp, body);
    }
    return header;
}

std::string generate_secret()
{
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    return std::string(standard_prefix) +
           detail::base64_encode(std::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string sha256_hex(std::string_view data)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
    return to_hex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept
{
    if (a.size() != b.size())
        return false;
    return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

} // namespace whisperer
