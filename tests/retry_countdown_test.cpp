#include "catch.hpp"
#include "rejection.hpp"

#include <whisperer/error.hpp>
#include <whisperer/retry_countdown.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <cmath>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace std::chrono_literals;
namespace json = boost::json;
using std::chrono::milliseconds;
using whisperer::test::contains;
using whisperer::test::rejection_of;

namespace {

/// What `config` (JSON text) parses into with the built-in choices.
RetryCountdown parse(std::string_view config)
{
    return CountdownRegistry().parse(json::parse(config));
}

milliseconds secs(double s)
{
    return milliseconds(static_cast<std::int64_t>(std::llround(s * 1000)));
}

/// A host countdown: `step * failures` seconds, capped at `cap` when given.
class SteppedPolicy final : public CountdownPolicy {
public:
    SteppedPolicy(std::int64_t step, std::int64_t cap) : step_(step), cap_(cap) {}
    milliseconds delay(unsigned failures) const override
    {
        std::int64_t s = step_ * failures;
        return std::chrono::seconds(cap_ > 0 ? std::min(s, cap_) : s);
    }

private:
    std::int64_t step_, cap_;
};

std::shared_ptr<const CountdownPolicy> make_stepped(const json::object& kwargs)
{
    const json::value* step = kwargs.if_contains("step");
    if (step == nullptr || !step->is_int64() || step->as_int64() <= 0)
        throw ValidationError("retry_countdown_config.kwargs.step", "step must be a positive integer.");
    std::int64_t cap = 0;
    if (const json::value* c = kwargs.if_contains("cap"))
        cap = c->as_int64();
    return std::make_shared<SteppedPolicy>(step->as_int64(), cap);
}

} // namespace

// --- formulas ------------------------------------------------------------------------------------

TEST_CASE("a fixed countdown waits the same number of seconds after every failure", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::fixed(30);
    for (unsigned n = 1; n <= 20; ++n)
        CHECK(countdown.delay(n) == 30s);
    CHECK(RetryCountdown::fixed(0).delay(3) == 0ms);
    CHECK(RetryCountdown::fixed(1.5).delay(1) == 1500ms);
}

TEST_CASE("a linear countdown waits min(base * n, limit) seconds", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::linear(45, 400);
    for (unsigned n = 1; n <= 15; ++n) {
        INFO("n = " << n);
        CHECK(countdown.delay(n) == secs(std::min(45.0 * n, 400.0)));
    }
    CHECK(countdown.delay(8) == 360s);
    CHECK(countdown.delay(9) == 400s);
}

TEST_CASE("a linear countdown without limit keeps growing", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::linear(60);
    CHECK(countdown.delay(1) == 60s);
    CHECK(countdown.delay(10) == 600s);
    CHECK(countdown.delay(100) == 6000s);
}

TEST_CASE("an exponential countdown waits min(base^n * factor, limit) seconds", "[countdown]")
{
    RetryCountdown doubling = RetryCountdown::exponential(2, 1, 60);
    const std::vector<milliseconds> expected = {2s, 4s, 8s, 16s, 32s, 60s, 60s, 60s};
    for (unsigned n = 1; n <= expected.size(); ++n) {
        INFO("n = " << n);
        CHECK(doubling.delay(n) == expected[n - 1]);
    }

    RetryCountdown scaled = RetryCountdown::exponential(3, 1.5, 100);
    CHECK(scaled.delay(1) == 4500ms);
    CHECK(scaled.delay(2) == 13500ms);
    CHECK(scaled.delay(3) == 40500ms);
    CHECK(scaled.delay(4) == 100s);

    RetryCountdown unlimited = RetryCountdown::exponential(2, 5);
    for (unsigned n = 1; n <= 12; ++n) {
        INFO("n = " << n);
        CHECK(unlimited.delay(n) == secs(std::pow(2.0, n) * 5));
    }
}

TEST_CASE("an exponential countdown without limit does not overflow for large n", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::exponential(10);
    const milliseconds late = countdown.delay(40);
    CHECK(late > countdown.delay(5));
    CHECK(countdown.delay(5000) > 0ms);
    CHECK(countdown.delay(5000) >= late);
}

