// The event journal: its record format, its files and their locks, and the dispatcher's use of
// it (accepting events, storing them, replaying what a crashed run left).

#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "temp_dir.hpp"

#include "detail/event_journal.hpp"

#include <whisperer/whisperer.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <sqlite3.h>

#include <filesystem>
#include <set>
#include <thread>

using namespace whisperer;
using namespace std::chrono_literals;
using detail::EventJournal;
using whisperer::test::eventually;
namespace json = boost::json;

namespace {

NewEvent sample_event(int n, std::vector<std::int64_t> hooks = {1, 2})
{
    NewEvent event;
    event.uuid = std::string(31, '0') + static_cast<char>('0' + n % 10);
    event.event_type = "thing.happened";
    event.body = R"({"event_type":"thing.happened","n":)" + std::to_string(n) + "}";
    event.object_ref = "thing:" + std::to_string(n);
    event.created = TimePoint(std::chrono::microseconds(1'700'000'000'000'000 + n));
    event.due = event.created + std::chrono::microseconds(5);
    event.hook_ids = std::move(hooks);
    return event;
}

std::size_t files_starting_with(const std::filesystem::path& dir, const std::string& start)
{
    std::size_t n = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir))
        if (entry.path().filename().string().starts_with(start))
            ++n;
    return n;
}

std::vector<NewEvent> replay_all(const std::string& prefix)
{
    std::vector<NewEvent> seen;
    EventJournal::replay(prefix, [&](std::span<const NewEvent> events) { seen.insert(seen.end(), events.begin(), events.end()); });
    return seen;
}

} // namespace

TEST_CASE("a journal record holds every field of the event", "[journal]")
{
    NewEvent event = sample_event(7, {3, 9, 27});
    auto decoded = detail::decode_journal_records(detail::encode_journal_record(event));
    REQUIRE(decoded.size() == 1);
    CHECK(decoded[0].uuid == event.uuid);
    CHECK(decoded[0].event_type == event.event_type);
    CHECK(decoded[0].body == event.body);
    CHECK(decoded[0].object_ref == event.object_ref);
    CHECK(decoded[0].created == event.created);
    CHECK(decoded[0].due == event.due);
    REQUIRE(decoded[0].hook_ids);
    CHECK(*decoded[0].hook_ids == std::vector<std::int64_t>{3, 9, 27});
    CHECK(decoded[0].replayed);
}

TEST_CASE("a torn or corrupt record ends the journal; the records before it count", "[journal]")
{
    const std::string first = detail::encode_journal_record(sample_event(1));
    const std::string second = detail::encode_journal_record(sample_event(2, {}));
    const std::string both = first + second;
    for (std::size_t cut = 0; cut <= both.size(); ++cut) {
        const std::size_t expected = cut < first.size() ? 0 : cut < both.size() ? 1 : 2;
        INFO("cut at " << cut);
        CHECK(detail::decode_journal_records(std::string_view(both).substr(0, cut)).size() == expected);
    }
    std::string corrupt = both;
    corrupt[first.size() + 20] ^= 0x40; // inside the second record's payload
    CHECK(detail::decode_journal_records(corrupt).size() == 1);
    CHECK(detail::decode_journal_records(std::string(40, '\0') + both).empty());
}

TEST_CASE("a journal's files live while records are unsettled and are replayed only once released", "[journal]")
{
    test::TempDir dir;
    const std::string prefix = dir.file("store.db.journal");
    {
        EventJournal journal(prefix, "w1");
        auto a = journal.append(sample_event(1));
        auto b = journal.append(sample_event(2));
        CHECK(files_starting_with(dir.path(), "store.db.journal-w1-") == 1);
        // The writer holds its file: a replay must leave it alone.
        CHECK(replay_all(prefix).empty());
        CHECK(files_starting_with(dir.path(), "store.db.journal-") == 1);
        journal.settle(a);
        CHECK_FALSE(journal.wait_settled(10ms));
        (void)b; // Never settled: as if the process died before storing it.
    }
    auto replayed = replay_all(prefix);
    REQUIRE(replayed.size() == 2);
    CHECK(replayed[0].uuid == sample_event(1).uuid);
    CHECK(replayed[1].body == sample_event(2).body);
    CHECK(replayed[1].replayed);
    CHECK(files_starting_with(dir.path(), "store.db.journal-") == 0);
    CHECK(replay_all(prefix).empty());
}

