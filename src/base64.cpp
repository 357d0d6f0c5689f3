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
    std::string padded(text);
    while (padded.size() % 4 != 0)
        padded += '=';
    if (padded.empty())
        return std::string();
    std::string out(3 * padded.size() / 4, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
    if (n < 0)
        return std::nullopt;
    // EVP_DecodeBlock counts padding as zero bytes; drop them.
    std::size_t pad = 0;
    for (auto it = padded.rbegin(); it != padded.rend() && *it == '=' && pad < 2; ++it)
        ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

} // namespace whisperer::detail
