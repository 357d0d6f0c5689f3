// Fuzzes `verify_webhook`, which a receiver runs on the headers and body of any request that
// reaches it. An input is a header block, one `name: value` per line, then an empty line and the
// body, e.g. "webhook-id: msg_1\nwebhook-timestamp: 1700000000\nwebhook-signature: v1,abc\n\n{}".
//
// Besides sanitizer reports, an input fails when `verify_webhook` throws; when the header-pair
// and lookup forms disagree; when a reason quotes a secret; when a request is verified without a
// signature that an independent HMAC (OpenSSL, computed here) makes for one of the secrets; or
// when the same body, id and timestamp signed by `standard_signature_header` and by
// `whisperer_signature_header` are not verified, or verify once a byte of the body changes; or
// when `X-Whisperer-Signature` verifies a request for a receiver that did not accept it.

#include <whisperer/signature.hpp>
#include <whisperer/verify.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace whisperer;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr std::int64_t now_seconds = 1700000000;
const std::array<std::string, 2> secrets = {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a raw secret"};

[[noreturn]] void fail(const std::string& why)
{
    std::fprintf(stderr, "verify_fuzzer: %s\n", why.c_str());
    std::abort();
}

/// Judged at `now_seconds`; `X-Whisperer-Signature` accepted only when `legacy` is set, as a
/// receiver must ask for it.
VerifyOptions options(bool legacy = true)
{
    VerifyOptions o;
    o.now = std::chrono::system_clock::time_point(std::chrono::seconds(now_seconds));
    o.accept_whisperer_signature = legacy;
    return o;
}

Headers parse_headers(std::string_view block)
{
    Headers headers;
    while (!block.empty()) {
        const std::size_t end = block.find('\n');
        std::string_view line = block.substr(0, end);
        block.remove_prefix(end == std::string_view::npos ? block.size() : end + 1);
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos)
            continue;
        std::string_view value = line.substr(colon + 1);
        if (!value.empty() && value.front() == ' ')
            value.remove_prefix(1);
        headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
    }
    return headers;
}

std::string hmac_sha256(std::string_view key, std::string_view message)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
         message.size(), digest, &size);
    return std::string(reinterpret_cast<const char*>(digest), size);
}

std::string base64(std::string_view bytes)
{
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string hex(std::string_view bytes)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        out += digits[c >> 4];
        out += digits[c & 0x0f];
    }
    return out;
}

/// The Standard Webhooks key of a secret, decoded here with OpenSSL rather than by whisperer.
std::string oracle_key(const std::string& secret)
{
    if (!secret.starts_with("whsec_"))
        return secret;
    const std::string_view text = std::string_view(secret).substr(6);
    std::string out(3 * text.size() / 4 + 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
    out.resize(static_cast<std::size_t>(n) - static_cast<std::size_t>(std::count(text.begin(), text.end(), '=')));
    return out;
}

std::optional<std::string_view> find(const Headers& headers, std::string_view name)
{
    for (const auto& [key, value] : headers)
        if (key.size() == name.size() &&
            std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
                return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            }))
            return std::string_view(value);
    return std::nullopt;
}

std::vector<std::string_view> tokens(std::string_view list)
{
    std::vector<std::string_view> out;
    while (!list.empty()) {
        const std::size_t space = list.find(' ');
        std::string_view token = list.substr(0, space);
        list.remove_prefix(space == std::string_view::npos ? list.size() : space + 1);
        while (!token.empty() && (token.front() == '\t' || token.front() == ' '))
            token.remove_prefix(1);
        while (!token.empty() && (token.back() == '\t' || token.back() == ' '))
            token.remove_suffix(1);
        out.push_back(token);
    }
    return out;
}

/// Whether a verified request carries a signature the oracle also makes.
bool oracle_agrees(const VerifyResult& result, const Headers& headers, std::string_view body)
{
    std::vector<std::string> expected;
    std::optional<std::string_view> list;
    if (result.scheme == SignatureScheme::standard_webhooks) {
        list = find(headers, "webhook-signature");
        const std::string signed_text =
            std::string(*find(headers, "webhook-id")) + "." + std::string(*find(headers, "webhook-timestamp")) + "." +
            std::string(body);
        for (const std::string& secret : secrets)
            expected.push_back("v1," + base64(hmac_sha256(oracle_key(secret), signed_text)));
    } else {
        list = find(headers, "x-whisperer-signature");
        for (const std::string& secret : secrets)
            expected.push_back("sha256=" + hex(hmac_sha256(secret, body)));
    }
    if (!list)
        return false;
    for (std::string_view token : tokens(*list))
        for (const std::string& e : expected)
            if (token == e)
                return true;
    return false;
}

void check_round_trip(std::string_view id, std::string_view body)
{
    const Headers standard = {{"webhook-id", std::string(id)},
                              {"webhook-timestamp", std::to_string(now_seconds)},
                              {"webhook-signature", standard_signature_header(secrets, id, now_seconds, body)}};
    const Headers legacy = {{"X-Whisperer-Signature", whisperer_signature_header(secrets, body)}};
    const std::string changed = std::string(body) + "x";
    for (const Headers* headers : {&standard, &legacy}) {
        if (!verify_webhook(*headers, body, secrets, options()))
            fail("a request signed by whisperer is not verified");
        if (verify_webhook(*headers, changed, secrets, options()))
            fail("a request verifies after its body changed");
    }
    if (verify_webhook(legacy, body, secrets, options(false)))
        fail("X-Whisperer-Signature is accepted although the receiver did not ask for it");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t split = input.find("\n\n");
    const std::string_view block = input.substr(0, split);
    const std::string_view body = split == std::string_view::npos ? std::string_view() : input.substr(split + 2);
    const Headers headers = parse_headers(block);

    VerifyResult by_pairs;
    VerifyResult by_lookup;
    try {
        by_pairs = verify_webhook(headers, body, secrets, options());
        by_lookup = verify_webhook([&](std::string_view name) { return find(headers, name); }, body, secrets,
                                   options());
    } catch (const std::exception& e) {
        fail(std::string("verify_webhook threw: ") + e.what());
    }
    if (by_pairs.status != by_lookup.status || by_pairs.scheme != by_lookup.scheme)
        fail("the header-pair and lookup forms disagree: " + std::string(to_string(by_pairs.status)) + " and " +
             std::string(to_string(by_lookup.status)));
    for (const std::string& secret : secrets)
        if (by_pairs.reason.find(secret) != std::string::npos)
            fail("a reason quotes a secret: " + by_pairs.reason);
    if (by_pairs && !oracle_agrees(by_pairs, headers, body))
        fail("verified without a signature that the oracle makes");
    if ((by_pairs.status == VerifyStatus::verified) != static_cast<bool>(by_pairs))
        fail("the result converts to true without being verified");

    const VerifyResult strict = verify_webhook(headers, body, secrets, options(false));
    if (strict && strict.scheme != SignatureScheme::standard_webhooks)
        fail("verified by X-Whisperer-Signature although the receiver did not ask for it");

    check_round_trip(find(headers, "webhook-id").value_or("msg_fuzz"), body);
    return 0;
}
