#include <whisperer/secret_rotation.hpp>

#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>

#include <algorithm>

namespace whisperer {

void validate_grace_period(std::chrono::seconds grace_period)
{
    if (grace_period < std::chrono::seconds::zero() || grace_period > max_grace_period)
        throw ValidationError("grace_period", "grace_period must be a whole number of seconds from 0 to " +
                                                  std::to_string(max_grace_period.count()) + " (30 days).");
}

void validate_rotation(const SecretRotation& rotation, const HookRules& rules)
{
    validate_grace_period(rotation.grace_period);
    validate_secret(rotation.new_secret, rules);
}

void apply_rotation(Hook& hook, std::string new_secret, std::chrono::seconds grace_period, TimePoint now)
{
    if (!hook.secret_key.empty() && constant_time_equal(new_secret, hook.secret_key))
        throw ValidationError("secret_key", "secret_key must differ from the current secret.");
    const TimePoint grace_end = now + grace_period;
    std::vector<RetiredSecret> retired;
    retired.reserve(max_retired_secrets);
    if (!hook.secret_key.empty() && grace_end > now)
        retired.push_back({std::move(hook.secret_key), grace_end});
    for (RetiredSecret& old : hook.retired_secrets) {
        old.expires = std::min(old.expires, grace_end);
        // A secret that becomes current again signs as the current one, not twice.
        if (old.expires > now && !constant_time_equal(old.secret, new_secret) && retired.size() < max_retired_secrets)
            retired.push_back(std::move(old));
    }
    hook.retired_secrets = std::move(retired);
    hook.secret_key = std::move(new_secret);
}

std::vector<std::string> signing_secrets(const Hook& hook, TimePoint now)
{
    std::vector<std::string> secrets;
    secrets.reserve(1 + hook.retired_secrets.size());
    if (!hook.secret_key.empty())
        secrets.push_back(hook.secret_key);
    for (const RetiredSecret& old : hook.retired_secrets)
        if (old.expires > now && !old.secret.empty())
            secrets.push_back(old.secret);
    return secrets;
}

} // namespace whisperer
