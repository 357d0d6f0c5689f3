// POST /hooks/{id}/recover/: queueing a hook's failed deliveries again, through the router.

#include "api_fixture.hpp"
#include "receiver.hpp"

#include <atomic>
#include <ctime>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;
using boost::beast::http::status;
using boost::beast::http::verb;

namespace {

/// `t` as ISO 8601 UTC with whole seconds, e.g. "2026-11-28T12:00:00Z".
std::string iso(TimePoint t)
{
    const std::time_t seconds = Clock::to_time_t(t);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char out[32];
    std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return out;
}

std::string recover_path(std::int64_t hook_id)
{
    return "/whisperer/hooks/" + std::to_string(hook_id) + "/recover/";
}

/// A hook of alice's whose deliveries fail after one attempt, with `n` failed deliveries.
struct FailedDeliveries {
    ApiFixture api{[] {
        auto o = quick_dispatcher_options();
        o.max_attempts = 1;
        return o;
    }()};
    std::atomic<int> answer{500};
    Receiver receiver{[this](const ReceivedRequest&) { return Reply{.status = answer.load()}; }};
    std::int64_t hook = api.create_hook(api.alice, receiver.url("/hook"));
    std::vector<std::int64_t> deliveries;

    explicit FailedDeliveries(int n)
    {
        api.dispatcher->start();
        for (int i = 0; i < n; ++i) {
            auto result = api.dispatcher->deliver_data(json::object{{"n", i}}, "package-created", {});
            REQUIRE(api.dispatcher->wait_stored());
            deliveries.push_back(api.store.deliveries_of_event(result.event_uuid).at(0).id);
        }
        REQUIRE(eventually([&] { return count(DeliveryState::failed) == deliveries.size(); }));
    }

    std::size_t count(DeliveryState state)
    {
        std::size_t n = 0;
        for (std::int64_t id : deliveries)
            n += api.store.find_delivery(id)->state == state ? 1 : 0;
        return n;
    }
};

} // namespace

TEST_CASE("recover queues every failed delivery of the hook in the range again and says how many", "[router]")
{
    FailedDeliveries f(3);
    f.answer = 200;
    const TimePoint now = Clock::now();

    // A range that holds none of them recovers nothing.
    auto none = f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                           json::serialize(json::object{{"since", iso(now + 1h)}, {"until", iso(now + 2h)}}));
    REQUIRE(none.result() == status::ok);
    CHECK(json_body(none).at("recovered").to_number<int>() == 0);
    auto before = f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                             json::serialize(json::object{{"since", iso(now - 2h)}, {"until", iso(now - 1h)}}));
    CHECK(json_body(before).at("recovered").to_number<int>() == 0);
    CHECK(f.count(DeliveryState::failed) == 3);

    // until defaults to now; a date alone is midnight UTC.
    auto recovered = f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                                json::serialize(json::object{{"since", iso(now - 1h)}}));
    REQUIRE(recovered.result() == status::ok);
    CHECK(json_body(recovered).at("recovered").to_number<int>() == 3);
    REQUIRE(eventually([&] { return f.count(DeliveryState::delivered) == 3; }));
    CHECK(f.receiver.count() == 6);

    // Delivered ones are not failed: nothing left to recover.
    auto again = f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                            json::serialize(json::object{{"since", iso(now - 24h).substr(0, 10)}}));
    REQUIRE(again.result() == status::ok);
    CHECK(json_body(again).at("recovered").to_number<int>() == 0);
}

TEST_CASE("recover is scoped to the hook's owner and validates its fields", "[router]")
{
    FailedDeliveries f(1);
    const std::string since = iso(Clock::now() - 1h);

    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.bob,
                                 json::serialize(json::object{{"since", since}})),
                      status::not_found, "webhook_100_1");
    require_api_error(f.api.call(verb::post, recover_path(f.hook + 100), f.api.alice,
                                 json::serialize(json::object{{"since", since}})),
                      status::not_found, "webhook_100_1");
    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.alice, "{}"), status::bad_request,
                      "whisperer_invalid", "since");
    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.alice, R"({"since": "yesterday"})"),
                      status::bad_request, "whisperer_invalid", "since");
    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.alice, R"({"since": 17})"),
                      status::bad_request, "whisperer_invalid", "since");
    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                                 json::serialize(json::object{{"since", since}, {"until", "soon"}})),
                      status::bad_request, "whisperer_invalid", "until");
    require_api_error(f.api.call(verb::post, recover_path(f.hook), f.api.alice,
                                 json::serialize(json::object{{"since", since}, {"until", iso(Clock::now() - 2h)}})),
                      status::bad_request, "whisperer_invalid", "until");
    require_api_error(f.api.call(verb::get, recover_path(f.hook), f.api.alice), status::method_not_allowed,
                      "method_not_allowed");
    // None of the refused calls queued anything.
    CHECK(f.count(DeliveryState::failed) == 1);
    CHECK(f.api.store.list_outbox({}).items.empty());
}
