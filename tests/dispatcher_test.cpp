// The dispatcher against real receivers on 127.0.0.1 and real SQLite files.

#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "temp_dir.hpp"

#include <whisperer/whisperer.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <set>
#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
using test::Receiver;
using test::ReceivedRequest;
using test::Reply;
namespace json = boost::json;

using whisperer::test::eventually;

namespace {

struct Package {
    int id;
    int transfer_id;
    std::string order_number;
};

void tag_invoke(json::value_from_tag, json::value& v, const Package& p)
{
    v = {{"id", p.id}, {"transfer_id", p.transfer_id}, {"order_number", p.order_number}};
}

class PackageCreateEvent : public WhispererEvent<Package> {
public:
    static constexpr std::string_view event_type = "package-created";
};

/// A timestamped event class whose envelope gets an extra key.
class StampedEvent : public JsonEvent {
public:
    static constexpr std::string_view event_type = "stamped";
    void customize_payload(json::object& envelope) const override { envelope["stamp"] = "yes"; }
};

json::object fixed_countdown(double seconds)
{
    return {{"choice", "fixed"}, {"kwargs", {{"seconds", seconds}}}};
}

/// A SQLite file, a registry, an io_context on two threads, and a way to make dispatchers.
struct Fixture {
    test::TempDir dir;
    std::string db = dir.file("whisperer.db");
    SqliteStore store{db};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;

    Fixture()
    {
        registry.register_event<PackageCreateEvent>();
        registry.register_event<StampedEvent>();
        registry.register_json_event("thing.happened");
        for (int i = 0; i < 2; ++i)
            threads.emplace_back([this] { io.run(); });
    }

    ~Fixture()
    {
        work.reset();
        io.stop();
        for (auto& t : threads)
            t.join();
    }

    static DispatcherOptions fast_options()
    {
        DispatcherOptions o;
        o.lease = 2s;
        o.idle_poll = 200ms;
        o.connect_timeout = 2s;
        o.request_timeout = 2s;
        // The receivers run on loopback, which the SSRF guard refuses unless opened.
        o.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).allow(Cidr::parse("::1")).as_filter();
        return o;
    }

    Hook hook(const std::string& url, const std::string& event_type = "package-created", const std::string& owner = "alice",
              json::object countdown = fixed_countdown(0.01))
    {
        Hook h;
        h.owner = owner;
        h.target_url = url;
        h.event_type = event_type;
        h.secret_key = "<secret>";
        h.retry_countdown_config = std::move(countdown);
        validate_hook(h, {.registry = &registry});
        return store.create_hook(h);
    }

    Delivery only_delivery(const std::string& uuid)
    {
        auto deliveries = store.deliveries_of_event(uuid);
        REQUIRE(deliveries.size() == 1);
        return *store.find_delivery(deliveries.front().id, true);
    }

    /// Starts `dispatcher`, delivers one event and checks that, once its first attempt failed,
    /// the next one is due between `earliest` after the call and `latest` after the attempt.
    void check_retried_within(Dispatcher& dispatcher, std::chrono::seconds earliest, std::chrono::seconds latest)
    {
        dispatcher.start();
        const TimePoint before = Clock::now();
        auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
        REQUIRE(eventually([&] {
            auto d = store.deliveries_of_event(result.event_uuid);
            return !d.empty() && d.front().attempt_count == 1;
        }));
        Delivery d = only_delivery(result.event_uuid);
        CHECK(d.state == DeliveryState::pending);
        REQUIRE(d.next_attempt_at);
        CHECK(*d.next_attempt_at >= before + earliest);
        CHECK(*d.next_attempt_at <= Clock::now() + latest);
    }

    bool delivery_state_is(const std::string& uuid, DeliveryState state)
    {
        auto deliveries = store.deliveries_of_event(uuid);
        return !deliveries.empty() && deliveries.front().state == state;
    }
};

} // namespace

