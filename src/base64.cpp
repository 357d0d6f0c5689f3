#include "detail/base64.hpp"

#include <openssl/evp.h>

namespace whisperer::detail {

std::string base64_encode(std::string_view bytes)
{
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> base64_decode(std::string_view text)
{
    // EVP_DecodeBlock skips whitespace and takes '=' anywhere, so check the text first: only the
    // alphabet, at most two '=' and only at the end, and a length that encodes whole bytes.
    std::size_t data_length = text.find_last_not_of('=') + 1;
    std::size_t pad = text.size() - data_length;
    if (pad > 2 || (pad > 0 && text.size() % 4 != 0) || data_length % 4 == 1)
        return std::nullopt;
    for (char c : text.substr(0, data_length))
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
              c == '/'))
            return std::nullopt;

    std::string padded(text.substr(0, data_length));
    pad = (4 - data_length % 4) % 4;
    padded.append(pad, '=');
    if (padded.empty())
        return std::string();
    std::string out(3 * padded.size() / 4, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
    if (n < 0)
        return std::nullopt;
    // EVP_DecodeBlock counts padding as zero bytes; drop them.
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

} // namespace whisperer::detail
