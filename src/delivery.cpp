#include <whisperer/delivery.hpp>

#include <array>
#include <utility>

namespace whisperer {

namespace {

// The spellings are stored in databases and shown by the REST API: never rename one.
constexpr std::array<std::pair<FailureClass, std::string_view>, 11> failure_class_names{{
    {FailureClass::none, "none"},
    {FailureClass::http_status, "http_status"},
    {FailureClass::timeout, "timeout"},
    {FailureClass::connection_refused, "connection_refused"},
    {FailureClass::connection_reset, "connection_reset"},
    {FailureClass::connection_closed, "connection_closed"},
    {FailureClass::dns, "dns"},
    {FailureClass::tls, "tls"},
    {FailureClass::protocol, "protocol"},
    {FailureClass::blocked, "blocked"},
    {FailureClass::io, "io"},
}};

constexpr std::array<std::pair<DeliveryState, std::string_view>, 3> delivery_state_names{{
    {DeliveryState::pending, "pending"},
    {DeliveryState::delivered, "delivered"},
    {DeliveryState::failed, "failed"},
}};

template <class Enum, std::size_t N>
constexpr std::string_view name_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                                   Enum value) noexcept
{
    for (const auto& [candidate, name] : names)
        if (candidate == value)
            return name;
    return "unknown";
}

template <class Enum, std::size_t N>
constexpr Enum value_of(const std::array<std::pair<Enum, std::string_view>, N>& names,
                        std::string_view name, Enum fallback) noexcept
{
    for (const auto& [value, candidate] : names)
        if (candidate == name)
            return value;
    return fallback;
}

} // namespace

std::string_view to_string(FailureClass c) noexcept
{
    return name_of(failure_class_names, c);
}

FailureClass failure_class_from_string(std::string_view s) noexcept
{
    return value_of(failure_class_names, s, FailureClass::io);
}

std::string_view to_string(DeliveryState s) noexcept
{
    return name_of(delivery_state_names, s);
}

DeliveryState delivery_state_from_string(std::string_view s) noexcept
{
    // Unknown spellings only come from a damaged row; pending keeps such a delivery visible.
    return value_of(delivery_state_names, s, DeliveryState::pending);
}

} // namespace whisperer
