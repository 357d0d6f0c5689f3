// PostgresStore beyond the conformance suite: several stores on one database acting as several
// machines, events committed by SQL inside a host's transaction, migrations raced, a server
// restart under the store, connections cut mid-claim and mid-record, and a dispatcher woken by
// another process's commit.

#include <whisperer/dispatcher.hpp>
#include <whisperer/envelope.hpp>
#include <whisperer/error.hpp>
#include <whisperer/postgres_store.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/secret_rotation.hpp>

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include "catch.hpp"
#include "postgres_server.hpp"
#include "receiver.hpp"
#include "store_samples.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <set>
#include <thread>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

/// A schema of the test's own in the test server's database, dropped at the end.
struct Schema {
    std::string uri = postgres_uri();
    std::string name = unique_postgres_schema();

    ~Schema()
    {
        try {
            detail::PostgresConnection conn{uri};
            conn.session().query("DROP SCHEMA IF EXISTS " + detail::quote_postgres_identifier(name) + " CASCADE");
        } catch (...) {
        }
    }

    PostgresOptions options() const { return PostgresOptions{.schema = name}; }

    /// Runs `sql` on a connection of its own, as a host's code would.
    detail::PostgresResult sql(const std::string& statement,
                               const std::vector<std::optional<std::string>>& params = {}) const
    {
        detail::PostgresConnection conn{uri};
        return conn.session().query(statement, params);
    }
};

std::vector<std::int64_t> ids_of(const std::vector<ClaimedDelivery>& claimed)
{
    std::vector<std::int64_t> ids;
    for (const ClaimedDelivery& d : claimed)
        ids.push_back(d.delivery_id);
    std::sort(ids.begin(), ids.end());
    return ids;
}

std::vector<std::int64_t> enqueue(SubscriptionStore& store, int n, const std::string& type = "package-created")
{
    std::vector<NewEvent> events;
    for (int i = 0; i < n; ++i)
        events.push_back(sample_event(type, t0));
    std::vector<std::int64_t> ids;
    for (const EnqueuedEvent& e : store.enqueue_events(events))
        ids.insert(ids.end(), e.delivery_ids.begin(), e.delivery_ids.end());
    std::sort(ids.begin(), ids.end());
    return ids;
}

} // namespace

TEST_CASE("a hook change through one store is seen by another store's next call", "[postgres][store]")
{
    Schema schema;
    PostgresStore first{schema.uri, schema.options()};
    PostgresStore second{schema.uri, schema.options()};
    CHECK(second.subscriber_ids("package-created").empty()); // Cached now.

    const Hook hook = first.create_hook(sample_hook("alice", "https://a.example/"));
    CHECK(second.subscriber_ids("package-created") == std::vector<std::int64_t>{hook.id});
    // An event enqueued through the second store without chosen hooks goes to the new hook.
    std::vector<NewEvent> events{sample_event()};
    CHECK(second.enqueue_events(events).front().delivery_ids.size() == 1);

    Hook moved = hook;
    moved.owner = "bob";
    first.update_hook(moved);
    CHECK(second.subscriber_ids("package-created", {}, {"alice"}).empty());
    CHECK(second.subscriber_ids("package-created", {}, {"bob"}) == std::vector<std::int64_t>{hook.id});

    first.deactivate_hook(hook.id);
    CHECK(second.subscriber_ids("package-created").empty());
    CHECK(second.enqueue_events(std::vector<NewEvent>{sample_event()}).front().delivery_ids.empty());
}

TEST_CASE("a token revoked through one store is refused by the other's next lookup", "[postgres][store]")
{
    Schema schema;
    PostgresStore first{schema.uri, schema.options()};
    PostgresStore second{schema.uri, schema.options()};
    const std::int64_t id = first.add_token("aa11", ApiToken{.owner = "alice", .created = t0});
    REQUIRE(second.find_token("aa11"));
    CHECK(second.find_token("aa11")->id == id);
    CHECK(first.revoke_token(id));
    CHECK_FALSE(second.find_token("aa11"));
}