TEST_CASE("a delivery carries the exact envelope, headers and both signatures", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url("/hooks/in"));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();

    auto result = dispatcher.deliver_event(Package{61, 49, "248398923123"}, "package-created");
    REQUIRE(result.hook_count == 1);
    REQUIRE(is_event_uuid(result.event_uuid));
    REQUIRE(receiver.wait_for(1));
    ReceivedRequest r = receiver.requests().front();

    CHECK(r.method == "POST");
    CHECK(r.target == "/hooks/in");
    CHECK(r.body == R"({"event":{"type":"package-created","uuid":")" + result.event_uuid +
                        R"("},"data":{"id":61,"transfer_id":49,"order_number":"248398923123"}})");
    CHECK(r.header("content-type") == "application/json");
    CHECK(r.header("x-whisperer-event") == "package-created");
    CHECK(r.header("user-agent") == "whisperer/0.1.0");
    CHECK(r.header("x-whisperer-signature") == whisperer_signature("<secret>", r.body));
    CHECK(r.header("webhook-id") == result.event_uuid);
    std::int64_t timestamp = std::stoll(r.header("webhook-timestamp"));
    CHECK(std::abs(timestamp - std::chrono::duration_cast<std::chrono::seconds>(
                                   Clock::now().time_since_epoch()).count()) < 60);
    CHECK(r.header("webhook-signature") == standard_signature("<secret>", result.event_uuid, timestamp, r.body));

    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::delivered); }));
    Delivery d = f.only_delivery(result.event_uuid);
    CHECK(d.request_body == r.body);
    CHECK(d.response_status == 200);
    CHECK(d.attempt_count == 1);
    REQUIRE(d.attempts.size() == 1);
    CHECK(d.attempts.front().succeeded());
    CHECK(dispatcher.counters().delivered >= 1);
}

TEST_CASE("the payload key can be switched to the original's 'payload'", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url(), "thing.happened");
    auto options = Fixture::fast_options();
    options.data_key = DataKey::payload;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    dispatcher.start();
    auto result = dispatcher.deliver_event(json::object{{"k", 1}}, "thing.happened");
    REQUIRE(receiver.wait_for(1));
    CHECK(receiver.requests().front().body ==
          R"({"event":{"type":"thing.happened","uuid":")" + result.event_uuid + R"("},"payload":{"k":1}})");
}

TEST_CASE("customize_payload changes the envelope of a new event", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url(), "stamped");
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    dispatcher.deliver_event(json::value(json::object{{"a", 1}}), "stamped");
    REQUIRE(receiver.wait_for(1));
    auto body = json::parse(receiver.requests().front().body).as_object();
    CHECK(body.at("stamp") == "yes");
    CHECK(body.at("data").as_object().at("a") == 1);
}

TEST_CASE("bad calls to deliver_event fail clearly and write nothing", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    auto options = Fixture::fast_options();
    options.max_payload_bytes = 200;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);

    CHECK_THROWS_AS(dispatcher.deliver_event(json::object{}, "no-such-type"), UnknownEventType);
    CHECK_THROWS_AS(dispatcher.deliver_event(42, "package-created"), ImproperlyConfigured);
    try {
        dispatcher.deliver_event(Package{1, 2, std::string(300, 'x')}, "package-created");
        FAIL("a payload over the limit was accepted");
    } catch (const Error& e) {
        CHECK(e.code() == errc::payload_too_large);
    }
    CHECK(f.store.list_outbox({}).items.empty());
    CHECK(f.store.list_deliveries({}).items.empty());
}

TEST_CASE("whisperer::deliver_event needs a default dispatcher", "[dispatcher]")
{
    Fixture f;
    set_default_dispatcher(nullptr);
    try {
        whisperer::deliver_event(json::object{}, "thing.happened");
        FAIL("no error without a default dispatcher");
    } catch (const Error& e) {
        CHECK(e.code() == errc::no_default_dispatcher);
    }
    Receiver receiver;
    f.hook(receiver.url(), "thing.happened");
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    set_default_dispatcher(&dispatcher);
    auto result = whisperer::deliver_event(json::object{{"x", 1}}, "thing.happened");
    set_default_dispatcher(nullptr);
    CHECK(result.hook_count == 1);
    CHECK(receiver.wait_for(1));
}

