#include "catch.hpp"

#include <whisperer/signature.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

using namespace whisperer;

namespace {

struct StandardVector {
    const char* secret;
    const char* id;
    std::int64_t timestamp;
    const char* body;
    const char* signature;
};

/// The test vectors published with the Standard Webhooks reference libraries.
constexpr StandardVector standard_vectors[] = {
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     R"({"test": 2432232314})", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    {"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553,
     R"({"email":"test@example.com","username":"test_user"})", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="},
};

/// Hex HMAC-SHA256 computed directly with OpenSSL, as an independent check.
std::string reference_hmac_hex(std::string_view key, std::string_view message)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
         message.size(), digest, &length);
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
        out += hex[digest[i] >> 4];
        out += hex[digest[i] & 0x0f];
    }
    return out;
}

/// Standard base64 with padding, written out here so the decoder is not checked against itself.
std::string reference_base64(std::string_view bytes)
{
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8 |
                     static_cast<unsigned char>(bytes[i + 2]);
        out += {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], alphabet[v & 63]};
    }
    if (bytes.size() - i == 1) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        out += {alphabet[v >> 18], alphabet[(v >> 12) & 63], '=', '='};
    } else if (bytes.size() - i == 2) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8;
        out += {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63], '='};
    }
    return out;
}

bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

} // namespace

// --- Standard Webhooks ---------------------------------------------------------------------------

TEST_CASE("standard_signature reproduces both published Standard Webhooks vectors", "[signature]")
{
    for (const StandardVector& v : standard_vectors) {
        INFO(v.id);
        CHECK(standard_signature(v.secret, v.id, v.timestamp, v.body) == v.signature);
    }
}

TEST_CASE("standard_signature changes when the id, timestamp or body changes", "[signature]")
{
    const StandardVector& v = standard_vectors[0];
    const std::string original = standard_signature(v.secret, v.id, v.timestamp, v.body);
    CHECK(standard_signature(v.secret, "msg_p5jXN8AQM9LWM0D4loKWxJeK", v.timestamp, v.body) != original);
    CHECK(standard_signature(v.secret, v.id, v.timestamp + 1, v.body) != original);
    CHECK(standard_signature(v.secret, v.id, v.timestamp, R"({"test":2432232314})") != original);
    CHECK(standard_signature(standard_vectors[1].secret, v.id, v.timestamp, v.body) != original);
}

TEST_CASE("standard_signature signs id.timestamp.body with the decoded key", "[signature]")
{
    const StandardVector& v = standard_vectors[1];
    const std::string key = standard_signing_key(v.secret);
    const std::string content = std::string(v.id) + "." + std::to_string(v.timestamp) + "." + v.body;
    const std::string signature = standard_signature(v.secret, v.id, v.timestamp, v.body);
    REQUIRE(signature.starts_with("v1,"));
    CHECK(signature.size() == 3 + 44);
    CHECK(signature.ends_with("="));
    // A raw (non-whsec_) secret is used as the key as is, so passing the decoded key gives the same.
    CHECK(standard_signature(key, v.id, v.timestamp, v.body) == signature);
    CHECK(whisperer_signature(key, content) == "sha256=" + reference_hmac_hex(key, content));
}

