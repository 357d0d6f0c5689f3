// Endpoint health: hooks that keep failing are disabled, reported to the host, and resume when
// re-activated through the REST API.

#include "api_fixture.hpp"
#include "receiver.hpp"

#include <atomic>
#include <mutex>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;
using boost::beast::http::status;
using boost::beast::http::verb;

namespace {

/// What `on_hook_disabled` was called with.
struct DisabledReports {
    std::mutex mutex;
    std::vector<std::pair<Hook, std::string>> reports;

    std::function<void(const Hook&, std::string_view)> callback()
    {
        return [this](const Hook& hook, std::string_view reason) {
            std::lock_guard lock{mutex};
            reports.emplace_back(hook, std::string(reason));
        };
    }

    std::size_t size()
    {
        std::lock_guard lock{mutex};
        return reports.size();
    }
};

DispatcherOptions health_options(DisabledReports& reports, std::chrono::seconds period, unsigned failures)
{
    auto o = quick_dispatcher_options();
    o.disable_after = period;
    o.disable_after_failures = failures;
    o.on_hook_disabled = reports.callback();
    return o;
}

} // namespace

TEST_CASE("a hook that keeps failing is disabled with a reason, reported, and resumes when re-activated",
          "[health]")
{
    DisabledReports reports;
    ApiFixture api(health_options(reports, 0s, 3));
    std::atomic<int> answer{500};
    Receiver receiver([&](const ReceivedRequest&) { return Reply{.status = answer.load()}; });
    const std::int64_t hook_id = api.create_hook(api.alice, receiver.url("/hook"));
    api.dispatcher->start();
    auto event = api.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(api.dispatcher->wait_stored());
    const std::int64_t delivery_id = api.store.deliveries_of_event(event.event_uuid).at(0).id;

    REQUIRE(eventually([&] { return reports.size() == 1; }));
    const Hook disabled = *api.store.find_hook(hook_id);
    CHECK_FALSE(disabled.is_active);
    CHECK_FALSE(disabled.disabled_reason.empty());
    CHECK(disabled.disabled_at.has_value());
    CHECK(disabled.failed_attempts == 3);
    {
        std::lock_guard lock{reports.mutex};
        CHECK(reports.reports[0].first.id == hook_id);
        CHECK_FALSE(reports.reports[0].first.is_active);
        CHECK(reports.reports[0].second == disabled.disabled_reason);
    }
    // The delivery stays pending and visible, and no more attempts are made.
    const Delivery pending = *api.store.find_delivery(delivery_id);
    CHECK(pending.state == DeliveryState::pending);
    CHECK(pending.attempt_count == 3);
    auto queue = api.call(verb::get, "/whisperer/event_queues/", api.alice);
    REQUIRE(queue.result() == status::ok);
    CHECK(json_body(queue).at("results").as_array().size() == 1);
    auto shown = json_body(api.call(verb::get, "/whisperer/hooks/" + std::to_string(hook_id) + "/", api.alice));
    CHECK_FALSE(shown.at("is_active").as_bool());
    CHECK(shown.at("disabled_reason").as_string() == disabled.disabled_reason);
    CHECK(receiver.count() == 3);

    // The owner fixes the receiver and re-activates the hook: the delivery goes out.
    answer = 200;
    auto patched = api.call(verb::patch, "/whisperer/hooks/" + std::to_string(hook_id) + "/", api.alice,
                            R"({"is_active": true})");
    REQUIRE(patched.result() == status::ok);
    auto enabled_json = json_body(patched);
    CHECK(enabled_json.at("is_active").as_bool());
    CHECK(enabled_json.at("disabled_reason").is_null());
    CHECK(enabled_json.at("disabled_at").is_null());
    const Hook enabled = *api.store.find_hook(hook_id);
    CHECK_FALSE(enabled.failing_since);
    CHECK(enabled.failed_attempts == 0);
    REQUIRE(eventually([&] { return api.store.find_delivery(delivery_id)->delivered(); }));
    CHECK(reports.size() == 1);
}

TEST_CASE("any success resets a hook's failure clock", "[health]")
{
    DisabledReports reports;
    ApiFixture api(health_options(reports, 0s, 3));
    std::atomic<int> requests{0};
    // Two failures, then a success, over and over: never three failures in a row.
    Receiver receiver([&](const ReceivedRequest&) { return Reply{.status = ++requests % 3 == 0 ? 200 : 500}; });
    const std::int64_t hook_id = api.create_hook(api.alice, receiver.url("/hook"));
    api.dispatcher->start();
    for (int i = 0; i < 3; ++i) {
        auto event = api.dispatcher->deliver_data(json::object{{"id", i}}, "package-created", {});
        REQUIRE(api.dispatcher->wait_stored());
        REQUIRE(eventually([&] { return api.store.deliveries_of_event(event.event_uuid).at(0).delivered(); }));
    }
    CHECK(requests == 9);
    const Hook hook = *api.store.find_hook(hook_id);
    CHECK(hook.is_active);
    CHECK(hook.failed_attempts == 0);
    CHECK_FALSE(hook.failing_since);
    CHECK(reports.size() == 0);
}

TEST_CASE("a hook is disabled only once the failure period has passed as well", "[health]")
{
    DisabledReports reports;
    auto options = health_options(reports, 3600s, 3);
    options.max_attempts = 5;
    ApiFixture api(options);
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 503}; });
    const std::int64_t hook_id = api.create_hook(api.alice, receiver.url("/hook"));
    api.dispatcher->start();
    auto event = api.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(api.dispatcher->wait_stored());
    REQUIRE(eventually([&] {
        return api.store.deliveries_of_event(event.event_uuid).at(0).state == DeliveryState::failed;
    }));
    const Hook hook = *api.store.find_hook(hook_id);
    CHECK(hook.is_active);
    CHECK(hook.failed_attempts == 5);
    CHECK(hook.failing_since.has_value());
    CHECK(reports.size() == 0);
}

TEST_CASE("endpoint health is off when disable_after_failures is zero", "[health]")
{
    DisabledReports reports;
    auto options = health_options(reports, 0s, 0);
    options.max_attempts = 4;
    ApiFixture api(options);
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 500}; });
    const std::int64_t hook_id = api.create_hook(api.alice, receiver.url("/hook"));
    api.dispatcher->start();
    auto event = api.dispatcher->deliver_data(json::object{{"id", 1}}, "package-created", {});
    REQUIRE(api.dispatcher->wait_stored());
    REQUIRE(eventually([&] {
        return api.store.deliveries_of_event(event.event_uuid).at(0).state == DeliveryState::failed;
    }));
    CHECK(api.store.find_hook(hook_id)->is_active);
    CHECK(reports.size() == 0);
}

TEST_CASE("the default endpoint health is 5 days without success and 10 failed attempts", "[health]")
{
    DispatcherOptions defaults;
    CHECK(defaults.disable_after == std::chrono::hours(5 * 24));
    CHECK(defaults.disable_after_failures == 10);
}