TEST_CASE("a receiver that fails twice gets the event on the third attempt", "[dispatcher]")
{
    Fixture f;
    std::atomic<int> calls{0};
    Receiver receiver([&](const ReceivedRequest&) {
        Reply reply;
        reply.status = ++calls <= 2 ? 500 : 200;
        reply.body = reply.status == 500 ? "boom" : "ok";
        return reply;
    });
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");

    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::delivered); }));
    Delivery d = f.only_delivery(result.event_uuid);
    CHECK(d.attempt_count == 3);
    REQUIRE(d.attempts.size() == 3);
    CHECK(d.attempts[0].number == 3); // newest first
    CHECK(d.attempts[2].failure == FailureClass::http_status);
    CHECK(d.attempts[2].response_status == 500);
    CHECK(d.attempts[2].response_body == "boom");
    // Every attempt carries the same webhook-id.
    std::set<std::string> ids;
    for (const auto& r : receiver.requests())
        ids.insert(r.header("webhook-id"));
    CHECK(ids == std::set<std::string>{result.event_uuid});
    CHECK(dispatcher.counters().retried == 2);
}

TEST_CASE("a delivery ends as failed, visibly, after the maximum number of attempts", "[dispatcher]")
{
    Fixture f;
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 503}; });
    f.hook(receiver.url());
    auto options = Fixture::fast_options();
    options.max_attempts = 3;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::failed); }));
    Delivery d = f.only_delivery(result.event_uuid);
    CHECK(d.attempt_count == 3);
    CHECK(d.last_failure == FailureClass::http_status);
    CHECK(d.response_status == 503);
    CHECK(f.store.list_outbox({}).items.empty());
    CHECK(receiver.count() == 3);
    CHECK(dispatcher.counters().failed == 1);
}

TEST_CASE("Retry-After on 429 postpones the next attempt beyond the countdown", "[dispatcher]")
{
    Fixture f;
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 429, .headers = {{"Retry-After", "120"}}}; });
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    f.check_retried_within(dispatcher, 119s, 121s);
}

TEST_CASE("Retry-After is honoured only up to max_retry_after", "[dispatcher]")
{
    Fixture f;
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 503, .headers = {{"Retry-After", "86400"}}}; });
    f.hook(receiver.url());
    auto options = Fixture::fast_options();
    options.max_retry_after = 30s;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    f.check_retried_within(dispatcher, 30s, 30s);
}

TEST_CASE("a countdown longer than Retry-After sets the next attempt", "[dispatcher]")
{
    Fixture f;
    Receiver receiver([](const ReceivedRequest&) { return Reply{.status = 429, .headers = {{"Retry-After", "2"}}}; });
    f.hook(receiver.url(), "package-created", "alice", fixed_countdown(600));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    f.check_retried_within(dispatcher, 600s, 600s);
    CHECK(receiver.count() == 1);
}

TEST_CASE("basic auth from the hook's config is sent", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    Hook h;
    h.owner = "alice";
    h.target_url = receiver.url();
    h.event_type = "thing.happened";
    h.retry_countdown_config = fixed_countdown(1);
    h.config = {{"auth", {{"auth_type", "basic"}, {"username", "user"}, {"password", "pass"}}}};
    validate_hook(h);
    f.store.create_hook(h);
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    dispatcher.deliver_event(json::object{}, "thing.happened");
    REQUIRE(receiver.wait_for(1));
    CHECK(receiver.requests().front().header("authorization") == "Basic dXNlcjpwYXNz");
    CHECK(receiver.requests().front().header("x-whisperer-signature").empty());
}