TEST_CASE("a random countdown picks whole seconds within [min_value, max_value]", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::random(5, 10);
    std::set<milliseconds::rep> seen;
    for (int i = 0; i < 3000; ++i) {
        milliseconds d = countdown.delay(static_cast<unsigned>(i % 7 + 1));
        REQUIRE(d >= 5s);
        REQUIRE(d <= 10s);
        REQUIRE(d.count() % 1000 == 0);
        seen.insert(d.count());
    }
    // 3000 draws from 6 values: each is all but certain to appear, including both ends.
    CHECK(seen == std::set<milliseconds::rep>{5000, 6000, 7000, 8000, 9000, 10000});
}

TEST_CASE("a random countdown with fractional bounds picks the whole numbers between them", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::random(0.5, 1.5);
    for (int i = 0; i < 200; ++i)
        REQUIRE(countdown.delay(1) == 1s);
}

TEST_CASE("a random countdown with bounds beyond any delay waits the longest delay", "[countdown]")
{
    // Found by fuzzing: bounds beyond 2^63 seconds overflowed their conversion to integers.
    const RetryCountdown huge = parse(R"({"choice": "random", "kwargs": {"min_value": 20, "max_value": 2e304}})");
    const RetryCountdown both = parse(R"({"choice": "random", "kwargs": {"min_value": 1e300, "max_value": 1e301}})");
    for (int i = 0; i < 20; ++i) {
        const milliseconds d = huge.delay(1);
        REQUIRE(d >= 20s);
        REQUIRE(d <= std::chrono::hours(30 * 24));
        REQUIRE(both.delay(1) == std::chrono::hours(30 * 24));
    }
}

TEST_CASE("a schedule countdown follows its delays and repeats the last", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::schedule({5, 300, 1800, 7200});
    CHECK(countdown.delay(1) == 5s);
    CHECK(countdown.delay(2) == 300s);
    CHECK(countdown.delay(3) == 1800s);
    CHECK(countdown.delay(4) == 7200s);
    CHECK(countdown.delay(5) == 7200s);
    CHECK(countdown.delay(50) == 7200s);

    RetryCountdown single = RetryCountdown::schedule({0.25});
    CHECK(single.delay(1) == 250ms);
    CHECK(single.delay(9) == 250ms);
}

TEST_CASE("jitter keeps delays within +/- the fraction and varies them", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::fixed(100).with_jitter(0.2);
    std::set<milliseconds::rep> seen;
    for (int i = 0; i < 2000; ++i) {
        milliseconds d = countdown.delay(1);
        REQUIRE(d >= 80s);
        REQUIRE(d <= 120s);
        seen.insert(d.count());
    }
    CHECK(seen.size() > 100);
    CHECK(*seen.begin() < 90000);
    CHECK(*seen.rbegin() > 110000);
}

TEST_CASE("jitter applies to the formula's delay for each n", "[countdown]")
{
    RetryCountdown countdown = RetryCountdown::linear(60, 600).with_jitter(0.1);
    for (unsigned n = 1; n <= 12; ++n) {
        const double base_ms = std::min(60.0 * n, 600.0) * 1000;
        for (int i = 0; i < 50; ++i) {
            auto d = static_cast<double>(countdown.delay(n).count());
            REQUIRE(d >= base_ms * 0.9 - 1);
            REQUIRE(d <= base_ms * 1.1 + 1);
        }
    }
}

TEST_CASE("with_jitter returns a copy and leaves the original exact", "[countdown]")
{
    const RetryCountdown exact = RetryCountdown::fixed(100);
    const RetryCountdown jittered = exact.with_jitter(0.5);
    for (int i = 0; i < 100; ++i)
        REQUIRE(exact.delay(1) == 100s);
    CHECK_FALSE(exact.to_json().contains("jitter"));
    CHECK(jittered.to_json().at("jitter") == 0.5);

    const RetryCountdown cleared = jittered.with_jitter(0);
    CHECK_FALSE(cleared.to_json().contains("jitter"));
    for (int i = 0; i < 100; ++i)
        REQUIRE(cleared.delay(1) == 100s);
}