TEST_CASE("a journal whose records are all settled leaves no file", "[journal]")
{
    test::TempDir dir;
    const std::string prefix = dir.file("store.db.journal");
    {
        EventJournal journal(prefix, "w1", 200); // about two records per file
        std::vector<EventJournal::Ticket> tickets;
        for (int i = 0; i < 10; ++i)
            tickets.push_back(journal.append(sample_event(i)));
        CHECK(files_starting_with(dir.path(), "store.db.journal-w1-") >= 4);
        for (std::size_t i = 0; i + 1 < tickets.size(); ++i)
            journal.settle(tickets[i]);
        // Only the file with the unsettled last record remains.
        CHECK(files_starting_with(dir.path(), "store.db.journal-w1-") == 1);
        journal.settle(tickets.back());
        CHECK(journal.wait_settled(0ms));
    }
    CHECK(files_starting_with(dir.path(), "store.db.journal-") == 0);
}

TEST_CASE("a failing store keeps the journal file for the next replay", "[journal]")
{
    test::TempDir dir;
    const std::string prefix = dir.file("store.db.journal");
    {
        EventJournal journal(prefix, "w1");
        journal.append(sample_event(1));
    }
    CHECK_THROWS_AS(EventJournal::replay(prefix, [](std::span<const NewEvent>) { throw StoreError("disk on fire"); }),
                    StoreError);
    CHECK(files_starting_with(dir.path(), "store.db.journal-") == 1);
    CHECK(replay_all(prefix).size() == 1);
}

TEST_CASE("an unwritable journal directory fails the append with a StoreError", "[journal]")
{
    test::TempDir dir;
    EventJournal journal(dir.file("missing/store.db.journal"), "w1");
    CHECK_THROWS_AS(journal.append(sample_event(1)), StoreError);
}

// --- the store's side -------------------------------------------------------------------------

TEST_CASE("a SQLite store offers a journal beside its file only with normal durability", "[journal][store]")
{
    test::TempDir dir;
    CHECK(SqliteStore(dir.file("a.db")).journal_prefix() == dir.file("a.db") + ".journal");
    CHECK(SqliteStore(dir.file("b.db"), {.durability = SqliteDurability::full}).journal_prefix().empty());
    CHECK(SqliteStore(":memory:").journal_prefix().empty());
}

TEST_CASE("subscriber ids see another connection's hook changes at once", "[journal][store]")
{
    test::TempDir dir;
    SqliteStore reader(dir.file("s.db"));
    SqliteStore writer(dir.file("s.db"));
    auto make = [&](const std::string& url, json::object config) {
        Hook h;
        h.owner = "alice";
        h.target_url = url;
        h.event_type = "thing.happened";
        h.config = std::move(config);
        return writer.create_hook(h);
    };
    Hook first = make("https://a.example/", {{"team", "red"}});
    CHECK(reader.subscriber_ids("thing.happened") == std::vector<std::int64_t>{first.id});
    Hook second = make("https://b.example/", {{"team", "blue"}});
    CHECK(reader.subscriber_ids("thing.happened") == std::vector<std::int64_t>{first.id, second.id});
    CHECK(reader.subscriber_ids("thing.happened", {{"team", "blue"}}) == std::vector<std::int64_t>{second.id});
    CHECK(reader.subscriber_ids("other.thing").empty());
    writer.deactivate_hook(first.id);
    CHECK(reader.subscriber_ids("thing.happened") == std::vector<std::int64_t>{second.id});
    Hook moved = *writer.find_hook(second.id);
    moved.event_type = "other.thing";
    writer.update_hook(moved);
    CHECK(reader.subscriber_ids("thing.happened").empty());
    CHECK(reader.subscriber_ids("other.thing") == std::vector<std::int64_t>{second.id});
}

TEST_CASE("an event with chosen hooks goes to exactly those; a replayed one is stored once", "[journal][store]")
{
    test::TempDir dir;
    SqliteStore store(dir.file("s.db"));
    std::vector<std::int64_t> ids;
    for (std::string url : {"https://a.example/", "https://b.example/", "https://c.example/"}) {
        Hook h;
        h.owner = "alice";
        h.target_url = url;
        h.event_type = "thing.happened";
        ids.push_back(store.create_hook(h).id);
    }
    NewEvent event = sample_event(1, {ids[0], ids[2]});
    event.replayed = false;
    auto written = store.enqueue_events(std::span(&event, 1));
    REQUIRE(written.front().delivery_ids.size() == 2);
    std::set<std::int64_t> hooks;
    for (const Delivery& d : store.deliveries_of_event(event.uuid))
        hooks.insert(d.hook_id);
    CHECK(hooks == std::set<std::int64_t>{ids[0], ids[2]});

    event.replayed = true;
    auto again = store.enqueue_events(std::span(&event, 1));
    CHECK(again.front().duplicate);
    CHECK(again.front().delivery_ids.empty());
    CHECK(store.deliveries_of_event(event.uuid).size() == 2);
}