TEST_CASE("token auth logs in, caches the token and logs in again after a 401", "[dispatcher]")
{
    Fixture f;
    std::atomic<int> logins{0};
    std::atomic<int> deliveries{0};
    Receiver receiver([&](const ReceivedRequest& r) {
        if (r.target == "/login") {
            int n = ++logins;
            CHECK(r.body == "user=bob&pass=s%26cret");
            return Reply{.status = 200, .body = R"({"access":"tok)" + std::to_string(n) + R"("})"};
        }
        ++deliveries;
        // The first token is revoked after one use.
        if (r.header("authorization") == "Bearer tok1" && deliveries > 1)
            return Reply{.status = 401};
        return Reply{.status = 200};
    });
    Hook h;
    h.owner = "alice";
    h.target_url = receiver.url("/hook");
    h.event_type = "thing.happened";
    h.retry_countdown_config = fixed_countdown(0.01);
    h.config = {{"auth",
                 {{"auth_type", "token"},
                  {"url", receiver.url("/login")},
                  {"username", "bob"},
                  {"password", "s&cret"},
                  {"username_field", "user"},
                  {"password_field", "pass"},
                  {"token_key", "access"},
                  {"header_format", "Bearer {}"}}}};
    validate_hook(h);
    f.store.create_hook(h);
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();

    auto first = dispatcher.deliver_event(json::object{}, "thing.happened");
    REQUIRE(eventually([&] { return f.delivery_state_is(first.event_uuid, DeliveryState::delivered); }));
    auto second = dispatcher.deliver_event(json::object{}, "thing.happened");
    REQUIRE(eventually([&] { return f.delivery_state_is(second.event_uuid, DeliveryState::delivered); }));
    CHECK(logins == 2);
    auto last = receiver.requests().back();
    CHECK(last.header("authorization") == "Bearer tok2");
    CHECK(f.only_delivery(second.event_uuid).attempt_count == 2);
}

TEST_CASE("additional headers are sent but never replace reserved ones", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    Hook h = f.hook(receiver.url());
    // Validation refuses reserved names; a row written around it still cannot override them.
    h.additional_headers = {{"X-Tenant", "acme"}, {"X-Whisperer-Signature", "forged"}, {"Content-Type", "text/plain"}};
    f.store.update_hook(h);
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    REQUIRE(receiver.wait_for(1));
    auto r = receiver.requests().front();
    CHECK(r.header("x-tenant") == "acme");
    CHECK(r.header("x-whisperer-signature") == whisperer_signature("<secret>", r.body));
    CHECK(r.header("content-type") == "application/json");
}

TEST_CASE("an event fans out to every active hook of its type and only those", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    constexpr int hooks = 40;
    for (int i = 0; i < hooks; ++i)
        f.hook(receiver.url("/h" + std::to_string(i)));
    Hook inactive = f.hook(receiver.url("/inactive"));
    f.store.deactivate_hook(inactive.id);
    f.hook(receiver.url("/other"), "thing.happened");
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    CHECK(result.hook_count == hooks);
    REQUIRE(receiver.wait_for(hooks));
    std::set<std::string> targets;
    for (const auto& r : receiver.requests())
        targets.insert(r.target);
    CHECK(targets.size() == hooks);
    CHECK_FALSE(targets.contains("/inactive"));
    CHECK_FALSE(targets.contains("/other"));
}

TEST_CASE("config_filter keeps only hooks whose config matches", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    for (auto [path, tenant] : {std::pair{"/a", "acme"}, {"/b", "globex"}, {"/c", "acme"}}) {
        Hook h;
        h.owner = "alice";
        h.target_url = receiver.url(path);
        h.event_type = "thing.happened";
        h.retry_countdown_config = fixed_countdown(1);
        h.config = {{"tenant", tenant}};
        f.store.create_hook(h);
    }
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    DeliverOptions options;
    options.config_filter = {{"tenant", "acme"}};
    auto result = dispatcher.deliver_event(json::object{}, "thing.happened", options);
    CHECK(result.hook_count == 2);
    REQUIRE(receiver.wait_for(2));
    std::set<std::string> targets;
    for (const auto& r : receiver.requests())
        targets.insert(r.target);
    CHECK(targets == std::set<std::string>{"/a", "/c"});
}