TEST_CASE("standard_signing_key decodes a whsec_ secret and leaves other secrets as they are", "[signature]")
{
    CHECK(standard_signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").size() == 24);
    CHECK(standard_signing_key("whsec_aGVsbG8=") == "hello");
    CHECK(standard_signing_key("whsec_aGVsbG8") == "hello");
    CHECK(standard_signing_key("plain secret") == "plain secret");
    CHECK(standard_signing_key("WHSEC_aGVsbG8=") == "WHSEC_aGVsbG8=");
    CHECK(standard_signing_key("") == "");
}

TEST_CASE("standard_signing_key decodes every padding length", "[signature]")
{
    std::string bytes;
    for (int length = 1; length <= 64; ++length) {
        bytes += static_cast<char>((length * 37 + 11) & 0xff);
        const std::string encoded = reference_base64(bytes);
        INFO("length " << length << ": " << encoded);
        CHECK(standard_signing_key("whsec_" + encoded) == bytes);
        std::string unpadded = encoded;
        unpadded.erase(std::find(unpadded.begin(), unpadded.end(), '='), unpadded.end());
        CHECK(standard_signing_key("whsec_" + unpadded) == bytes);
    }
}

TEST_CASE("standard_signing_key uses a whsec_ secret that is not base64 as it is", "[signature]")
{
    for (const char* secret : {"whsec_!!!!", "whsec_a", "whsec_abcde", "whsec_a=bc", "whsec_ab=", "whsec_ab===",
                               "whsec_YQ== ", "whsec_ YQ==", "whsec_Y Q==", "whsec_YQ==YQ==", "whsec_aGVs-G8_"}) {
        INFO(secret);
        CHECK(standard_signing_key(secret) == secret);
    }
}

TEST_CASE("standard_signature_header joins one signature per secret with a space", "[signature]")
{
    const StandardVector& v = standard_vectors[0];
    const std::vector<std::string> secrets = {v.secret, standard_vectors[1].secret};
    const std::string header = standard_signature_header(secrets, v.id, v.timestamp, v.body);
    CHECK(header == std::string(v.signature) + " " + standard_signature(secrets[1], v.id, v.timestamp, v.body));
    CHECK(std::count(header.begin(), header.end(), ' ') == 1);

    const std::vector<std::string> one = {v.secret};
    CHECK(standard_signature_header(one, v.id, v.timestamp, v.body) == v.signature);
    CHECK(standard_signature_header({}, v.id, v.timestamp, v.body).empty());
}

// --- dj-whisperer's signature --------------------------------------------------------------------

TEST_CASE("whisperer_signature reproduces the GitHub-style vector", "[signature]")
{
    CHECK(whisperer_signature("It's a Secret to Everybody", "Hello, World!") ==
          "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST_CASE("whisperer_signature uses a whsec_ secret's characters as the key", "[signature]")
{
    const std::string secret = standard_vectors[0].secret;
    const std::string body = standard_vectors[0].body;
    CHECK(whisperer_signature(secret, body) == "sha256=" + reference_hmac_hex(secret, body));
    CHECK(whisperer_signature(secret, body) !=
          "sha256=" + reference_hmac_hex(standard_signing_key(secret), body));
}

TEST_CASE("whisperer_signature signs the exact body bytes", "[signature]")
{
    const std::string body = R"({"event":{"type":"package-created"},"data":{"id":61}})";
    const std::string signature = whisperer_signature("<secret>", body);
    CHECK(signature == "sha256=" + reference_hmac_hex("<secret>", body));
    CHECK(signature.size() == 7 + 64);
    CHECK(whisperer_signature("<secret>", body + "\n") != signature);
    CHECK(whisperer_signature("<secret>", std::string_view("a\0b", 3)) !=
          whisperer_signature("<secret>", std::string_view("a\0c", 3)));
    CHECK(whisperer_signature("", "") == "sha256=" + reference_hmac_hex("", ""));
}

// --- secrets and hashes --------------------------------------------------------------------------

TEST_CASE("generate_secret returns whsec_ and the base64 of 32 random bytes", "[signature]")
{
    const std::string secret = generate_secret();
    INFO(secret);
    REQUIRE(secret.starts_with("whsec_"));
    const std::string encoded = secret.substr(6);
    CHECK(encoded.size() == 44);
    CHECK(encoded.ends_with("="));
    CHECK_FALSE(encoded.ends_with("=="));
    CHECK(std::all_of(encoded.begin(), encoded.end() - 1, is_base64_char));

    const std::string key = standard_signing_key(secret);
    CHECK(key.size() == 32);
    CHECK(reference_base64(key) == encoded);
}

TEST_CASE("generate_secret does not repeat", "[signature]")
{
    std::set<std::string> secrets;
    for (int i = 0; i < 1000; ++i)
        secrets.insert(generate_secret());
    CHECK(secrets.size() == 1000);
}

TEST_CASE("sha256_hex returns the lowercase hex digest", "[signature]")
{
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("constant_time_equal compares contents and lengths", "[signature]")
{
    CHECK(constant_time_equal("", ""));
    CHECK(constant_time_equal("v1,abc=", "v1,abc="));
    CHECK_FALSE(constant_time_equal("v1,abc=", "v1,abd="));
    CHECK_FALSE(constant_time_equal("v1,abc=", "w1,abc="));
    CHECK_FALSE(constant_time_equal("v1,abc", "v1,abc="));
    CHECK_FALSE(constant_time_equal("v1,abc=", "v1,abc"));
    CHECK_FALSE(constant_time_equal("", "a"));
    CHECK(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    CHECK_FALSE(constant_time_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
    CHECK_FALSE(constant_time_equal(std::string_view("a\0b", 3), "a"));

    const StandardVector& v = standard_vectors[0];
    CHECK(constant_time_equal(standard_signature(v.secret, v.id, v.timestamp, v.body), v.signature));
}

TEST_CASE("constant_time_equal notices one changed bit at any position of a digest", "[signature]")
{
    const std::string digest = sha256_hex("a token key");
    CHECK(constant_time_equal(digest, sha256_hex("a token key")));
    for (std::size_t i = 0; i < digest.size(); ++i) {
        for (int bit = 0; bit < 8; ++bit) {
            std::string changed = digest;
            changed[i] = static_cast<char>(changed[i] ^ (1 << bit));
            INFO("byte " << i << ", bit " << bit);
            CHECK_FALSE(constant_time_equal(digest, changed));
        }
    }
}
