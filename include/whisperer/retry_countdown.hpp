#ifndef WHISPERER_RETRY_COUNTDOWN_HPP
#define WHISPERER_RETRY_COUNTDOWN_HPP

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

/// How long to wait before the next attempt, given the number of failed attempts so far.
///
/// Implement this to add a countdown choice of your own and register it in a `CountdownRegistry`.
/// Implementations must be immutable and safe to call from several threads.
class CountdownPolicy {
public:
    virtual ~CountdownPolicy() = default;
    /// The delay after `failures` failed attempts (`failures` >= 1).
    virtual std::chrono::milliseconds delay(unsigned failures) const = 0;
};

/// A hook's retry schedule: one of the original's choices (fixed, linear, exponential, random),
/// an explicit `schedule`, or a host-registered choice, optionally with jitter.
///
/// The formulas are dj-whisperer's, with n = failed attempts so far (1 after the first failure):
/// fixed `seconds`; linear `min(base * n, limit)`; exponential `min(base^n * factor, limit)`;
/// random a uniform integer in `[min_value, max_value]`; schedule `delays[min(n, size) - 1]`.
/// A value type, cheap to copy; thread-safe to use from several threads.
class RetryCountdown {
public:
    using seconds = std::chrono::seconds;

    static RetryCountdown fixed(double seconds);
    static RetryCountdown linear(double base, std::optional<double> limit = std::nullopt);
    static RetryCountdown exponential(double base, double factor = 1,
                                      std::optional<double> limit = std::nullopt);
    static RetryCountdown random(double min_value, double max_value);
    /// Explicit delays in seconds; the last one repeats.
    static RetryCountdown schedule(std::vector<double> delays);

    /// Wraps a policy of the host's; `config` is what `to_json()` returns.
    RetryCountdown(std::shared_ptr<const CountdownPolicy> policy, boost::json::object config);

    /// A copy whose delays vary by up to +/- `fraction` (0 to 1), e.g. 0.2 for 20 %.
    RetryCountdown with_jitter(double fraction) const;

    /// The delay after `failures` failed attempts (`failures` >= 1), jitter applied.
    std::chrono::milliseconds delay(unsigned failures) const;

    /// The `{"choice": ..., "kwargs": {...}}` form (with `"jitter"` when set).
    const boost::json::object& to_json() const noexcept { return config_; }

private:
    std::shared_ptr<const CountdownPolicy> policy_;
    boost::json::object config_;
    double jitter_ = 0;
};

/// Builds countdowns from their JSON form `{"choice": ..., "kwargs": {...}, "jitter": 0.2?}`.
///
/// Knows the built-in choices; hosts add their own with `register_choice`. Registering is not
/// thread-safe; parsing is, once registration is done.
class CountdownRegistry {
public:
    /// Turns validated kwargs into a policy; throws `ValidationError` naming the kwarg.
    using Factory = std::function<std::shared_ptr<const CountdownPolicy>(const boost::json::object& kwargs)>;

    /// A registry with fixed, linear, exponential, random and schedule.
    CountdownRegistry();

    /// Adds a choice; throws `ValidationError` when the name is taken or empty.
    void register_choice(std::string choice, Factory factory);

    /// Parses and validates a config. Throws `ValidationError` whose field names the offending
    /// part (`retry_countdown_config.kwargs.base`, ...) and whose message says what is wrong.
    RetryCountdown parse(const boost::json::value& config) const;

    /// The sorted names of the known choices.
    std::vector<std::string> choices() const;

private:
    std::map<std::string, Factory, std::less<>> factories_;
};

} // namespace whisperer

#endif
