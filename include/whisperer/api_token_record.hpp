#ifndef WHISPERER_API_TOKEN_RECORD_HPP
#define WHISPERER_API_TOKEN_RECORD_HPP

#include <whisperer/delivery.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace whisperer {

/// An API token: whom it acts for, its rights and its lifetime. The key itself is never stored,
/// only its SHA-256.
struct ApiToken {
    std::string owner;
    bool admin = false;     ///< Sees and manages every owner's hooks, and the tokens.
    bool publisher = false; ///< May publish events through the REST API.
    TimePoint created{};
    std::optional<TimePoint> expires;   ///< Refused from this instant on; never when absent.
    std::optional<TimePoint> last_used; ///< Written at most about once a minute; never when absent.
    std::int64_t id = 0;                ///< Set by the store; names the token in lists and revocations.

    /// True from `expires` on.
    bool expired(TimePoint now) const noexcept { return expires && now >= *expires; }
};

} // namespace whisperer

#endif