TEST_CASE("a lease taken through one store is not taken through another until it expires", "[postgres][store]")
{
    Schema schema;
    PostgresStore first{schema.uri, schema.options()};
    PostgresStore second{schema.uri, schema.options()};
    first.create_hook(sample_hook("alice", "https://a.example/"));
    const std::vector<std::int64_t> ids = enqueue(first, 5);

    CHECK(ids_of(first.claim_due(claim_by("first", t0 + 1s))) == ids);
    CHECK(second.claim_due(claim_by("second", t0 + 1s)).empty());
    CHECK(second.claim_due(claim_by("second", t0 + 10s)).empty()); // Expires at t0 + 11 s.
    const auto taken_over = second.claim_due(claim_by("second", t0 + 12s));
    CHECK(ids_of(taken_over) == ids);

    // The first worker lost its lease: its verdict is recorded as an attempt only.
    first.record_attempts(std::vector{attempt_report(ids[0], "first", 1, AttemptVerdict::failed, 500)});
    auto delivery = first.find_delivery(ids[0], true);
    REQUIRE(delivery);
    CHECK(delivery->state == DeliveryState::pending);
    CHECK(delivery->attempts.size() == 1);
    // The second worker's applies.
    second.record_attempts(std::vector{attempt_report(ids[0], "second", 2, AttemptVerdict::delivered, 200)});
    CHECK(first.find_delivery(ids[0])->state == DeliveryState::delivered);
}

TEST_CASE("stores claiming together from one outbox never take the same row", "[postgres][store]")
{
    Schema schema;
    PostgresStore setup{schema.uri, schema.options()};
    for (int h = 0; h < 4; ++h)
        setup.create_hook(sample_hook("owner-" + std::to_string(h), "https://a.example/" + std::to_string(h)));
    const std::vector<std::int64_t> ids = enqueue(setup, 150); // 600 deliveries.

    std::vector<std::vector<std::int64_t>> taken(3);
    std::vector<std::thread> workers;
    for (int w = 0; w < 3; ++w)
        workers.emplace_back([&, w] {
            PostgresStore store{schema.uri, schema.options()};
            ClaimRequest request = claim_by("worker-" + std::to_string(w), t0 + 1s, 16);
            request.min_share = 4;
            for (;;) {
                auto claimed = store.claim_due(request);
                if (claimed.empty())
                    break;
                for (const ClaimedDelivery& d : claimed)
                    taken[static_cast<std::size_t>(w)].push_back(d.delivery_id);
            }
        });
    for (auto& t : workers)
        t.join();
    std::vector<std::int64_t> all;
    for (const auto& mine : taken)
        all.insert(all.end(), mine.begin(), mine.end());
    std::sort(all.begin(), all.end());
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end()); // No row twice.
    CHECK(all == ids);                                              // Every row once.
}

TEST_CASE("an event committed by SQL in a host's transaction is delivered with its exact body, a rolled back one never",
          "[postgres][store]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::string quoted = detail::quote_postgres_identifier(schema.name);
    const std::string call = "SELECT " + quoted + ".deliver_event($1, $2::json, $3)";

    detail::PostgresConnection host{schema.uri};
    auto session = host.session();
    session.query("CREATE TABLE " + quoted + ".orders (id integer)");
    // Rolled back with the host's own write: nothing to send.
    session.query("BEGIN");
    session.query("INSERT INTO " + quoted + ".orders VALUES (1)");
    session.query(call, {"package-created", R"({"rolled": "back"})", std::nullopt});
    session.query("ROLLBACK");
    CHECK(store.claim_due(claim_by("w", Clock::now() + 1s)).empty());
    CHECK_FALSE(store.next_due());

    // Committed with it: the data's text as given, key order and spaces kept.
    const std::string data = R"({"z": 1,  "a":[1, 2], "text":"caf\u00e9"})";
    session.query("BEGIN");
    session.query("INSERT INTO " + quoted + ".orders VALUES (2)");
    const std::string uuid{session.query(call, {"package-created", data, "order-2"}).text(0, 0)};
    session.query("COMMIT");
    CHECK(uuid.size() == 32);
    CHECK(uuid[12] == '7');
    CHECK(store.next_due());

    const auto claimed = store.claim_due(claim_by("w", Clock::now() + 1s));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].hook.id == hook.id);
    CHECK(claimed[0].event_uuid == uuid);
    CHECK(claimed[0].body == R"({"event":{"type":"package-created","uuid":")" + uuid + R"("},"data":)" + data + "}");

    // The same idempotency key again: the first event's uuid, and nothing more to send.
    CHECK(session.query(call, {"package-created", R"({"again": true})", "order-2"}).text(0, 0) == uuid);
    CHECK(store.deliveries_of_event(uuid).size() == 1);
    CHECK(store.claim_due(claim_by("w", Clock::now() + 1s)).empty());
    // A missing event type is refused, naming the function.
    CHECK_THROWS_WITH(session.query(call, {"", "{}", std::nullopt}), Catch::Contains("deliver_event needs an event type"));
}