TEST_CASE("an owner filter keeps another owner's hooks out even when their config copies the tenant's",
          "[dispatcher][security]")
{
    Fixture f;
    Receiver acme;
    Receiver intruder;
    // Both subscribers write config {"tenant": "acme"}; only one of them is acme's.
    for (auto [receiver, owner] : {std::pair{&acme, "acme-owner"}, {&intruder, "mallory"}}) {
        Hook h;
        h.owner = owner;
        h.target_url = receiver->url("/hook");
        h.event_type = "thing.happened";
        h.retry_countdown_config = fixed_countdown(1);
        h.config = {{"tenant", "acme"}};
        f.store.create_hook(h);
    }
    CHECK(f.store.subscriber_ids("thing.happened", {{"tenant", "acme"}}).size() == 2);
    CHECK(f.store.subscriber_ids("thing.happened", {}, {"acme-owner"}).size() == 1);
    CHECK(f.store.active_hooks("thing.happened", {{"tenant", "acme"}}, {"acme-owner"}).at(0).owner == "acme-owner");
    CHECK(f.store.active_hooks("thing.happened", {}, {"nobody"}).empty());

    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    // Through the journal (hooks chosen from the subscriber cache), through the store (hooks
    // chosen in the write) and in the caller (sync): each way keeps the filter.
    for (int way = 0; way < 3; ++way) {
        INFO("way " << way);
        DeliverOptions options;
        options.config_filter = {{"tenant", "acme"}};
        options.owners = {"acme-owner"};
        options.wait_stored = way == 1;
        options.sync = way == 2;
        auto result = dispatcher.deliver_event(json::object{{"n", way}}, "thing.happened", options);
        CHECK(result.hook_count == 1);
        REQUIRE(acme.wait_for(static_cast<std::size_t>(way) + 1));
    }
    REQUIRE(dispatcher.wait_stored());
    // A last event for everyone proves the intruder's receiver works and is reached only then.
    DeliverOptions everyone;
    everyone.config_filter = {{"tenant", "acme"}};
    CHECK(dispatcher.deliver_event(json::object{{"n", 3}}, "thing.happened", everyone).hook_count == 2);
    REQUIRE(intruder.wait_for(1));
    REQUIRE(acme.wait_for(4));
    CHECK(intruder.requests().size() == 1);
    CHECK(json::parse(intruder.requests().front().body).at("data").at("n") == 3);
}

TEST_CASE("sync mode delivers in the caller and returns each hook's attempt", "[dispatcher]")
{
    Fixture f;
    Receiver ok;
    Receiver failing([](const ReceivedRequest&) { return Reply{.status = 500}; });
    Hook good = f.hook(ok.url());
    Hook bad = f.hook(failing.url(), "package-created", "alice", fixed_countdown(3600));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options()); // not started
    DeliverOptions options;
    options.sync = true;
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created", options);
    REQUIRE(result.results.size() == 2);
    for (const HookResult& r : result.results) {
        if (r.hook_id == good.id) {
            CHECK(r.attempt.succeeded());
            CHECK(r.attempt.response_status == 200);
        } else {
            CHECK(r.hook_id == bad.id);
            CHECK(r.attempt.failure == FailureClass::http_status);
            CHECK(r.attempt.response_status == 500);
        }
    }
    CHECK(ok.count() == 1);
    // The outcomes are recorded: the good one delivered, the bad one waiting for its countdown.
    for (const Delivery& d : f.store.deliveries_of_event(result.event_uuid)) {
        CHECK(d.attempt_count == 1);
        if (d.hook_id == good.id)
            CHECK(d.state == DeliveryState::delivered);
        else
            CHECK((d.state == DeliveryState::pending && d.next_attempt_at > Clock::now() + 3000s));
    }
}

