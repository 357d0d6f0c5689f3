#include <whisperer/error.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cmath>
#include <random>

namespace whisperer {

namespace {

namespace json = boost::json;
using std::chrono::milliseconds;

/// No delay exceeds this, whatever the formula says (and doubles never overflow the clock).
constexpr double max_delay_seconds = 30.0 * 24 * 3600;

milliseconds to_delay(double seconds)
{
    seconds = std::clamp(seconds, 0.0, max_delay_seconds);
    return milliseconds(static_cast<std::int64_t>(std::llround(seconds * 1000)));
}

std::mt19937_64& random_engine()
{
    thread_local std::mt19937_64 engine{std::random_device{}()};
    return engine;
}

/// `d` as JSON, a whole number as an integer: configs and messages read as users write them
/// (`60`, not `6E1`).
json::value number_value(double d)
{
    if (std::isfinite(d) && d == std::trunc(d) && std::abs(d) < 9.0e15)
        return static_cast<std::int64_t>(d);
    return d;
}

std::string field_name(std::string_view kwarg)
{
    return "retry_countdown_config.kwargs." + std::string(kwarg);
}

/// Reads kwargs with validation that names the offending kwarg.
class Kwargs {
public:
    Kwargs(const json::object& kwargs, std::initializer_list<std::string_view> allowed) : kwargs_(kwargs)
    {
        for (const auto& entry : kwargs)
            if (std::find(allowed.begin(), allowed.end(), entry.key()) == allowed.end())
                throw ValidationError(field_name(entry.key()),
                                      "Unknown kwarg \"" + std::string(entry.key()) + "\".");
    }

    double number(std::string_view name, double minimum = 0) const
    {
        const json::value* v = kwargs_.if_contains(name);
        if (v == nullptr)
            throw ValidationError(field_name(name), "kwarg \"" + std::string(name) + "\" is required.");
        return checked(name, *v, minimum);
    }

    std::optional<double> optional_number(std::string_view name, double minimum = 0) const
    {
        const json::value* v = kwargs_.if_contains(name);
        if (v == nullptr || v->is_null())
            return std::nullopt;
        return checked(name, *v, minimum);
    }

private:
    static double checked(std::string_view name, const json::value& v, double minimum)
    {
        if (!v.is_number())
            throw ValidationError(field_name(name), "kwarg \"" + std::string(name) + "\" must be a number.");
        double d = v.to_number<double>();
        if (!std::isfinite(d) || d < minimum)
            throw ValidationError(field_name(name), "kwarg \"" + std::string(name) + "\" must be at least " +
                                                        json::serialize(number_value(minimum)) + ".");
        return d;
    }

    const json::object& kwargs_;
};

class Fixed final : public CountdownPolicy {
public:
    explicit Fixed(double seconds) : seconds_(seconds) {}
    milliseconds delay(unsigned) const override { return to_delay(seconds_); }

private:
    double seconds_;
};

class Linear final : public CountdownPolicy {
public:
    Linear(double base, std::optional<double> limit) : base_(base), limit_(limit) {}
    milliseconds delay(unsigned failures) const override
    {
        double d = base_ * failures;
        return to_delay(limit_ ? std::min(d, *limit_) : d);
    }

private:
    double base_;
    std::optional<double> limit_;
};

class Exponential final : public CountdownPolicy {
public:
    Exponential(double base, double factor, std::optional<double> limit)
        : base_(base), factor_(factor), limit_(limit) {}
    milliseconds delay(unsigned failures) const override
    {
        double d = std::pow(base_, static_cast<double>(failures)) * factor_;
        return to_delay(limit_ ? std::min(d, *limit_) : d);
    }

private:
    double base_, factor_;
    std::optional<double> limit_;
};

class Random final : public CountdownPolicy {
public:
    Random(double min_value, double max_value)
        : min_(whole(std::ceil(min_value))), max_(whole(std::floor(max_value))) {}
    milliseconds delay(unsigned) const override
    {
        std::uniform_int_distribution<std::int64_t> pick(min_, max_);
        return to_delay(static_cast<double>(pick(random_engine())));
    }

private:
    /// `d` as an integer; bounds beyond 2^53 seconds (far beyond any delay) are cut to it, where
    /// converting them would overflow.
    static std::int64_t whole(double d) { return static_cast<std::int64_t>(std::min(d, 0x1p53)); }