TEST_CASE("stores opening a new schema together create it once", "[postgres][store]")
{
    Schema schema;
    std::atomic<int> opened{0};
    std::vector<std::string> failures(6);
    std::vector<std::thread> threads;
    for (int i = 0; i < 6; ++i)
        threads.emplace_back([&, i] {
            try {
                PostgresStore store{schema.uri, schema.options()};
                store.create_hook(sample_hook("owner-" + std::to_string(i), "https://a.example/"));
                ++opened;
            } catch (const std::exception& e) {
                failures[static_cast<std::size_t>(i)] = e.what();
            }
        });
    for (auto& t : threads)
        t.join();
    for (const std::string& failure : failures)
        CHECK(failure.empty());
    CHECK(opened == 6);
    const std::string quoted = detail::quote_postgres_identifier(schema.name);
    CHECK(schema.sql("SELECT version FROM " + quoted + ".schema_version").integer(0, 0) == PostgresStore::schema_version());
    CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".schema_version").integer(0, 0) == 1);
    CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".hooks").integer(0, 0) == 6);
}

TEST_CASE("credentials are sealed in the database and bound to their hook", "[postgres][store]")
{
    Schema schema;
    const MasterKey key = MasterKey::generate();
    PostgresOptions options = schema.options();
    options.master_key = key;
    std::int64_t id = 0;
    {
        // Written without a key first: sealed when a key is first used.
        PostgresStore clear{schema.uri, schema.options()};
        Hook hook = sample_hook("alice", "https://a.example/");
        hook.additional_headers = {{"Authorization", "Bearer header-secret"}};
        hook.config = {{"auth", {{"auth_type", "basic"}, {"username", "u"}, {"password", "auth-secret"}}}};
        id = clear.create_hook(hook).id;
    }
    PostgresStore sealed{schema.uri, options};
    const std::string quoted = detail::quote_postgres_identifier(schema.name);
    const std::string stored{
        schema.sql("SELECT secret_key || additional_headers || config FROM " + quoted + ".hooks").text(0, 0)};
    CHECK(stored.find("secret-of-alice") == std::string::npos);
    CHECK(stored.find("header-secret") == std::string::npos);
    CHECK(stored.find("auth-secret") == std::string::npos);
    CHECK(sealed.find_hook(id)->secret_key == "secret-of-alice");

    // Opening without the key, or with another, is refused.
    CHECK_THROWS_WITH(PostgresStore(schema.uri, schema.options()), Catch::Contains("master key"));
    PostgresOptions other = schema.options();
    other.master_key = MasterKey::generate();
    CHECK_THROWS_WITH(PostgresStore(schema.uri, other), Catch::Contains("another master key"));

    // A sealed secret copied onto another hook's row does not open there.
    const Hook second = sealed.create_hook(sample_hook("bob", "https://b.example/"));
    schema.sql("UPDATE " + quoted + ".hooks SET secret_key = (SELECT secret_key FROM " + quoted +
               ".hooks WHERE id = $1) WHERE id = $2",
               {std::to_string(id), std::to_string(second.id)});
    CHECK_THROWS_AS(sealed.find_hook(second.id), StoreError);
}