// --- the dispatcher's side --------------------------------------------------------------------

namespace {

struct Host {
    test::TempDir dir;
    std::string db = dir.file("whisperer.db");
    SqliteStore store{db};
    Registry registry;
    boost::asio::io_context io;
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread{[this] { io.run(); }};

    Host() { registry.register_json_event("thing.happened"); }
    ~Host()
    {
        work.reset();
        io.stop();
        thread.join();
    }

    static DispatcherOptions options(bool journal = true)
    {
        DispatcherOptions o;
        o.journal = journal;
        o.idle_poll = 200ms;
        o.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).as_filter();
        return o;
    }

    Hook hook(const std::string& url)
    {
        Hook h;
        h.owner = "alice";
        h.target_url = url;
        h.event_type = "thing.happened";
        h.secret_key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        return store.create_hook(h);
    }

    std::size_t journal_files() const { return files_starting_with(dir.path(), "whisperer.db.journal-"); }
};

} // namespace

TEST_CASE("deliver_event accepts into the journal, and the event reaches the store and the receiver", "[journal][dispatcher]")
{
    Host host;
    test::Receiver receiver;
    host.hook(receiver.url("/a"));
    host.hook(receiver.url("/b"));
    Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, Host::options());
    dispatcher.start();

    auto result = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
    CHECK(result.hook_count == 2);
    CHECK(host.journal_files() == 1);
    REQUIRE(dispatcher.wait_stored(5s));
    CHECK(host.store.deliveries_of_event(result.event_uuid).size() == 2);
    REQUIRE(receiver.wait_for(2));
    CHECK(receiver.requests().front().body.find(result.event_uuid) != std::string::npos);
    dispatcher.stop();
    CHECK(host.journal_files() == 0);
}

TEST_CASE("a running dispatcher sends a new event's deliveries that fit its slots without claiming them",
          "[journal][dispatcher]")
{
    Host host;
    test::Receiver receiver;
    for (const char* path : {"/a", "/b", "/c"})
        host.hook(receiver.url(path));
    DispatcherOptions options = Host::options();

    SECTION("slots free: every delivery handed off, and recorded as delivered")
    {
        // A claim reserves at most claim_batch slots, so a claim running meanwhile leaves room.
        Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, options);
        dispatcher.start();
        auto result = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
        REQUIRE(receiver.wait_for(3));
        REQUIRE(eventually([&] { return host.store.list_outbox({}).items.empty(); }));
        CHECK(dispatcher.counters().handed_off == 3);
        for (const Delivery& d : host.store.deliveries_of_event(result.event_uuid))
            CHECK(d.state == DeliveryState::delivered);
        dispatcher.stop();
    }
    SECTION("one slot: at most one handed off, the others claimed")
    {
        options.max_in_flight = 1;
        Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, options);
        dispatcher.start();
        auto result = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
        REQUIRE(receiver.wait_for(3));
        REQUIRE(eventually([&] { return dispatcher.counters().delivered == 3; }));
        CHECK(dispatcher.counters().handed_off <= 1);
        CHECK(host.store.deliveries_of_event(result.event_uuid).size() == 3);
        dispatcher.stop();
    }
    SECTION("not started: nothing handed off, everything claimed once started")
    {
        Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, options);
        auto result = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
        REQUIRE(dispatcher.wait_stored(5s));
        for (const OutboxEntry& entry : host.store.list_outbox({}).items)
            CHECK_FALSE(entry.lease_expires);
        dispatcher.start();
        REQUIRE(receiver.wait_for(3));
        REQUIRE(eventually([&] { return dispatcher.counters().delivered == 3; }));
        CHECK(dispatcher.counters().handed_off == 0);
        CHECK(host.store.deliveries_of_event(result.event_uuid).size() == 3);
        dispatcher.stop();
    }
}