TEST_CASE("jitter outside 0 to 1 is rejected", "[countdown]")
{
    const RetryCountdown countdown = RetryCountdown::fixed(10);
    for (double fraction : {-0.1, 1.01, 5.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
        INFO("fraction " << fraction);
        auto rejection = rejection_of([&] { (void)countdown.with_jitter(fraction); });
        REQUIRE(rejection);
        CHECK(rejection->field == "retry_countdown_config.jitter");
    }
    CHECK_NOTHROW(countdown.with_jitter(1));
}

TEST_CASE("several threads can draw delays from one countdown", "[countdown]")
{
    const RetryCountdown random = RetryCountdown::random(1, 3);
    const RetryCountdown jittered = RetryCountdown::exponential(2, 1, 64).with_jitter(0.25);
    std::atomic<int> out_of_range{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                milliseconds r = random.delay(1);
                if (r < 1s || r > 3s)
                    ++out_of_range;
                milliseconds j = jittered.delay(3);
                if (j < 6s || j > 10s)
                    ++out_of_range;
            }
        });
    for (std::thread& thread : threads)
        thread.join();
    CHECK(out_of_range == 0);
}

// --- parsing -------------------------------------------------------------------------------------

TEST_CASE("the Quick Start page's linear config parses and gives 60, 120, ... 600, 600", "[countdown]")
{
    const json::value seed = json::parse(R"({"choice":"linear","kwargs":{"base":60,"limit":600}})");
    RetryCountdown countdown = CountdownRegistry().parse(seed);
    for (unsigned n = 1; n <= 10; ++n) {
        INFO("n = " << n);
        CHECK(countdown.delay(n) == std::chrono::seconds(60 * n));
    }
    CHECK(countdown.delay(11) == 600s);
    CHECK(countdown.delay(12) == 600s);
    CHECK(countdown.to_json() == seed.as_object());
}

TEST_CASE("each built-in choice parses from its JSON form", "[countdown]")
{
    CHECK(parse(R"({"choice":"fixed","kwargs":{"seconds":42}})").delay(3) == 42s);
    CHECK(parse(R"({"choice":"linear","kwargs":{"base":10}})").delay(7) == 70s);
    CHECK(parse(R"({"choice":"linear","kwargs":{"base":10,"limit":null}})").delay(7) == 70s);
    CHECK(parse(R"({"choice":"exponential","kwargs":{"base":2}})").delay(5) == 32s);
    CHECK(parse(R"({"choice":"exponential","kwargs":{"base":2,"factor":3,"limit":50}})").delay(3) == 24s);
    CHECK(parse(R"({"choice":"exponential","kwargs":{"base":2,"factor":3,"limit":50}})").delay(4) == 48s);
    CHECK(parse(R"({"choice":"exponential","kwargs":{"base":2,"factor":3,"limit":50}})").delay(5) == 50s);
    milliseconds r = parse(R"({"choice":"random","kwargs":{"min_value":1,"max_value":2}})").delay(1);
    CHECK((r == 1s || r == 2s));
    CHECK(parse(R"({"choice":"schedule","kwargs":{"delays":[1,2.5]}})").delay(2) == 2500ms);
    CHECK(parse(R"({"choice":"fixed","kwargs":{"seconds":1.25}})").delay(1) == 1250ms);
}

TEST_CASE("a parsed config with jitter keeps it in to_json and in its delays", "[countdown]")
{
    RetryCountdown countdown = parse(R"({"choice":"fixed","kwargs":{"seconds":100},"jitter":0.1})");
    CHECK(countdown.to_json().at("jitter") == 0.1);
    std::set<milliseconds::rep> seen;
    for (int i = 0; i < 200; ++i) {
        milliseconds d = countdown.delay(1);
        REQUIRE(d >= 90s);
        REQUIRE(d <= 110s);
        seen.insert(d.count());
    }
    CHECK(seen.size() > 1);
}

TEST_CASE("the factory functions produce the same JSON a user would write", "[countdown]")
{
    CHECK(json::serialize(RetryCountdown::linear(60, 600).to_json()) ==
          R"({"choice":"linear","kwargs":{"base":60,"limit":600}})");
    CHECK(json::serialize(RetryCountdown::fixed(30).to_json()) == R"({"choice":"fixed","kwargs":{"seconds":30}})");
    CHECK(json::serialize(RetryCountdown::random(5, 10).to_json()) ==
          R"({"choice":"random","kwargs":{"min_value":5,"max_value":10}})");
    CHECK(json::serialize(RetryCountdown::schedule({5, 300}).to_json()) ==
          R"({"choice":"schedule","kwargs":{"delays":[5,300]}})");
    CHECK(RetryCountdown::exponential(1.5, 2).to_json().at("kwargs").at("base") == 1.5);
}

