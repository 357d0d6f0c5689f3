// The verdict (src/dispatch/verdict.hpp): a pure function from an attempt's result, the hook
// and the options to what happens to the delivery next.
#include "catch.hpp"

#include "dispatch/verdict.hpp"

#include <whisperer/retry_countdown.hpp>

#include <boost/json/parse.hpp>

using namespace whisperer;
using namespace whisperer::dispatch;
using namespace std::chrono_literals;

namespace {

const CountdownRegistry countdowns;
const TimePoint now = Clock::now();

VerdictOptions options_with(unsigned max_attempts)
{
    return {.max_attempts = max_attempts, .max_retry_after = 3600s, .countdowns = &countdowns};
}

Hook hook_retrying_every(int seconds)
{
    Hook hook;
    hook.id = 7;
    hook.retry_countdown_config =
        boost::json::parse(R"({"choice":"fixed","kwargs":{"seconds":)" + std::to_string(seconds) + "}}").as_object();
    return hook;
}

Attempt attempt_of(unsigned number, int status)
{
    Attempt a;
    a.number = number;
    a.response_status = status;
    a.failure = status >= 200 && status < 300 ? FailureClass::none : FailureClass::http_status;
    return a;
}

HttpResult result_of(int status, std::string retry_after = {})
{
    HttpResult r;
    r.status = status;
    if (!retry_after.empty())
        r.headers.emplace_back("Retry-After", std::move(retry_after));
    return r;
}

} // namespace

TEST_CASE("A successful attempt is delivered, with no next time", "[verdict]")
{
    const Verdict v = decide(attempt_of(1, 204), result_of(204), hook_retrying_every(30), options_with(5), now);
    CHECK(v.verdict == AttemptVerdict::delivered);
    CHECK_FALSE(v.next_attempt_at);
    CHECK_FALSE(v.gone);
}

TEST_CASE("A failed attempt retries after the hook's countdown", "[verdict]")
{
    const Verdict v = decide(attempt_of(2, 500), result_of(500), hook_retrying_every(30), options_with(5), now);
    CHECK(v.verdict == AttemptVerdict::retry);
    REQUIRE(v.next_attempt_at);
    CHECK(*v.next_attempt_at == now + 30s);
    CHECK(v.countdown_error.empty());
}

TEST_CASE("The last allowed attempt that fails ends the delivery as failed", "[verdict]")
{
    const Verdict v = decide(attempt_of(5, 500), result_of(500), hook_retrying_every(30), options_with(5), now);
    CHECK(v.verdict == AttemptVerdict::failed);
    CHECK_FALSE(v.next_attempt_at);
}

TEST_CASE("Retry-After on 429 and 503 waits longer than the countdown, up to max_retry_after", "[verdict]")
{
    const Hook hook = hook_retrying_every(30);
    CHECK(*decide(attempt_of(1, 429), result_of(429, "120"), hook, options_with(5), now).next_attempt_at ==
          now + 120s);
    CHECK(*decide(attempt_of(1, 503), result_of(503, "99999"), hook, options_with(5), now).next_attempt_at ==
          now + 3600s);
    // Shorter than the countdown, or on another status: the countdown holds.
    CHECK(*decide(attempt_of(1, 429), result_of(429, "5"), hook, options_with(5), now).next_attempt_at == now + 30s);
    CHECK(*decide(attempt_of(1, 500), result_of(500, "120"), hook, options_with(5), now).next_attempt_at ==
          now + 30s);
}

TEST_CASE("410 Gone asks for the hook to be disabled, and still counts as a failed attempt", "[verdict]")
{
    const Verdict v = decide(attempt_of(1, 410), result_of(410), hook_retrying_every(30), options_with(5), now);
    CHECK(v.gone);
    CHECK(v.verdict == AttemptVerdict::retry);
}

TEST_CASE("An unusable countdown retries in 60 s and says why", "[verdict]")
{
    Hook hook;
    hook.retry_countdown_config = boost::json::parse(R"({"choice":"no-such-choice"})").as_object();
    const Verdict v = decide(attempt_of(1, 500), result_of(500), hook, options_with(5), now);
    CHECK(v.verdict == AttemptVerdict::retry);
    CHECK(*v.next_attempt_at == now + 60s);
    CHECK_FALSE(v.countdown_error.empty());
}