TEST_CASE("a server restart costs the store one failed call, not its state", "[postgres][store][restart]")
{
    PrivatePostgresServer server;
    PostgresOptions options;
    options.connections = 2;
    options.timeout = 5s;
    PostgresStore store{server.uri(), options};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::vector<std::int64_t> ids = enqueue(store, 3);

    // Retries a call as a dispatcher does: a failure is reported, the next call reconnects.
    auto eventually = [](auto&& call) {
        for (int attempt = 0;; ++attempt) {
            try {
                return call();
            } catch (const StoreError&) {
                if (attempt == 5)
                    throw;
                std::this_thread::sleep_for(200ms);
            }
        }
    };
    server.restart(); // Mid-claim: the pool's connections are cut.
    const auto claimed = eventually([&] { return store.claim_due(claim_by("w", t0 + 1s)); });
    CHECK(ids_of(claimed) == ids);
    server.restart(); // Mid-record.
    std::vector<AttemptRecord> records;
    for (std::int64_t id : ids)
        records.push_back(attempt_report(id, "w", 1, AttemptVerdict::delivered, 200));
    eventually([&] {
        store.record_attempts(records);
        return 0;
    });
    for (std::int64_t id : ids)
        CHECK(store.find_delivery(id)->state == DeliveryState::delivered);
    CHECK_FALSE(store.next_due());
}

TEST_CASE("a dispatcher on PostgreSQL is woken by another process's commit and delivers it", "[postgres][dispatcher]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    Receiver receiver;
    Hook hook = sample_hook("alice", receiver.url("/hook"), "thing.happened");
    hook.retry_countdown_config = {{"choice", "fixed"}, {"kwargs", {{"seconds", 1}}}};
    store.create_hook(hook);

    boost::asio::io_context io;
    auto work = boost::asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    Registry registry;
    registry.register_json_event("thing.happened");
    DispatcherOptions options;
    options.idle_poll = 60s; // Only the notification can wake it within the test's wait.
    options.store_threads = 2;
    options.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).as_filter();
    Dispatcher dispatcher(io.get_executor(), registry, store, options);
    PostgresDueListener listener(io.get_executor(), store, [&] { dispatcher.wake(); });
    dispatcher.start();
    for (int i = 0; i < 100 && !listener.listening(); ++i)
        std::this_thread::sleep_for(20ms);
    REQUIRE(listener.listening());
    std::this_thread::sleep_for(200ms); // The dispatcher's first claim has found nothing.

    // Published by a host's own SQL, not through this dispatcher.
    schema.sql("SELECT " + detail::quote_postgres_identifier(schema.name) + ".deliver_event('thing.happened', '{\"n\": 1}')");
    CHECK(receiver.wait_for(1, 5s));
    // And through the dispatcher itself.
    const DeliverResult result = dispatcher.deliver_data(boost::json::object{{"n", 2}}, "thing.happened", {});
    CHECK(result.hook_count == 1);
    CHECK(receiver.wait_for(2, 5s));

    dispatcher.stop();
    work.reset();
    io.stop();
    runner.join();
    const auto requests = receiver.requests();
    REQUIRE(requests.size() == 2);
    CHECK(requests[0].body.find(R"("data":{"n": 1})") != std::string::npos);
    CHECK(requests[1].header("webhook-id") == result.event_uuid);
}

TEST_CASE("deliver_event_in_transaction enqueues on the host's connection with the C++ envelope's bytes",
          "[postgres][store]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    detail::PostgresConnection host{schema.uri};
    auto session = host.session();
    const boost::json::value data = boost::json::parse(R"({"order":{"id":7,"lines":[1,2]},"note":"x\"y"})");

    session.query("BEGIN");
    deliver_event_in_transaction(host.get(), "package-created", data, {}, schema.name);
    session.query("ROLLBACK");
    CHECK(store.claim_due(claim_by("w", Clock::now() + 1s)).empty());

    session.query("BEGIN");
    const std::string uuid = deliver_event_in_transaction(host.get(), "package-created", data, "key-1", schema.name);
    session.query("COMMIT");
    const auto claimed = store.claim_due(claim_by("w", Clock::now() + 1s));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].body == boost::json::serialize(make_envelope("package-created", uuid, data, DataKey::data)));
    CHECK(deliver_event_in_transaction(host.get(), "package-created", data, "key-1", schema.name) == uuid);
    CHECK_THROWS_AS(deliver_event_in_transaction(host.get(), "package-created", data, {}, "no_such_schema"), StoreError);
}