TEST_CASE("calls with an idempotency key, and dispatchers without a journal, commit before returning", "[journal][dispatcher]")
{
    Host host;
    host.hook("http://127.0.0.1:9/");
    for (bool journal : {true, false}) {
        Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, Host::options(journal));
        DeliverOptions keyed;
        keyed.idempotency_key = journal ? "key-1" : "key-2";
        auto first = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened", keyed);
        CHECK(host.store.deliveries_of_event(first.event_uuid).size() == 1);
        if (!journal) {
            auto plain = dispatcher.deliver_event(json::value{{"n", 2}}, "thing.happened");
            CHECK(host.store.deliveries_of_event(plain.event_uuid).size() == 1);
            CHECK(host.journal_files() == 0);
        }
    }
}

TEST_CASE("start stores and delivers what an earlier run left in its journal", "[journal][dispatcher]")
{
    Host host;
    test::Receiver receiver;
    Hook hook = host.hook(receiver.url("/in"));
    std::vector<std::string> uuids;
    {
        // A run that accepted three events and died before storing them.
        EventJournal journal(host.store.journal_prefix(), "worker-dead");
        for (int i = 0; i < 3; ++i) {
            NewEvent event = sample_event(i, {hook.id});
            event.uuid = std::string(30, 'a') + "0" + std::to_string(i);
            event.body = R"({"event_type":"thing.happened","uuid":")" + event.uuid + R"("})";
            event.created = event.due = Clock::now();
            uuids.push_back(event.uuid);
            journal.append(event);
        }
    }
    REQUIRE(host.journal_files() == 1);
    Dispatcher dispatcher(host.io.get_executor(), host.registry, host.store, Host::options());
    dispatcher.start();
    CHECK(host.journal_files() == 0);
    for (const std::string& uuid : uuids)
        CHECK(host.store.deliveries_of_event(uuid).size() == 1);
    REQUIRE(receiver.wait_for(3));
    CHECK(eventually([&] {
        for (const std::string& uuid : uuids) {
            auto deliveries = host.store.deliveries_of_event(uuid);
            if (deliveries.empty() || deliveries.front().state != DeliveryState::delivered)
                return false;
        }
        return true;
    }));
}

TEST_CASE("an event accepted while the store is locked is stored once the lock goes", "[journal][dispatcher]")
{
    Host host;
    host.hook("http://127.0.0.1:9/");
    // Another connection holds the write lock: commits fail with "database is locked".
    SqliteStore blocked(host.db, {.busy_timeout = 10ms});
    Dispatcher dispatcher(host.io.get_executor(), host.registry, blocked, Host::options());
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(host.db.c_str(), &raw) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);
    auto result = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
    CHECK(result.hook_count == 1);
    CHECK_FALSE(dispatcher.wait_stored(300ms));
    REQUIRE(sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
    REQUIRE(dispatcher.wait_stored(5s));
    CHECK(host.store.deliveries_of_event(result.event_uuid).size() == 1);
}

TEST_CASE("past max_unstored_events waiting for the store, deliver_event commits before it returns",
          "[journal][dispatcher]")
{
    Host host;
    host.hook("http://127.0.0.1:9/");
    SqliteStore blocked(host.db, {.busy_timeout = 10ms});
    DispatcherOptions options = Host::options();
    options.max_unstored_events = 2;
    Dispatcher dispatcher(host.io.get_executor(), host.registry, blocked, options);
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(host.db.c_str(), &raw) == SQLITE_OK);
    REQUIRE(sqlite3_exec(raw, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr) == SQLITE_OK);

    // Two are accepted into the journal although the store is locked...
    const auto first = dispatcher.deliver_event(json::value{{"n", 1}}, "thing.happened");
    const auto second = dispatcher.deliver_event(json::value{{"n", 2}}, "thing.happened");
    // ...the third must commit, and the lock makes that fail with a clear error.
    CHECK_THROWS_AS(dispatcher.deliver_event(json::value{{"n", 3}}, "thing.happened"), StoreError);
    std::atomic<bool> failed{false};
    dispatcher.async_deliver_event(json::value{{"n", 4}}, "thing.happened", {},
                                   [&](boost::system::error_code ec, DeliverResult) { failed = bool(ec); });
    CHECK(eventually([&] { return failed.load(); }));

    REQUIRE(sqlite3_exec(raw, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
    REQUIRE(dispatcher.wait_stored(5s));
    CHECK(host.store.deliveries_of_event(first.event_uuid).size() == 1);
    CHECK(host.store.deliveries_of_event(second.event_uuid).size() == 1);
    // Nothing is left waiting: later events are accepted and stored again.
    const auto fifth = dispatcher.deliver_event(json::value{{"n", 5}}, "thing.happened");
    REQUIRE(dispatcher.wait_stored(5s));
    CHECK(host.store.deliveries_of_event(fifth.event_uuid).size() == 1);
}
