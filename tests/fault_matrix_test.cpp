// The receiver fault matrix: every way a receiver can fail, the failure class the delivery log
// records for it, and the retries by the hook's countdown until delivered or out of attempts.

#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "temp_dir.hpp"

#include <whisperer/whisperer.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <functional>
#include <mutex>
#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
using test::eventually;
using test::Receiver;
using test::ReceivedRequest;
using test::Reply;
namespace json = boost::json;

namespace {

/// The slowest row (Retry-After as a date) takes a few seconds; leave room for a loaded machine.
constexpr std::chrono::milliseconds patience = 30s;

/// `t` as an HTTP date (RFC 9110 IMF-fixdate), e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(TimePoint t)
{
    const std::time_t seconds = Clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char out[40];
    std::strftime(out, sizeof out, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    return out;
}

/// Each attempt's countdown in the matrix: a fixed pause that every retry must wait at least.
constexpr std::chrono::milliseconds countdown = 200ms;
constexpr unsigned max_attempts = 3;
constexpr std::chrono::milliseconds request_timeout = 400ms;

/// One row of the matrix.
struct FaultCase {
    std::string name;
    std::function<Reply()> fault;       ///< What the receiver does instead of answering 2xx.
    FailureClass expected;              ///< The class recorded for every faulty attempt.
    int status = 0;                     ///< The recorded status (0: no response).
    std::chrono::milliseconds min_wait = countdown; ///< Between two attempts, at least.
    /// The fault is in the receiver's answers (so it can stop and the delivery succeed); false for
    /// faults of the endpoint itself (refused, TLS), tested only until out of attempts.
    bool recovers = true;
};

std::vector<FaultCase> fault_cases()
{
    return {
        {"HTTP 500", [] { return Reply{.status = 500, .body = "boom"}; }, FailureClass::http_status, 500},
        {"HTTP 503", [] { return Reply{.status = 503}; }, FailureClass::http_status, 503},
        {"HTTP 429 with Retry-After in seconds",
         [] { return Reply{.status = 429, .headers = {{"Retry-After", "1"}}}; }, FailureClass::http_status, 429, 1s},
        {"HTTP 429 with Retry-After as an HTTP date",
         [] { return Reply{.status = 429, .headers = {{"Retry-After", http_date(Clock::now() + 3s)}}}; },
         FailureClass::http_status, 429, 1s},
        {"a 3xx redirect, not followed",
         [] { return Reply{.status = 302, .headers = {{"Location", "http://127.0.0.1:9/elsewhere"}}}; },
         FailureClass::http_status, 302},
        {"an answer slower than the timeout", [] { return Reply{.status = 200, .delay = 2 * request_timeout}; },
         FailureClass::timeout, 0},
        {"a connection that is accepted and never answered", [] { return Reply{.action = Reply::Action::stall}; },
         FailureClass::timeout, 0},
        {"an answer trickled one byte at a time past the timeout",
         [] { return Reply{.action = Reply::Action::trickle, .status = 200, .body = "ok", .delay = 100ms}; },
         FailureClass::timeout, 0},
        {"a connection reset mid-request", [] { return Reply{.action = Reply::Action::reset}; },
         FailureClass::connection_reset, 0},
        {"a connection closed without a response", [] { return Reply{.action = Reply::Action::close}; },
         FailureClass::connection_closed, 0},
        {"garbage instead of HTTP", [] { return Reply{.action = Reply::Action::garbage}; }, FailureClass::protocol, 0},
        {"a connection refused", nullptr, FailureClass::connection_refused, 0, countdown, false},
        {"a TLS handshake failure (self-signed certificate)", nullptr, FailureClass::tls, 0, countdown, false},
        {"a host name that does not resolve", nullptr, FailureClass::dns, 0, countdown, false},
    };
}

/// A SQLite file, an io_context on two threads and a dispatcher with the matrix's settings.
struct MatrixFixture {
    test::TempDir dir;
    SqliteStore store{dir.file("whisperer.db")};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;

    MatrixFixture()
    {
        registry.register_json_event("thing.happened");
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }

    ~MatrixFixture()
    {
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }

    DispatcherOptions options() const
    {
        DispatcherOptions o;
        o.lease = 2s;
        o.idle_poll = 100ms;
        o.connect_timeout = 1s;
        o.request_timeout = request_timeout;
        o.max_attempts = max_attempts;
        o.response_body_limit = 1000;
        // The receivers listen on loopback, which the default SSRF guard refuses.
        o.address_filter = [](const boost::asio::ip::address&) { return true; };
        return o;
    }

    Hook hook(const std::string& url)
    {
        Hook h;
        h.owner = "alice";
        h.target_url = url;
        h.event_type = "thing.happened";
        h.retry_countdown_config = {
            {"choice", "fixed"},
            {"kwargs", {{"seconds", std::chrono::duration<double>(countdown).count()}}}};
        validate_hook(h, {.registry = &registry});
        return store.create_hook(h);
    }

    /// The delivery of the event to `hook_id`, with its attempts oldest first.
    Delivery delivery_to(const std::string& uuid, std::int64_t hook_id)
    {
        for (const Delivery& d : store.deliveries_of_event(uuid))
            if (d.hook_id == hook_id) {
                Delivery full = *store.find_delivery(d.id, true);
                std::reverse(full.attempts.begin(), full.attempts.end());
                return full;
            }
        FAIL("no delivery to hook " << hook_id);
        return {};
    }

    bool finished(const std::string& uuid)
    {
        auto deliveries = store.deliveries_of_event(uuid);
        return !deliveries.empty() && std::none_of(deliveries.begin(), deliveries.end(), [](const Delivery& d) {
            return d.state == DeliveryState::pending;
        });
    }
};

void check_faulty_attempt(const Attempt& attempt, const FaultCase& c)
{
    INFO("attempt " << attempt.number);
    CHECK(attempt.failure == c.expected);
    CHECK(attempt.response_status == c.status);
    CHECK_FALSE(attempt.error.empty());
}

/// Every retry waited at least the hook's countdown (or what Retry-After asked).
void check_waits(const Delivery& d, std::chrono::milliseconds min_wait)
{
    for (std::size_t i = 1; i < d.attempts.size(); ++i)
        CHECK(d.attempts[i].started_at - d.attempts[i - 1].started_at >= min_wait);
}

} // namespace

TEST_CASE("every receiver fault is recorded with its class and retried by the countdown until delivered or "
          "out of attempts",
          "[faults]")
{
    for (const FaultCase& c : fault_cases()) {
        DYNAMIC_SECTION(c.name)
        {
            MatrixFixture f;
            auto options = f.options();
            std::optional<test::TestCa> ca;
            std::optional<test::TlsFiles> self_signed;
            std::mutex mutex;
            std::map<std::string, int> seen; // requests per path
            auto handler = [&](const ReceivedRequest& request) {
                int n = 0;
                {
                    std::lock_guard lock{mutex};
                    n = ++seen[request.target];
                }
                // "/recovers" fails twice and then takes the event; "/never" always fails.
                if (request.target == "/recovers" && n > 2)
                    return Reply{.status = 204};
                return c.fault ? c.fault() : Reply{.status = 204};
            };
            std::optional<Receiver> receiver;
            std::string never_url;
            if (c.expected == FailureClass::tls) {
                ca.emplace(f.dir.path().string());
                self_signed = ca->issue("localhost", true);
                options.ca_file = ca->ca_file();
                receiver.emplace(handler, &*self_signed);
                never_url = receiver->url("/never", "localhost");
            } else if (c.expected == FailureClass::connection_refused) {
                Receiver gone;
                never_url = gone.url("/never");
            } else if (c.expected == FailureClass::dns) {
                // A name under .invalid never resolves (RFC 6761).
                never_url = "http://name.invalid:8080/never";
            } else {
                receiver.emplace(handler);
                never_url = receiver->url("/never");
            }
            const Hook never = f.hook(never_url);
            std::optional<Hook> recovers;
            if (c.recovers)
                recovers = f.hook(receiver->url("/recovers"));

            Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
            dispatcher.start();
            auto result = dispatcher.deliver_event(json::object{{"id", 1}}, "thing.happened");
            REQUIRE(eventually([&] { return f.finished(result.event_uuid); }, patience));
            dispatcher.stop(1s);

            // Out of attempts: failed, visibly, with every attempt's class.
            const Delivery failed = f.delivery_to(result.event_uuid, never.id);
            CHECK(failed.state == DeliveryState::failed);
            CHECK(failed.attempt_count == max_attempts);
            CHECK(failed.last_failure == c.expected);
            CHECK(failed.response_status == c.status);
            REQUIRE(failed.attempts.size() == max_attempts);
            for (const Attempt& attempt : failed.attempts)
                check_faulty_attempt(attempt, c);
            check_waits(failed, c.min_wait);

            if (recovers) {
                // Two faults, then delivered on the third attempt.
                const Delivery delivered = f.delivery_to(result.event_uuid, recovers->id);
                CHECK(delivered.state == DeliveryState::delivered);
                CHECK(delivered.attempt_count == 3);
                REQUIRE(delivered.attempts.size() == 3);
                check_faulty_attempt(delivered.attempts[0], c);
                check_faulty_attempt(delivered.attempts[1], c);
                CHECK(delivered.attempts[2].succeeded());
                CHECK(delivered.attempts[2].response_status == 204);
                check_waits(delivered, c.min_wait);
                CHECK(f.store.find_hook(recovers->id)->is_active);
            }
            if (c.expected == FailureClass::tls)
                CHECK(receiver->count() == 0); // No request ever got through the handshake.
            CHECK(f.store.find_hook(never.id)->is_active);
        }
    }
}

TEST_CASE("410 Gone disables the hook with its reason, tells the host, and keeps the delivery pending until "
          "re-activated",
          "[faults]")
{
    MatrixFixture f;
    std::atomic<int> answer{410};
    Receiver receiver([&](const ReceivedRequest&) { return Reply{.status = answer.load()}; });
    const Hook hook = f.hook(receiver.url("/gone"));
    std::mutex mutex;
    std::vector<std::pair<std::int64_t, std::string>> reported;
    auto options = f.options();
    options.on_hook_disabled = [&](const Hook& h, std::string_view reason) {
        std::lock_guard lock{mutex};
        reported.emplace_back(h.id, std::string(reason));
    };
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    dispatcher.start();
    auto result = dispatcher.deliver_event(json::object{{"id", 1}}, "thing.happened");

    REQUIRE(eventually([&] {
        std::lock_guard lock{mutex};
        return !reported.empty();
    }));
    REQUIRE(eventually([&] { return f.delivery_to(result.event_uuid, hook.id).attempt_count == 1; }, patience));
    Hook disabled = *f.store.find_hook(hook.id);
    CHECK_FALSE(disabled.is_active);
    CHECK(disabled.disabled_reason.find("410") != std::string::npos);
    CHECK(disabled.disabled_at.has_value());
    {
        std::lock_guard lock{mutex};
        CHECK(reported.size() == 1);
        CHECK(reported[0] == std::pair{hook.id, disabled.disabled_reason});
    }
    const Delivery pending = f.delivery_to(result.event_uuid, hook.id);
    CHECK(pending.state == DeliveryState::pending);
    CHECK(pending.last_failure == FailureClass::http_status);
    CHECK(pending.response_status == 410);
    CHECK(f.store.list_outbox({}).items.size() == 1);
    CHECK(receiver.count() == 1);

    answer = 200;
    disabled.is_active = true;
    const Hook enabled = f.store.update_hook(disabled);
    CHECK(enabled.disabled_reason.empty());
    CHECK_FALSE(enabled.disabled_at);
    REQUIRE(eventually([&] { return f.delivery_to(result.event_uuid, hook.id).delivered(); }, patience));
    CHECK(receiver.count() == 2);
}

TEST_CASE("a 2xx whose body is larger than the cap succeeds and its stored body is cut to the cap", "[faults]")
{
    MatrixFixture f;
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 200, .body = std::string(50000, 'b')}; });
    const Hook hook = f.hook(receiver.url("/big"));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, f.options());
    dispatcher.start();
    auto result = dispatcher.deliver_event(json::object{{"id", 1}}, "thing.happened");
    REQUIRE(eventually([&] { return f.finished(result.event_uuid); }, patience));
    const Delivery d = f.delivery_to(result.event_uuid, hook.id);
    CHECK(d.state == DeliveryState::delivered);
    CHECK(d.attempt_count == 1);
    CHECK(d.response_status == 200);
    CHECK(d.last_failure == FailureClass::none);
    CHECK(d.response_body.size() >= 1000);
    CHECK(d.response_body.size() < 50000);
    CHECK(d.response_body == std::string(d.response_body.size(), 'b'));
}