TEST_CASE("to_json round-trips through parse to the same delays", "[countdown]")
{
    const CountdownRegistry registry;
    for (const RetryCountdown& original :
         {RetryCountdown::fixed(7), RetryCountdown::linear(3, 20), RetryCountdown::exponential(2, 1.5, 500),
          RetryCountdown::schedule({1, 10, 100})}) {
        INFO(json::serialize(original.to_json()));
        RetryCountdown copy = registry.parse(original.to_json());
        CHECK(copy.to_json() == original.to_json());
        for (unsigned n = 1; n <= 12; ++n)
            CHECK(copy.delay(n) == original.delay(n));
    }
}

TEST_CASE("the built-in choices are fixed, linear, exponential, random and schedule", "[countdown]")
{
    CHECK(CountdownRegistry().choices() ==
          std::vector<std::string>{"exponential", "fixed", "linear", "random", "schedule"});
}

// --- validation ----------------------------------------------------------------------------------

TEST_CASE("invalid countdown configs are rejected naming the offending field", "[countdown]")
{
    struct Case {
        const char* config;
        const char* field;
        const char* message_part;
    };
    const Case cases[] = {
        // negative values
        {R"({"choice":"fixed","kwargs":{"seconds":-1}})", "retry_countdown_config.kwargs.seconds", "at least 0."},
        {R"({"choice":"linear","kwargs":{"base":-60}})", "retry_countdown_config.kwargs.base", "at least 0."},
        {R"({"choice":"linear","kwargs":{"base":60,"limit":-1}})", "retry_countdown_config.kwargs.limit", "at least 0."},
        {R"({"choice":"exponential","kwargs":{"base":-2}})", "retry_countdown_config.kwargs.base", "at least 0."},
        {R"({"choice":"exponential","kwargs":{"base":2,"limit":-0.5}})", "retry_countdown_config.kwargs.limit", "at least 0."},
        {R"({"choice":"random","kwargs":{"min_value":-1,"max_value":5}})", "retry_countdown_config.kwargs.min_value", "at least 0."},
        {R"({"choice":"schedule","kwargs":{"delays":[5,-1]}})", "retry_countdown_config.kwargs.delays", "non-negative"},
        // factor below 1
        {R"({"choice":"exponential","kwargs":{"base":2,"factor":0.5}})", "retry_countdown_config.kwargs.factor", "at least 1."},
        {R"({"choice":"exponential","kwargs":{"base":2,"factor":0}})", "retry_countdown_config.kwargs.factor", "at least 1."},
        // min >= max
        {R"({"choice":"random","kwargs":{"min_value":10,"max_value":10}})", "retry_countdown_config.kwargs.min_value", "less than"},
        {R"({"choice":"random","kwargs":{"min_value":10,"max_value":5}})", "retry_countdown_config.kwargs.min_value", "less than"},
        {R"({"choice":"random","kwargs":{"min_value":0.2,"max_value":0.8}})", "retry_countdown_config.kwargs.max_value", "whole number"},
        // missing kwargs
        {R"({"choice":"linear"})", "retry_countdown_config.kwargs.base", "required"},
        {R"({"choice":"fixed","kwargs":{}})", "retry_countdown_config.kwargs.seconds", "required"},
        {R"({"choice":"exponential","kwargs":{"factor":2}})", "retry_countdown_config.kwargs.base", "required"},
        {R"({"choice":"random","kwargs":{"min_value":1}})", "retry_countdown_config.kwargs.max_value", "required"},
        {R"({"choice":"random","kwargs":{"max_value":1}})", "retry_countdown_config.kwargs.min_value", "required"},
        {R"({"choice":"schedule","kwargs":{}})", "retry_countdown_config.kwargs.delays", "non-empty array"},
        {R"({"choice":"schedule","kwargs":{"delays":[]}})", "retry_countdown_config.kwargs.delays", "non-empty array"},
        // unknown kwarg
        {R"({"choice":"fixed","kwargs":{"seconds":5,"sconds":3}})", "retry_countdown_config.kwargs.sconds", "Unknown kwarg"},
        {R"({"choice":"linear","kwargs":{"base":5,"factor":2}})", "retry_countdown_config.kwargs.factor", "Unknown kwarg"},
        {R"({"choice":"random","kwargs":{"min":1,"max":5}})", "retry_countdown_config.kwargs.min", "Unknown kwarg"},
        // not a number
        {R"({"choice":"linear","kwargs":{"base":"60"}})", "retry_countdown_config.kwargs.base", "must be a number"},
        {R"({"choice":"linear","kwargs":{"base":null}})", "retry_countdown_config.kwargs.base", "must be a number"},
        {R"({"choice":"fixed","kwargs":{"seconds":true}})", "retry_countdown_config.kwargs.seconds", "must be a number"},
        {R"({"choice":"exponential","kwargs":{"base":2,"limit":[60]}})", "retry_countdown_config.kwargs.limit", "must be a number"},
        {R"({"choice":"schedule","kwargs":{"delays":"5,10"}})", "retry_countdown_config.kwargs.delays", "non-empty array"},
        {R"({"choice":"schedule","kwargs":{"delays":[5,"10"]}})", "retry_countdown_config.kwargs.delays", "non-negative"},
        // unknown or missing choice
        {R"({"choice":"quadratic","kwargs":{"base":2}})", "retry_countdown_config.choice", "\"quadratic\" is not a valid choice"},
        {R"({"choice":"Linear","kwargs":{"base":2}})", "retry_countdown_config.choice", "not a valid choice"},
        {R"({"kwargs":{"base":2}})", "retry_countdown_config.choice", "required"},
        {R"({"choice":3,"kwargs":{"base":2}})", "retry_countdown_config.choice", "must be a string"},
        // malformed structure
        {R"([])", "retry_countdown_config", "must be an object"},
        {R"("linear")", "retry_countdown_config", "must be an object"},
        {R"(null)", "retry_countdown_config", "must be an object"},
        {R"(60)", "retry_countdown_config", "must be an object"},
        {R"({"choice":"linear","kwargs":[60,600]})", "retry_countdown_config.kwargs", "must be an object"},
        {R"({"choice":"linear","kwargs":{"base":60},"extra":1})", "retry_countdown_config.extra", "Unknown key"},
        {R"({"choice":"fixed","kwargs":{"seconds":5},"jitter":"0.2"})", "retry_countdown_config.jitter", "number"},
        {R"({"choice":"fixed","kwargs":{"seconds":5},"jitter":1.5})", "retry_countdown_config.jitter", "between 0 and 1"},
    };
    const CountdownRegistry registry;
    for (const Case& c : cases) {
        INFO(c.config);
        auto rejection = rejection_of([&] { (void)registry.parse(json::parse(c.config)); });
        REQUIRE(rejection);
        CHECK(rejection->field == c.field);
        INFO("message: " << rejection->message);
        CHECK(contains(rejection->message, c.message_part));
    }
}

