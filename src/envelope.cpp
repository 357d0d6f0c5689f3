#include <whisperer/envelope.hpp>

#include <openssl/rand.h>

#include <chrono>
#include <cstdint>
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
    // Version 7 (RFC 9562): the first 48 bits are the Unix time in milliseconds, so new ids
    // sort after old ones and the store's uuid index grows at its end, one page per commit,
    // instead of taking a random page per event.
    const auto millis = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    for (int i = 0; i < 6; ++i)
        bytes[i] = static_cast<unsigned char>(millis >> (8 * (5 - i)));
    bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x70); // version 7
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
