#ifndef WHISPERER_SRC_DETAIL_BASE64_HPP
#define WHISPERER_SRC_DETAIL_BASE64_HPP

#include <optional>
#include <string>
#include <string_view>

namespace whisperer::detail {

/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);

/// Decodes standard base64 (padding optional); nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace whisperer::detail

#endif