TEST_CASE("re-sending by event uuid needs force once delivered or while retrying", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::delivered); }));

    DeliverOptions resend;
    resend.event_uuid = result.event_uuid;
    CHECK_THROWS_AS(dispatcher.deliver_event(json::value(), "package-created", resend), EventAlreadyDelivered);
    resend.force = true;
    auto again = dispatcher.deliver_event(json::value(), "package-created", resend);
    CHECK(again.event_uuid == result.event_uuid);
    REQUIRE(receiver.wait_for(2));
    CHECK(receiver.requests()[1].body == receiver.requests()[0].body);

    DeliverOptions missing;
    missing.event_uuid = new_event_uuid();
    CHECK_THROWS_AS(dispatcher.deliver_event(json::value(), "package-created", missing), WebhookEventDoesNotExist);
}

TEST_CASE("a delivery still retrying is re-sent only with force", "[dispatcher]")
{
    Fixture f;
    std::atomic<int> calls{0};
    Receiver receiver([&](const ReceivedRequest&) { return Reply{.status = ++calls == 1 ? 500 : 200}; });
    f.hook(receiver.url(), "package-created", "alice", fixed_countdown(3600));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    REQUIRE(eventually([&] {
        auto d = f.store.deliveries_of_event(result.event_uuid);
        return !d.empty() && d.front().attempt_count == 1;
    }));
    std::int64_t id = f.store.deliveries_of_event(result.event_uuid).front().id;
    CHECK_THROWS_AS(dispatcher.retry_delivery(id), EventStillRetrying);
    HookResult retried = dispatcher.retry_delivery(id, true);
    CHECK(retried.attempt.succeeded());
    CHECK(retried.attempt.trigger == AttemptTrigger::manual);
    CHECK(f.store.find_delivery(id)->state == DeliveryState::delivered);
    CHECK_THROWS_AS(dispatcher.retry_delivery(id), EventAlreadyDelivered);
}

TEST_CASE("an idempotency key creates the event once", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    DeliverOptions options;
    options.idempotency_key = "order-248398923123";
    auto first = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created", options);
    auto second = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created", options);
    CHECK_FALSE(first.duplicate);
    CHECK(second.duplicate);
    CHECK(second.event_uuid == first.event_uuid);
    CHECK(f.store.list_deliveries({}).items.size() == 1);
}

TEST_CASE("callbacks see every attempt and a throwing one does not affect delivery", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    std::mutex m;
    std::vector<std::string> seen;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.register_callback("record", [&](const AttemptReport& report) {
        std::lock_guard lock(m);
        seen.push_back(std::string(report.event_type) + ":" + std::to_string(report.attempt.response_status) + ":" +
                       json::serialize(report.instance));
        throw std::runtime_error("callbacks may throw");
    });
    Hook h;
    h.owner = "alice";
    h.target_url = receiver.url();
    h.event_type = "package-created";
    h.callback = "record";
    h.retry_countdown_config = fixed_countdown(1);
    validate_hook(h, {.registry = &f.registry, .callbacks = &dispatcher.callback_names()});
    h.callback = "nope";
    CHECK_THROWS_AS(validate_hook(h, {.registry = &f.registry, .callbacks = &dispatcher.callback_names()}),
                    ValidationError);
    h.callback = "record";
    f.store.create_hook(h);
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{7, 8, "9"}, "package-created");
    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::delivered); }));
    REQUIRE(eventually([&] {
        std::lock_guard lock(m);
        return !seen.empty();
    }));
    std::lock_guard lock(m);
    CHECK(seen.front() == R"(package-created:200:{"id":7,"transfer_id":8,"order_number":"9"})");
}

