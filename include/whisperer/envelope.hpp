#ifndef WHISPERER_ENVELOPE_HPP
#define WHISPERER_ENVELOPE_HPP

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace whisperer {

/// Which key holds the serialised instance in the envelope.
enum class DataKey {
    data,    ///< `"data"`, as on dj-whisperer's Quick Start page (the default).
    payload, ///< `"payload"`, what dj-whisperer's code actually sends.
};

/// The key's spelling: "data" or "payload".
std::string_view to_string(DataKey key) noexcept;

/// Builds `{"event":{"type":T,"uuid":U},"data":D}` (or `"payload"`), in that key order.
boost::json::object make_envelope(std::string_view event_type, std::string_view uuid,
                                  boost::json::value data, DataKey key = DataKey::data);

/// A new event id: a version 7 UUID (RFC 9562) as 32 lowercase hex digits, without dashes:
/// 48 bits of Unix time in milliseconds, then 74 bits from a CSPRNG. Ids of later events sort
/// after those of earlier ones (to the millisecond).
std::string new_event_uuid();

/// True when `uuid` is 32 lowercase hex digits.
bool is_event_uuid(std::string_view uuid) noexcept;

} // namespace whisperer

#endif