TEST_CASE("rekey seals every credential under the new key; the old key no longer opens the schema",
          "[postgres][store]")
{
    Schema schema;
    const MasterKey old_key = MasterKey::generate();
    const MasterKey new_key = MasterKey::generate();
    PostgresOptions with_old = schema.options();
    with_old.master_key = old_key;
    PostgresOptions with_new = schema.options();
    with_new.master_key = new_key;
    std::vector<std::int64_t> ids;
    {
        PostgresStore store{schema.uri, with_old};
        for (const char* owner : {"alice", "bob"}) {
            Hook hook = sample_hook(owner, std::string("https://") + owner + ".example/");
            hook.config = {{"auth", {{"auth_type", "token"}, {"password", std::string("pw-") + owner}}}};
            ids.push_back(store.create_hook(hook).id);
        }
        store.rotate_secret(ids[0], SecretRotation{.grace_period = std::chrono::hours(1)});
        CHECK_THROWS_AS(store.rekey(old_key), StoreError); // The same key: nothing to do.
        const RekeyResult result = store.rekey(new_key);
        CHECK(result.hooks == 2);
        CHECK(result.values == 7); // Two secrets, one retired secret, two passwords, two header values.
        CHECK(result.unreadable_hooks.empty());
        CHECK(store.find_hook(ids[1])->config.at("auth").at("password") == "pw-bob"); // Goes on with the new key.
    }
    CHECK_THROWS_WITH(PostgresStore(schema.uri, with_old), Catch::Contains("another master key"));
    PostgresStore reopened{schema.uri, with_new};
    CHECK(reopened.find_hook(ids[0])->secret_key.starts_with("whsec_"));
    CHECK(reopened.find_hook(ids[0])->retired_secrets.size() == 1);
    CHECK(reopened.find_hook(ids[1])->secret_key == "secret-of-bob");
}