TEST_CASE("events from several threads at once are all delivered", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    constexpr int threads = 4, per_thread = 100;
    std::vector<std::thread> publishers;
    std::mutex m;
    std::set<std::string> uuids;
    for (int t = 0; t < threads; ++t)
        publishers.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = dispatcher.deliver_event(Package{t, i, "x"}, "package-created");
                std::lock_guard lock(m);
                uuids.insert(r.event_uuid);
            }
        });
    for (auto& p : publishers)
        p.join();
    CHECK(uuids.size() == threads * per_thread);
    REQUIRE(receiver.wait_for(threads * per_thread, 30s));
    std::set<std::string> received;
    for (const auto& r : receiver.requests())
        received.insert(r.header("webhook-id"));
    CHECK(received == uuids);
}

TEST_CASE("async_deliver_event completes once the event is durable", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    std::future<DeliverResult> done =
        dispatcher.async_deliver_event(Package{1, 2, "3"}, "package-created", {}, boost::asio::use_future);
    DeliverResult result = done.get();
    CHECK(result.hook_count == 1);
    REQUIRE(dispatcher.wait_stored());
    CHECK(f.store.deliveries_of_event(result.event_uuid).size() == 1);
    CHECK(receiver.wait_for(1));

    auto failed = dispatcher.async_deliver_event(Package{1, 2, "3"}, "unknown-type", {}, boost::asio::use_future);
    CHECK_THROWS(failed.get());
}

TEST_CASE("an io_context's run() returns only after a pending async_deliver_event has completed", "[dispatcher]")
{
    Fixture f;
    f.hook("http://127.0.0.1:9/");
    // An executor no thread runs yet: its run() below must wait for the commit on the store's
    // threads (an idempotency key always commits before completing) instead of returning at once.
    boost::asio::io_context host;
    Dispatcher dispatcher(host.get_executor(), f.registry, f.store, Fixture::fast_options());
    DeliverOptions options;
    options.idempotency_key = "order-1";
    int completions = 0;
    DeliverResult result;
    dispatcher.async_deliver_event(Package{1, 2, "3"}, "package-created", options,
                                   [&](boost::system::error_code ec, DeliverResult r) {
                                       CHECK_FALSE(ec);
                                       result = std::move(r);
                                       ++completions;
                                   });
    host.run();
    CHECK(completions == 1);
    CHECK(result.hook_count == 1);
    CHECK(f.store.deliveries_of_event(result.event_uuid).size() == 1);
}

TEST_CASE("deliveries in flight when a dispatcher goes away are delivered by the next one", "[dispatcher]")
{
    Fixture f;
    std::atomic<bool> stalling{true};
    Receiver receiver([&](const ReceivedRequest&) {
        return stalling ? Reply{.action = Reply::Action::stall} : Reply{.status = 200};
    });
    f.hook(receiver.url());
    std::string uuid;
    {
        auto options = Fixture::fast_options();
        options.lease = 1s;
        options.request_timeout = 60s;
        Dispatcher first(f.io.get_executor(), f.registry, f.store, options);
        first.start();
        uuid = first.deliver_event(Package{1, 2, "3"}, "package-created").event_uuid;
        REQUIRE(receiver.wait_for(1));
        first.stop(100ms); // Cuts the stalled request: not an attempt, the lease is released.
    }
    CHECK(f.delivery_state_is(uuid, DeliveryState::pending));
    CHECK(f.store.list_outbox({}).items.size() == 1);

    stalling = false;
    SqliteStore reopened(f.db);
    Dispatcher second(f.io.get_executor(), f.registry, reopened, Fixture::fast_options());
    second.start();
    REQUIRE(eventually([&] { return f.delivery_state_is(uuid, DeliveryState::delivered); }));
    CHECK(receiver.count() >= 2);
}

