// POST /hook_events/{id}/retry/ and GET /hook_events/{id}/: manual retries are rate-limited and a
// delivery's attempts are shown a page at a time, through the router on a real SQLite file.

#include "api_fixture.hpp"
#include "receiver.hpp"
#include "store_samples.hpp"

#include <algorithm>
#include <atomic>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;
namespace json = boost::json;
using boost::beast::http::field;
using boost::beast::http::status;
using boost::beast::http::verb;

namespace {

std::string retry_path(std::int64_t delivery_id)
{
    return "/whisperer/hook_events/" + std::to_string(delivery_id) + "/retry/";
}

std::string delivery_path(std::int64_t delivery_id, const std::string& query = {})
{
    return "/whisperer/hook_events/" + std::to_string(delivery_id) + "/" + query;
}

http::RouterOptions retry_limits(std::chrono::seconds interval, std::size_t per_owner)
{
    http::RouterOptions options;
    options.retry_interval = interval;
    options.retries_per_owner = per_owner;
    options.retry_window = 1h;
    return options;
}

/// Alice's and bob's hooks on one receiver, and a way to make delivered deliveries for them.
struct Deliveries {
    std::atomic<int> answer{200};
    Receiver receiver{[this](const ReceivedRequest&) { return Reply{.status = answer.load()}; }};
    ApiFixture api;
    std::int64_t alice_hook;
    std::int64_t bob_hook;

    explicit Deliveries(http::RouterOptions options)
        : api(quick_dispatcher_options(), {}, std::move(options)),
          alice_hook(api.create_hook(api.alice, receiver.url("/alice"))),
          bob_hook(api.create_hook(api.bob, receiver.url("/bob")))
    {
        api.dispatcher->start();
    }

    /// A new event's delivery to `hook`, once delivered.
    std::int64_t delivered(std::int64_t hook)
    {
        auto result = api.dispatcher->deliver_data(json::object{{"n", 1}}, "package-created", {});
        REQUIRE(api.dispatcher->wait_stored());
        std::int64_t id = 0;
        for (const Delivery& d : api.store.deliveries_of_event(result.event_uuid))
            if (d.hook_id == hook)
                id = d.id;
        REQUIRE(id != 0);
        // Both hooks' deliveries, so that no request is still on its way to the receiver.
        REQUIRE(eventually([&] {
            const auto all = api.store.deliveries_of_event(result.event_uuid);
            return std::all_of(all.begin(), all.end(), [](const Delivery& d) { return d.delivered(); });
        }));
        return id;
    }

    http::Response force_retry(const std::string& token, std::int64_t id)
    {
        return api.call(verb::post, retry_path(id), token, R"({"force": true})");
    }
};

/// Checks a 429: the code, and a Retry-After of whole seconds in (0, at_most].
void require_throttled(const http::Response& response, long long at_most)
{
    require_api_error(response, status::too_many_requests, "throttled");
    const std::string retry_after(response[field::retry_after]);
    INFO("Retry-After: " << retry_after);
    REQUIRE_FALSE(retry_after.empty());
    const long long seconds = std::stoll(retry_after);
    CHECK(seconds > 0);
    CHECK(seconds <= at_most);
}

} // namespace

TEST_CASE("manual retries of one delivery sooner than retry_interval are answered 429 with Retry-After and send "
          "nothing",
          "[retry_route][security]")
{
    CHECK(http::RouterOptions{}.retry_interval == 10s);
    Deliveries f(retry_limits(1h, 100));
    const std::int64_t id = f.delivered(f.alice_hook);
    const std::size_t sent = f.receiver.count();

    REQUIRE(f.force_retry(f.api.alice, id).result() == status::ok);
    for (int i = 0; i < 20; ++i)
        require_throttled(f.force_retry(f.api.alice, id), 3600);
    // The retry's attempt is recorded with the dispatcher's next batch of outcomes.
    REQUIRE(eventually([&] { return f.api.store.list_attempts(id, {}).stored == 2; }));
    CHECK(f.receiver.count() == sent + 1);

    // A retry the dispatcher refuses (delivered, no force) sends nothing and uses no turn.
    const std::int64_t other = f.delivered(f.alice_hook);
    require_api_error(f.api.call(verb::post, retry_path(other), f.api.alice, "{}"), status::not_acceptable,
                      "event_100_3");
    REQUIRE(f.force_retry(f.api.alice, other).result() == status::ok);
}

TEST_CASE("an owner's manual retries beyond retries_per_owner per window are answered 429; another owner's are not",
          "[retry_route][security]")
{
    Deliveries f(retry_limits(0s, 3));
    const std::int64_t alices = f.delivered(f.alice_hook);
    const std::int64_t bobs = f.delivered(f.bob_hook);
    for (int i = 0; i < 3; ++i)
        REQUIRE(f.force_retry(f.api.alice, alices).result() == status::ok);
    const std::int64_t another = f.delivered(f.alice_hook);
    require_throttled(f.force_retry(f.api.alice, another), 3600);
    require_throttled(f.force_retry(f.api.alice, alices), 3600);
    REQUIRE(eventually([&] { return f.api.store.list_attempts(alices, {}).stored == 4; }));
    CHECK(f.api.store.list_attempts(another, {}).stored == 1);
    REQUIRE(f.force_retry(f.api.bob, bobs).result() == status::ok);
}

TEST_CASE("a delivery's attempts are shown a page at a time, newest first, with how many are stored",
          "[retry_route][security]")
{
    Deliveries f(http::RouterOptions{});
    const std::int64_t id = f.delivered(f.alice_hook);
    for (unsigned number = 2; number <= 31; ++number)
        f.api.store.record_attempts(std::vector{attempt_report(id, "", number, AttemptVerdict::delivered, 200)});

    const json::value first = json_body(f.api.call(verb::get, delivery_path(id), f.api.alice));
    CHECK(first.at("retry_count").to_number<int>() == 31);
    CHECK(first.at("attempts_stored").to_number<int>() == 31);
    const json::array& newest = first.at("attempts").as_array();
    REQUIRE(newest.size() == 20);
    CHECK(newest.front().at("response_content").as_string() == "answer 31");
    REQUIRE(first.at("attempts_next").is_int64());

    std::size_t seen = newest.size();
    std::int64_t before = first.at("attempts_next").as_int64();
    std::size_t pages = 1;
    while (true) {
        const json::value page = json_body(f.api.call(
            verb::get, delivery_path(id, "?attempts_limit=4&attempts_before=" + std::to_string(before)), f.api.alice));
        seen += page.at("attempts").as_array().size();
        ++pages;
        if (page.at("attempts_next").is_null())
            break;
        before = page.at("attempts_next").as_int64();
    }
    CHECK(seen == 31);
    CHECK(pages == 4);

    for (const char* bad : {"?attempts_limit=0", "?attempts_limit=x", "?attempts_before=-1"}) {
        INFO(bad);
        CHECK(f.api.call(verb::get, delivery_path(id, bad), f.api.alice).result() == status::bad_request);
    }
    require_api_error(f.api.call(verb::get, delivery_path(id), f.api.bob), status::not_found, "event_100_1");
}