TEST_CASE("a response body that is not UTF-8 is recorded with replacement characters, not refused",
          "[postgres][store]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::vector<std::int64_t> ids = enqueue(store, 2);
    REQUIRE(store.claim_due(claim_by("w", t0 + 1s)).size() == 2);
    AttemptRecord latin1 = attempt_report(ids[0], "w", 1, AttemptVerdict::retry, 500, t0 + 60s);
    latin1.attempt.response_body = std::string("caf\xE9 \xFF\xFE ok \xC3\xA9", 13) + std::string(1, '\0') + "end";
    latin1.attempt.error = "HTTP 500 \xC0\xAF";
    AttemptRecord fine = attempt_report(ids[1], "w", 1, AttemptVerdict::delivered, 200);
    store.record_attempts(std::vector{latin1, fine});

    const auto first = store.find_delivery(ids[0], true);
    REQUIRE(first);
    CHECK(first->response_body == "caf\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD ok \xC3\xA9\xEF\xBF\xBD" "end");
    CHECK(first->attempts.at(0).error == "HTTP 500 \xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(first->state == DeliveryState::pending);
    CHECK(store.find_delivery(ids[1])->state == DeliveryState::delivered);
}

TEST_CASE("two reports of one delivery in one batch apply in their order", "[postgres][store]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::vector<std::int64_t> ids = enqueue(store, 2);
    REQUIRE(store.claim_due(claim_by("w", t0 + 1s)).size() == 2);
    store.record_attempts(std::vector{attempt_report(ids[0], "w", 1, AttemptVerdict::retry, 503, t0 + 60s),
                                      attempt_report(ids[1], "w", 1, AttemptVerdict::failed, 500),
                                      attempt_report(ids[0], "w", 2, AttemptVerdict::delivered, 200)});
    const auto first = store.find_delivery(ids[0], true);
    REQUIRE(first);
    CHECK(first->state == DeliveryState::delivered);
    CHECK(first->attempt_count == 2);
    CHECK(first->response_status == 200);
    REQUIRE(first->attempts.size() == 2);
    CHECK(first->attempts[0].number == 2); // Newest first.
    CHECK(store.find_delivery(ids[1])->state == DeliveryState::failed);
    CHECK_FALSE(store.next_due());
}

namespace {

/// Runs `call` on a thread of its own while `blocker` holds a lock it needs, then cuts the
/// connection of the backend that waits for that lock: the call fails mid-statement.
/// Returns what the call threw (empty if it did not throw).
template <class Call>
std::string cut_while_waiting(const Schema& schema, detail::PostgresConnection& blocker, Call call)
{
    std::string thrown;
    std::thread caller([&] {
        try {
            call();
        } catch (const StoreError& e) {
            thrown = e.what();
        }
    });
    // The store's backend waits for the blocker's lock; cut it there.
    bool cut = false;
    for (int i = 0; i < 100 && !cut; ++i) {
        std::this_thread::sleep_for(50ms);
        // Only this test's backend: other tests share the server.
        cut = schema.sql("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE wait_event_type = 'Lock' AND datname = current_database() "
                         "AND position($1 in query) > 0 AND pid <> pg_backend_pid()) t",
                         {schema.name})
                  .integer(0, 0) > 0;
    }
    CHECK(cut);
    blocker.session().query("COMMIT");
    caller.join();
    return thrown;
}

} // namespace

TEST_CASE("a connection lost mid-claim or mid-record changes nothing, and the next call goes through",
          "[postgres][store][restart]")
{
    Schema schema;
    PostgresStore store{schema.uri, schema.options()};
    const std::string quoted = detail::quote_postgres_identifier(schema.name);
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::vector<std::int64_t> ids = enqueue(store, 3);

    SECTION("mid-claim: the inbox's event is not half fanned out, no row is leased")
    {
        schema.sql("SELECT " + quoted + ".deliver_event('package-created', '{\"id\": 1}'::json)");
        detail::PostgresConnection blocker{schema.uri};
        blocker.session().query("BEGIN");
        // Reads pass, writes wait: the claim's fan-out of the inbox waits with its transaction open.
        blocker.session().query("LOCK TABLE " + quoted + ".outbox IN SHARE MODE");
        const std::string thrown =
            cut_while_waiting(schema, blocker, [&] { store.claim_due(claim_by("w", t0 + 1s)); });
        CHECK_THAT(thrown, Catch::Contains("find the hooks with due deliveries"));
        CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".event_inbox").integer(0, 0) == 1);
        CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".outbox").integer(0, 0) == 3);
        CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".outbox WHERE lease_owner IS NOT NULL").integer(0, 0) ==
              0);
        const auto claimed = store.claim_due(claim_by("w", std::chrono::system_clock::now() + 1s));
        CHECK(claimed.size() == 4);
        CHECK(schema.sql("SELECT count(*) FROM " + quoted + ".event_inbox").integer(0, 0) == 0);
    }
    SECTION("mid-record: no attempt, no verdict")
    {
        REQUIRE(ids_of(store.claim_due(claim_by("w", t0 + 1s))) == ids);
        detail::PostgresConnection blocker{schema.uri};
        blocker.session().query("BEGIN");
        blocker.session().query("SELECT 1 FROM " + quoted + ".deliveries WHERE id = " + std::to_string(ids[1]) +
                                " FOR UPDATE");
        std::vector<AttemptRecord> records;
        for (std::int64_t id : ids)
            records.push_back(attempt_report(id, "w", 1, AttemptVerdict::delivered, 200));
        const std::string thrown = cut_while_waiting(schema, blocker, [&] { store.record_attempts(records); });
        CHECK_THAT(thrown, Catch::Contains("record attempts"));
        for (std::int64_t id : ids) {
            const auto delivery = store.find_delivery(id, true);
            REQUIRE(delivery);
            CHECK(delivery->state == DeliveryState::pending);
            CHECK(delivery->attempts.empty());
        }
        store.record_attempts(records);
        for (std::int64_t id : ids)
            CHECK(store.find_delivery(id)->state == DeliveryState::delivered);
        CHECK_FALSE(store.next_due());
    }
}
