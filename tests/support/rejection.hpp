#pragma once
// Captures the ValidationError that a call throws, so tests can check which field it names.

#include <whisperer/error.hpp>

#include <optional>
#include <string>
#include <utility>

namespace whisperer::test {

/// The field and message of a ValidationError.
struct Rejection {
    std::string field;
    std::string message;
};

/// Runs `f` and returns what its ValidationError said, or nullopt when `f` throws nothing.
/// Any other exception propagates, so the test fails on it.
template <class F>
std::optional<Rejection> rejection_of(F&& f)
{
    try {
        std::forward<F>(f)();
    } catch (const ValidationError& e) {
        return Rejection{e.field(), e.what()};
    }
    return std::nullopt;
}

/// True when `text` contains `part`.
inline bool contains(const std::string& text, const std::string& part)
{
    return text.find(part) != std::string::npos;
}

} // namespace whisperer::test