TEST_CASE("the unknown choice message lists the known choices", "[countdown]")
{
    auto rejection = rejection_of([] { (void)parse(R"({"choice":"quadratic"})"); });
    REQUIRE(rejection);
    CHECK(rejection->message ==
          "\"quadratic\" is not a valid choice (exponential, fixed, linear, random, schedule).");
}

TEST_CASE("a schedule of more than 100 delays is rejected", "[countdown]")
{
    json::array delays(101, json::value(1));
    json::value config = {{"choice", "schedule"}, {"kwargs", {{"delays", delays}}}};
    auto rejection = rejection_of([&] { (void)CountdownRegistry().parse(config); });
    REQUIRE(rejection);
    CHECK(rejection->field == "retry_countdown_config.kwargs.delays");

    delays.pop_back();
    config.as_object()["kwargs"].as_object()["delays"] = delays;
    CHECK(CountdownRegistry().parse(config).delay(100) == 1s);
}

TEST_CASE("the factory functions validate their arguments like parse does", "[countdown]")
{
    auto field_of = [](auto make) {
        auto rejection = rejection_of(make);
        return rejection ? rejection->field : std::string("<accepted>");
    };
    CHECK(field_of([] { RetryCountdown::fixed(-1); }) == "retry_countdown_config.kwargs.seconds");
    CHECK(field_of([] { RetryCountdown::linear(-1); }) == "retry_countdown_config.kwargs.base");
    CHECK(field_of([] { RetryCountdown::linear(1, -5); }) == "retry_countdown_config.kwargs.limit");
    CHECK(field_of([] { RetryCountdown::exponential(2, 0.99); }) == "retry_countdown_config.kwargs.factor");
    CHECK(field_of([] { RetryCountdown::random(3, 3); }) == "retry_countdown_config.kwargs.min_value");
    CHECK(field_of([] { RetryCountdown::random(4, 3); }) == "retry_countdown_config.kwargs.min_value");
    CHECK(field_of([] { RetryCountdown::schedule({}); }) == "retry_countdown_config.kwargs.delays");
    CHECK(field_of([] { RetryCountdown::fixed(std::nan("")); }) == "retry_countdown_config.kwargs.seconds");
    CHECK(field_of([] { RetryCountdown::linear(std::numeric_limits<double>::infinity()); }) == "retry_countdown_config.kwargs.base");
}

