#include <whisperer/envelope.hpp>

#include <openssl/rand.h>

#include <stdexcept>

namespace whisperer {

std::string_view to_string(DataKey key) noexcept
{
    return key == DataKey::payload ? "payload" : "data";
}

boost::json::object make_envelope(std::string_view event_type, std::string_view uuid,
                                  boost::json::value data, DataKey key)
{
    boost::json::object envelope;
    envelope.reserve(2);
    envelope["event"] = boost::json::object{{"type", event_type}, {"uuid", uuid}};
    envelope[to_string(key)] = std::move(data);
    return envelope;
}

std::string new_event_uuid()
{
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40); // version 4
    bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80); // RFC 4122 variant
    static constexpr char hex[] = "0123456789abcdef";
    std::string uuid(32, '0');
    for (std::size_t i = 0; i < sizeof bytes; ++i) {
        uuid[2 * i] = hex[bytes[i] >> 4];
        uuid[2 * i + 1] = hex[bytes[i] & 0x0f];
    }
    return uuid;
}

bool is_event_uuid(std::string_view uuid) noexcept
{
    if (uuid.size() != 32)
        return false;
    for (char c : uuid)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    return true;
}

} // namespace whisperer
