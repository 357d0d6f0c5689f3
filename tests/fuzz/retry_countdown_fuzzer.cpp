// Fuzzes the retry countdown config parser (`CountdownRegistry::parse`) with JSON texts such as
// `{"choice": "exponential", "kwargs": {"base": 2, "limit": 3600}, "jitter": 0.2}`.
//
// Besides sanitizer reports, an input fails when parsing throws anything but `ValidationError`
// or names no field, or when an accepted countdown breaks what the dispatcher relies on: its
// delays lie between zero and 30 days (plus jitter) for every number of failures, and its JSON
// form (what the store keeps) parses again to the same JSON form.

#include <whisperer/error.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>

namespace {

using namespace whisperer;
namespace json = boost::json;

constexpr std::chrono::milliseconds max_delay = std::chrono::hours(30 * 24);

[[noreturn]] void fail(const std::string& why, const json::value& config)
{
    std::fprintf(stderr, "retry_countdown_fuzzer: %s\n  config: %s\n", why.c_str(), json::serialize(config).c_str());
    std::abort();
}

void check_delays(const RetryCountdown& countdown, const json::value& config)
{
    double jitter = 0;
    if (const json::value* j = countdown.to_json().if_contains("jitter"))
        jitter = j->to_number<double>();
    const auto limit = std::chrono::milliseconds(
        static_cast<std::int64_t>(static_cast<double>(max_delay.count()) * (1 + jitter)) + 1);
    for (unsigned failures : {0u, 1u, 2u, 3u, 17u, 18u, 64u, 1000u, std::numeric_limits<unsigned>::max()}) {
        const std::chrono::milliseconds d = countdown.delay(failures);
        if (d.count() < 0 || d > limit)
            fail("delay(" + std::to_string(failures) + ") is " + std::to_string(d.count()) + " ms", config);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 64;
    const json::value config = json::parse(text, ec, {}, options);
    if (ec)
        return 0;

    static const CountdownRegistry registry;
    try {
        const RetryCountdown countdown = registry.parse(config);
        check_delays(countdown, config);
        const RetryCountdown again = registry.parse(countdown.to_json());
        if (again.to_json() != countdown.to_json())
            fail("the JSON form parses to another JSON form: " + json::serialize(again.to_json()), config);
    } catch (const ValidationError& e) {
        if (e.field().empty())
            fail(std::string("a validation error without a field: ") + e.what(), config);
    }
    return 0;
}