    std::int64_t min_, max_;
};

class Schedule final : public CountdownPolicy {
public:
    explicit Schedule(std::vector<double> delays) : delays_(std::move(delays)) {}
    milliseconds delay(unsigned failures) const override
    {
        std::size_t i = std::min<std::size_t>(std::max(failures, 1u), delays_.size()) - 1;
        return to_delay(delays_[i]);
    }

private:
    std::vector<double> delays_;
};

std::shared_ptr<const CountdownPolicy> make_fixed(const json::object& kwargs)
{
    Kwargs k(kwargs, {"seconds"});
    return std::make_shared<Fixed>(k.number("seconds"));
}

std::shared_ptr<const CountdownPolicy> make_linear(const json::object& kwargs)
{
    Kwargs k(kwargs, {"base", "limit"});
    return std::make_shared<Linear>(k.number("base"), k.optional_number("limit"));
}

std::shared_ptr<const CountdownPolicy> make_exponential(const json::object& kwargs)
{
    Kwargs k(kwargs, {"base", "factor", "limit"});
    double base = k.number("base");
    double factor = k.optional_number("factor", 1).value_or(1);
    return std::make_shared<Exponential>(base, factor, k.optional_number("limit"));
}

std::shared_ptr<const CountdownPolicy> make_random(const json::object& kwargs)
{
    Kwargs k(kwargs, {"min_value", "max_value"});
    double min_value = k.number("min_value");
    double max_value = k.number("max_value");
    if (!(min_value < max_value))
        throw ValidationError(field_name("min_value"), "kwarg \"min_value\" must be less than \"max_value\".");
    if (std::ceil(min_value) > std::floor(max_value))
        throw ValidationError(field_name("max_value"),
                              "kwargs \"min_value\" and \"max_value\" must enclose a whole number.");
    return std::make_shared<Random>(min_value, max_value);
}

std::vector<double> checked_delays(const json::value* v)
{
    if (v == nullptr || !v->is_array() || v->as_array().empty())
        throw ValidationError(field_name("delays"), "kwarg \"delays\" must be a non-empty array of seconds.");
    if (v->as_array().size() > 100)
        throw ValidationError(field_name("delays"), "kwarg \"delays\" may hold at most 100 delays.");
    std::vector<double> delays;
    for (const json::value& d : v->as_array()) {
        if (!d.is_number() || !std::isfinite(d.to_number<double>()) || d.to_number<double>() < 0)
            throw ValidationError(field_name("delays"), "kwarg \"delays\" must hold non-negative numbers.");
        delays.push_back(d.to_number<double>());
    }
    return delays;
}

std::shared_ptr<const CountdownPolicy> make_schedule(const json::object& kwargs)
{
    Kwargs k(kwargs, {"delays"});
    return std::make_shared<Schedule>(checked_delays(kwargs.if_contains("delays")));
}

json::object config_of(std::string_view choice, json::object kwargs)
{
    return json::object{{"choice", choice}, {"kwargs", std::move(kwargs)}};
}

const CountdownRegistry& builtin_countdowns()
{
    static const CountdownRegistry registry;
    return registry;
}

json::object with_optional(json::object kwargs, std::string_view name, std::optional<double> v)
{
    if (v)
        kwargs[name] = number_value(*v);
    return kwargs;
}

} // namespace

RetryCountdown::RetryCountdown(std::shared_ptr<const CountdownPolicy> policy, json::object config)
    : policy_(std::move(policy)), config_(std::move(config))
{
    if (!policy_)
        throw ValidationError("retry_countdown_config", "A countdown needs a policy.");
}

RetryCountdown RetryCountdown::fixed(double seconds)
{
    return builtin_countdowns().parse(config_of("fixed", {{"seconds", number_value(seconds)}}));
}

RetryCountdown RetryCountdown::linear(double base, std::optional<double> limit)
{
    return builtin_countdowns().parse(
        config_of("linear", with_optional({{"base", number_value(base)}}, "limit", limit)));
}

RetryCountdown RetryCountdown::exponential(double base, double factor, std::optional<double> limit)
{
    return builtin_countdowns().parse(
        config_of("exponential", with_optional({{"base", number_value(base)}, {"factor", number_value(factor)}},
                                               "limit", limit)));
}

RetryCountdown RetryCountdown::random(double min_value, double max_value)
{
    return builtin_countdowns().parse(
        config_of("random",
                  {{"min_value", number_value(min_value)}, {"max_value", number_value(max_value)}}));
}

RetryCountdown RetryCountdown::schedule(std::vector<double> delays)
{
    json::array array;
    for (double d : delays)
        array.push_back(number_value(d));
    return builtin_countdowns().parse(config_of("schedule", {{"delays", std::move(array)}}));
}

RetryCountdown RetryCountdown::with_jitter(double fraction) const
{
    if (!std::isfinite(fraction) || fraction < 0 || fraction > 1)
        throw ValidationError("retry_countdown_config.jitter", "jitter must be between 0 and 1.");
    RetryCountdown copy = *this;
    copy.jitter_ = fraction;
    if (fraction > 0)
        copy.config_["jitter"] = fraction;
    else
        copy.config_.erase("jitter");
    return copy;
}

milliseconds RetryCountdown::delay(unsigned failures) const
{
    milliseconds base = policy_->delay(std::max(failures, 1u));
    if (jitter_ <= 0 || base.count() == 0)
        return base;
    std::uniform_real_distribution<double> spread(1 - jitter_, 1 + jitter_);
    return milliseconds(static_cast<std::int64_t>(static_cast<double>(base.count()) * spread(random_engine())));
}

CountdownRegistry::CountdownRegistry()
    : factories_{{"fixed", make_fixed},
                 {"linear", make_linear},
                 {"exponential", make_exponential},
                 {"random", make_random},
                 {"schedule", make_schedule}}
{
}

void CountdownRegistry::register_choice(std::string choice, Factory factory)
{
    if (choice.empty() || !factory)
        throw ValidationError("choice", "A countdown choice needs a name and a factory.");
    if (factories_.contains(choice))
        throw ValidationError("choice", "Countdown choice \"" + choice + "\" is already registered.");
    factories_.emplace(std::move(choice), std::move(factory));
}

RetryCountdown CountdownRegistry::parse(const json::value& config) const
{
    const json::object* object = config.if_object();
    if (object == nullptr)
        throw ValidationError("retry_countdown_config", "retry_countdown_config must be an object.");
    for (const auto& entry : *object)
        if (entry.key() != "choice" && entry.key() != "kwargs" && entry.key() != "jitter")
            throw ValidationError("retry_countdown_config." + std::string(entry.key()),
                                  "Unknown key \"" + std::string(entry.key()) + "\" in retry_countdown_config.");
    const json::value* choice = object->if_contains("choice");
    if (choice == nullptr || !choice->is_string())
        throw ValidationError("retry_countdown_config.choice", "choice is required and must be a string.");
    auto factory = factories_.find(std::string_view(choice->as_string()));
    if (factory == factories_.end()) {
        std::string known;
        for (const auto& entry : factories_)
            known += (known.empty() ? "" : ", ") + entry.first;
        throw ValidationError("retry_countdown_config.choice", "\"" + std::string(choice->as_string()) +
                                                                   "\" is not a valid choice (" + known + ").");
    }
    static const json::object no_kwargs;
    const json::value* kwargs = object->if_contains("kwargs");
    if (kwargs != nullptr && !kwargs->is_object())
        throw ValidationError("retry_countdown_config.kwargs", "kwargs must be an object.");
    const json::object& kw = kwargs ? kwargs->as_object() : no_kwargs;

    RetryCountdown countdown(factory->second(kw), config_of(factory->first, kw));
    if (const json::value* jitter = object->if_contains("jitter")) {
        if (!jitter->is_number())
            throw ValidationError("retry_countdown_config.jitter", "jitter must be a number between 0 and 1.");
        countdown = countdown.with_jitter(jitter->to_number<double>());
    }
    return countdown;
}

std::vector<std::string> CountdownRegistry::choices() const
{
    std::vector<std::string> names;
    for (const auto& entry : factories_)
        names.push_back(entry.first);
    return names;
}

} // namespace whisperer