TEST_CASE("a lease left by a crashed dispatcher is taken over once it runs out", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    Hook hook = f.hook(receiver.url());
    // A dispatcher that claimed and then vanished without a trace: only its lease remains.
    NewEvent ev;
    ev.uuid = new_event_uuid();
    ev.event_type = "package-created";
    ev.body = R"({"event":{"type":"package-created","uuid":")" + ev.uuid + R"("},"data":{}})";
    ev.created = ev.due = Clock::now();
    f.store.enqueue_events(std::span(&ev, 1));
    auto claimed = f.store.claim_due({.worker = "crashed", .now = Clock::now(), .lease = 500ms, .limit = 10});
    REQUIRE(claimed.size() == 1);
    CHECK(claimed.front().hook.id == hook.id);

    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    dispatcher.start();
    REQUIRE(eventually([&] { return f.delivery_state_is(ev.uuid, DeliveryState::delivered); }));
    CHECK(receiver.requests().front().body == ev.body);
}

TEST_CASE("stop leaves undelivered events in the store for the next start", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    f.hook(receiver.url());
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, Fixture::fast_options());
    // Never started: events are durable all the same.
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    dispatcher.stop();
    CHECK(f.store.list_outbox({}).items.size() == 1);
    CHECK(receiver.count() == 0);
    dispatcher.start();
    REQUIRE(eventually([&] { return f.delivery_state_is(result.event_uuid, DeliveryState::delivered); }));
}

TEST_CASE("HTTPS receivers are verified against the configured CA", "[dispatcher]")
{
    Fixture f;
    test::TestCa ca(f.dir.path().string());
    test::TlsFiles trusted = ca.issue("localhost");
    test::TlsFiles untrusted = ca.issue("localhost", true);
    Receiver good({}, &trusted);
    Receiver bad({}, &untrusted);
    auto options = Fixture::fast_options();
    options.ca_file = ca.ca_file();
    options.max_attempts = 1;
    f.hook(good.url("/", "localhost"));
    f.hook(bad.url("/", "localhost"));
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    dispatcher.start();
    auto result = dispatcher.deliver_event(Package{1, 2, "3"}, "package-created");
    REQUIRE(good.wait_for(1));
    CHECK(good.requests().front().header("x-whisperer-signature") ==
          whisperer_signature("<secret>", good.requests().front().body));
    REQUIRE(eventually([&] {
        for (const Delivery& d : f.store.deliveries_of_event(result.event_uuid))
            if (d.state == DeliveryState::pending)
                return false;
        return true;
    }));
    for (const Delivery& d : f.store.deliveries_of_event(result.event_uuid)) {
        if (d.state == DeliveryState::failed)
            CHECK(d.last_failure == FailureClass::tls);
        else
            CHECK(d.state == DeliveryState::delivered);
    }
    CHECK(bad.count() == 0);
}

TEST_CASE("old finished deliveries are deleted by retention, pending ones never", "[dispatcher]")
{
    Fixture f;
    Receiver receiver;
    Hook hook = f.hook(receiver.url());
    TimePoint long_ago = Clock::now() - 24h;
    std::vector<NewEvent> events(2);
    for (NewEvent& ev : events) {
        ev.uuid = new_event_uuid();
        ev.event_type = "package-created";
        ev.body = "{}";
        ev.created = long_ago;
        ev.due = Clock::now() + 1000h; // the second stays pending
    }
    auto written = f.store.enqueue_events(events);
    AttemptRecord done;
    done.delivery_id = written[0].delivery_ids.at(0);
    done.worker = "w";
    done.attempt.number = 1;
    done.verdict = AttemptVerdict::delivered;
    f.store.record_attempts(std::span(&done, 1));

    auto options = Fixture::fast_options();
    options.retention = 1h;
    Dispatcher dispatcher(f.io.get_executor(), f.registry, f.store, options);
    dispatcher.start();
    REQUIRE(eventually([&] { return !f.store.find_delivery(written[0].delivery_ids.at(0)); }));
    CHECK(f.store.find_delivery(written[1].delivery_ids.at(0)).has_value());
    CHECK(f.store.find_hook(hook.id).has_value());
}