TEST_CASE("countdown validation errors carry the invalid_argument code", "[countdown]")
{
    try {
        (void)parse(R"({"choice":"linear","kwargs":{"base":-1}})");
        FAIL("a negative base was accepted");
    } catch (const Error& e) {
        CHECK(e.code() == errc::invalid_argument);
    }
}

// --- custom choices ------------------------------------------------------------------------------

TEST_CASE("a host-registered choice parses with its own kwargs validation", "[countdown]")
{
    CountdownRegistry registry;
    registry.register_choice("stepped", make_stepped);

    CHECK(registry.choices() ==
          std::vector<std::string>{"exponential", "fixed", "linear", "random", "schedule", "stepped"});

    const json::value config = json::parse(R"({"choice":"stepped","kwargs":{"step":7,"cap":20}})");
    RetryCountdown countdown = registry.parse(config);
    CHECK(countdown.delay(1) == 7s);
    CHECK(countdown.delay(2) == 14s);
    CHECK(countdown.delay(3) == 20s);
    CHECK(countdown.to_json() == config.as_object());

    auto rejection = rejection_of([&] { (void)registry.parse(json::parse(R"({"choice":"stepped","kwargs":{"step":0}})")); });
    REQUIRE(rejection);
    CHECK(rejection->field == "retry_countdown_config.kwargs.step");

    CHECK(registry.parse(json::parse(R"({"choice":"linear","kwargs":{"base":5}})")).delay(2) == 10s);
}

TEST_CASE("a host-registered choice can be combined with jitter", "[countdown]")
{
    CountdownRegistry registry;
    registry.register_choice("stepped", make_stepped);
    RetryCountdown countdown = registry.parse(json::parse(R"({"choice":"stepped","kwargs":{"step":10},"jitter":0.5})"));
    for (int i = 0; i < 100; ++i) {
        milliseconds d = countdown.delay(2);
        REQUIRE(d >= 10s);
        REQUIRE(d <= 30s);
    }
}

TEST_CASE("a custom choice is known only to the registry it was added to", "[countdown]")
{
    CountdownRegistry with_custom;
    with_custom.register_choice("stepped", make_stepped);
    const CountdownRegistry plain;
    auto rejection = rejection_of([&] { (void)plain.parse(json::parse(R"({"choice":"stepped","kwargs":{"step":1}})")); });
    REQUIRE(rejection);
    CHECK(rejection->field == "retry_countdown_config.choice");
}

TEST_CASE("registering a taken, empty or factory-less choice is rejected", "[countdown]")
{
    CountdownRegistry registry;
    registry.register_choice("stepped", make_stepped);

    for (const char* name : {"stepped", "linear", "fixed", ""}) {
        INFO(name);
        auto rejection = rejection_of([&] { registry.register_choice(name, make_stepped); });
        REQUIRE(rejection);
        CHECK(rejection->field == "choice");
    }
    CHECK_THROWS_AS(registry.register_choice("nothing", nullptr), ValidationError);

    // The built-in linear choice was not replaced.
    CHECK(registry.parse(json::parse(R"({"choice":"linear","kwargs":{"base":5}})")).delay(3) == 15s);
    CHECK(registry.choices().size() == 6);
}

TEST_CASE("a RetryCountdown can wrap a host policy directly", "[countdown]")
{
    const json::object config = {{"choice", "stepped"}, {"kwargs", {{"step", 4}}}};
    RetryCountdown countdown(std::make_shared<SteppedPolicy>(4, 0), config);
    CHECK(countdown.delay(1) == 4s);
    CHECK(countdown.delay(5) == 20s);
    CHECK(countdown.to_json() == config);

    auto rejection = rejection_of([&] { RetryCountdown(nullptr, config); });
    REQUIRE(rejection);
    CHECK(rejection->field == "retry_countdown_config");
}
