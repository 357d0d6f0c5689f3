#include <whisperer/error.hpp>
#include <whisperer/event.hpp>

#include <algorithm>

namespace whisperer {

namespace {

constexpr std::size_t max_event_type_length = 124;

bool is_event_type_char(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

} // namespace

bool is_valid_event_type(std::string_view event_type) noexcept
{
    return !event_type.empty() && event_type.size() <= max_event_type_length &&
           std::all_of(event_type.begin(), event_type.end(), is_event_type_char);
}

void validate_event_type(std::string_view event_type)
{
    if (event_type.empty())
        throw ValidationError("event_type", "event_type may not be empty.");
    if (event_type.size() > max_event_type_length)
        throw ValidationError("event_type", "event_type may have at most 124 characters.");
    if (!is_valid_event_type(event_type))
        throw ValidationError("event_type",
                              "event_type may contain only letters, digits, '.', '-' and '_'.");
}

} // namespace whisperer
