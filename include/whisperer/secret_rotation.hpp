#ifndef WHISPERER_SECRET_ROTATION_HPP
#define WHISPERER_SECRET_ROTATION_HPP

#include <whisperer/hook.hpp>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace whisperer {

/// How long a replaced secret keeps signing when a rotation does not say: one day.
inline constexpr std::chrono::seconds default_grace_period{24 * 60 * 60};

/// The longest grace period a rotation may ask for: 30 days.
inline constexpr std::chrono::seconds max_grace_period{30 * 24 * 60 * 60};

/// The most retired secrets a hook keeps; a rotation beyond that drops the oldest.
inline constexpr std::size_t max_retired_secrets = 10;

/// A request to replace a hook's secret (`SubscriptionStore::rotate_secret`).
///
/// During the grace period every delivery is signed with the new secret and with each old one
/// still live, so that receivers can switch to the new secret at their own pace.
struct SecretRotation {
    /// The new secret; empty means a generated one (`generate_secret()`, as at creation).
    std::string new_secret;
    /// How long the replaced secret keeps signing, from 0 (it stops at once) to
    /// `max_grace_period`. No older secret outlives it either: a zero grace period ends them all.
    std::chrono::seconds grace_period = default_grace_period;
    /// When the rotation takes effect (the grace period runs from it); the system clock's now
    /// when empty.
    std::optional<TimePoint> now;
};

/// Throws `ValidationError` ("grace_period") unless `grace_period` is from 0 to
/// `max_grace_period`.
void validate_grace_period(std::chrono::seconds grace_period);

/// Checks a rotation that comes from outside: the grace period as `validate_grace_period`, and
/// the new secret as `validate_secret` with `rules` (field "secret_key").
void validate_rotation(const SecretRotation& rotation, const HookRules& rules = {});

/// Applies a validated rotation to `hook` at `now`, for stores: the current secret (when not
/// empty and the grace period is not zero) becomes the newest retired one, expiring at
/// `now + grace_period`; older ones expire no later than that; expired ones and the oldest
/// beyond `max_retired_secrets` are dropped; `new_secret` becomes current. Throws
/// `ValidationError` ("secret_key") when `new_secret` equals the current secret.
void apply_rotation(Hook& hook, std::string new_secret, std::chrono::seconds grace_period, TimePoint now);

/// The secrets that sign a delivery of `hook` at `now`: the current one first (when not empty),
/// then every retired one that expires after `now`, newest first.
std::vector<std::string> signing_secrets(const Hook& hook, TimePoint now);

} // namespace whisperer

#endif
