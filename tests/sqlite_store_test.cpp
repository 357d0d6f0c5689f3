// What SqliteStore does beyond the conformance suite: the file, its versions, several connections.

#include <whisperer/error.hpp>
#include <whisperer/sqlite_store.hpp>

#include "catch.hpp"
#include "sqlite_file.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <boost/json/value.hpp>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <sys/stat.h>

// GCC before 14 warns about every member a designated initializer leaves to its default, which is
// the point of writing queries as `{.owner = "alice"}`.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

// Offsets of fields in the 100-byte header of every SQLite file (big-endian integers).
constexpr std::size_t write_version_offset = 18; // 2 in WAL mode
constexpr std::size_t user_version_offset = 60;
constexpr std::size_t application_id_offset = 68;

std::string file_bytes(const std::string& path)
{
    std::ifstream file{path, std::ios::binary};
    return {std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
}

std::uint32_t header_field(const std::string& path, std::size_t offset)
{
    const std::string bytes = file_bytes(path);
    REQUIRE(bytes.size() >= 100);
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i)
        value = value << 8 | static_cast<unsigned char>(bytes[offset + i]);
    return value;
}

/// Overwrites a header field of a closed database file.
void set_header_field(const std::string& path, std::size_t offset, std::uint32_t value)
{
    std::fstream file{path, std::ios::binary | std::ios::in | std::ios::out};
    file.seekp(static_cast<std::streamoff>(offset));
    for (int shift = 24; shift >= 0; shift -= 8)
        file.put(static_cast<char>(value >> shift & 0xFF));
    REQUIRE(file.good());
}

/// A closed whisperer database file holding one hook.
std::string closed_database(const TempDir& dir)
{
    const std::string path = dir.file("whisperer.db");
    SqliteStore store{path};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    return path;
}

/// Runs `body` on `count` threads and rethrows the first exception any of them threw.
template <class Body>
void run_threads(int count, Body body)
{
    std::mutex failure_mutex;
    std::exception_ptr failure;
    std::vector<std::thread> threads;
    for (int i = 0; i < count; ++i)
        threads.emplace_back([&, i] {
            try {
                body(i);
            } catch (...) {
                std::lock_guard lock{failure_mutex};
                failure = failure ? failure : std::current_exception();
            }
        });
    for (auto& thread : threads)
        thread.join();
    if (failure)
        std::rethrow_exception(failure);
}

/// Claims and delivers until the outbox is empty and `producing` has become false.
std::vector<std::int64_t> drain(SubscriptionStore& store, const std::string& worker,
                                const std::atomic<bool>& producing)
{
    std::vector<std::int64_t> claimed_ids;
    for (;;) {
        // Read before claiming: an empty claim after production ended means nothing is left.
        const bool more_may_come = producing.load();
        const auto claimed = store.claim_due(claim_by(worker, t0 + 1h, 7));
        if (claimed.empty() && !more_may_come)
            return claimed_ids;
        std::vector<AttemptRecord> reports;
        for (const ClaimedDelivery& delivery : claimed) {
            claimed_ids.push_back(delivery.delivery_id);
            reports.push_back(attempt_report(delivery.delivery_id, worker, delivery.attempt_count + 1,
                                             AttemptVerdict::delivered, 200));
        }
        store.record_attempts(reports);
    }
}

void enqueue_batches(SubscriptionStore& store, int batches)
{
    for (int batch = 0; batch < batches; ++batch) {
        std::vector<NewEvent> events;
        for (int i = 0; i < 10; ++i)
            events.push_back(sample_event());
        store.enqueue_events(events);
    }
}

void require_each_once(std::vector<std::int64_t> ids, std::size_t expected)
{
    const std::set<std::int64_t> distinct(ids.begin(), ids.end());
    CHECK(distinct.size() == ids.size());
    CHECK(ids.size() == expected);
}

} // namespace

TEST_CASE("a reopened database file still has its hooks, deliveries, outbox and tokens", "[sqlite]")
{
    const auto durability = GENERATE(SqliteDurability::normal, SqliteDurability::full);
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    Hook hook;
    std::int64_t delivery_id = 0;
    {
        SqliteStore store{path, SqliteOptions{.durability = durability}};
        hook = store.create_hook(sample_hook("alice", "https://a.example/", "package-created", {{"k", 1}}));
        NewEvent event = sample_event("package-created", t0 + 1s);
        delivery_id = store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0);
        store.add_token(std::string(64, 'a'), ApiToken{.owner = "alice", .created = t0});
    }

    SqliteStore reopened{path};
    const auto found = reopened.find_hook(hook.id);
    REQUIRE(found);
    CHECK(found->config == hook.config);
    CHECK(found->created == hook.created);
    CHECK(reopened.find_delivery(delivery_id)->state == DeliveryState::pending);
    CHECK(reopened.next_due() == t0 + 1s);
    CHECK(reopened.find_token(std::string(64, 'a'))->owner == "alice");
}

TEST_CASE("a new database file is in WAL mode and marked as whisperer's current schema", "[sqlite]")
{
    TempDir dir;
    const std::string path = closed_database(dir);

    CHECK(static_cast<unsigned char>(file_bytes(path).at(write_version_offset)) == 2);
    CHECK(header_field(path, user_version_offset) == static_cast<std::uint32_t>(SqliteStore::schema_version()));
    CHECK(header_field(path, application_id_offset) != 0);
    CHECK(SqliteStore::schema_version() >= 1);
}

TEST_CASE("an empty file becomes a new whisperer database", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("empty.db");
    std::ofstream{path}.close();

    SqliteStore store{path};
    CHECK(store.create_hook(sample_hook("alice", "https://a.example/")).id > 0);
}

TEST_CASE("a database written by a newer whisperer is refused and left unchanged", "[sqlite]")
{
    TempDir dir;
    const std::string path = closed_database(dir);
    const int newer = SqliteStore::schema_version() + 1;
    set_header_field(path, user_version_offset, static_cast<std::uint32_t>(newer));
    const std::string before = file_bytes(path);

    try {
        SqliteStore store{path};
        FAIL("a newer schema was opened");
    } catch (const StoreError& e) {
        const std::string message = e.what();
        CHECK(message.find("version " + std::to_string(newer)) != std::string::npos);
        CHECK(message.find("version " + std::to_string(SqliteStore::schema_version())) != std::string::npos);
    }
    CHECK(file_bytes(path) == before);
}

TEST_CASE("a file that is not a SQLite database is refused and left unchanged", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("garbage.db");
    std::string garbage(4096, '\0');
    for (std::size_t i = 0; i < garbage.size(); ++i)
        garbage[i] = static_cast<char>(i * 7919 % 251);
    std::ofstream{path, std::ios::binary} << garbage;

    CHECK_THROWS_AS(SqliteStore{path}, StoreError);
    CHECK_THROWS_WITH(SqliteStore{path}, Catch::Contains("not a database"));
    CHECK(file_bytes(path) == garbage);
}

TEST_CASE("a SQLite database of another application is refused and left unchanged", "[sqlite]")
{
    TempDir dir;
    const std::string path = closed_database(dir);

    SECTION("one with tables and no marks at all")
    {
        set_header_field(path, application_id_offset, 0);
        set_header_field(path, user_version_offset, 0);
        const std::string before = file_bytes(path);
        CHECK_THROWS_WITH(SqliteStore{path}, Catch::Contains("another application"));
        CHECK(file_bytes(path) == before);
    }
    SECTION("one marked with another application id")
    {
        set_header_field(path, application_id_offset, 0x12345678);
        const std::string before = file_bytes(path);
        CHECK_THROWS_WITH(SqliteStore{path}, Catch::Contains("not a whisperer database"));
        CHECK(file_bytes(path) == before);
    }
}

TEST_CASE("a database in a missing directory cannot be opened", "[sqlite]")
{
    TempDir dir;
    CHECK_THROWS_AS(SqliteStore{dir.file("missing/whisperer.db")}, StoreError);
}

TEST_CASE("a capped response body never ends inside a UTF-8 character", "[sqlite]")
{
    SqliteStore store{":memory:", SqliteOptions{.response_body_limit = 5}};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    NewEvent event = sample_event();
    const std::int64_t id = store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0);
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);

    std::vector<AttemptRecord> reports{attempt_report(id, "w", 1, AttemptVerdict::delivered, 200)};
    reports[0].attempt.response_body = "abcd\xC3\xA9" "fgh"; // the 2-byte é straddles the limit
    store.record_attempts(reports);

    CHECK(store.find_delivery(id)->response_body == "abcd");
}

TEST_CASE("two stores on one file, like two processes, never claim the same delivery", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("shared.db");
    SqliteStore producer{path};
    producer.create_hook(sample_hook("alice", "https://a.example/"));
    producer.create_hook(sample_hook("bob", "https://b.example/"));
    enqueue_batches(producer, 10);
    SqliteStore first{path};
    SqliteStore second{path};
    SubscriptionStore* claimers[] = {&first, &second};

    std::atomic<bool> producing{true};
    std::vector<std::int64_t> claimed[2];
    run_threads(3, [&](int i) {
        if (i == 2) {
            enqueue_batches(producer, 10);
            producing = false;
        } else {
            claimed[i] = drain(*claimers[i], "worker-" + std::to_string(i), producing);
        }
    });

    std::vector<std::int64_t> all = claimed[0];
    all.insert(all.end(), claimed[1].begin(), claimed[1].end());
    require_each_once(all, 2 * 200);
    CHECK(producer.list_deliveries({.delivered = false}).items.empty());
    CHECK_FALSE(producer.next_due());
}

TEST_CASE("threads enqueuing and claiming on one store claim every delivery exactly once", "[sqlite]")
{
    TempDir dir;
    SqliteStore store{dir.file("threads.db")};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    store.create_hook(sample_hook("bob", "https://b.example/"));

    std::atomic<int> producers_left{2};
    std::atomic<bool> producing{true};
    std::vector<std::int64_t> claimed[2];
    run_threads(4, [&](int i) {
        if (i < 2) {
            enqueue_batches(store, 10);
            if (--producers_left == 0)
                producing = false;
        } else {
            claimed[i - 2] = drain(store, "worker-" + std::to_string(i), producing);
        }
    });

    std::vector<std::int64_t> all = claimed[0];
    all.insert(all.end(), claimed[1].begin(), claimed[1].end());
    require_each_once(all, 2 * 2 * 100);
    CHECK(store.list_deliveries({.delivered = false}).items.empty());
}

// --- hooks per owner -----------------------------------------------------------------------------

namespace {

std::size_t active_hooks_of(SubscriptionStore& store, const std::string& owner)
{
    std::size_t count = 0;
    std::optional<std::int64_t> next = 0;
    while (next) {
        Page<Hook> page = store.list_hooks({.owner = owner, .is_active = true, .after = *next, .limit = 1000});
        count += page.items.size();
        next = page.next;
    }
    return count;
}

} // namespace

TEST_CASE("an owner may have max_hooks_per_owner active hooks; one more throws TooManyHooks and is not written",
          "[sqlite][limits]")
{
    SqliteStore store{":memory:"};
    REQUIRE(SqliteOptions{}.max_hooks_per_owner == 1000);
    for (int i = 0; i < 1000; ++i)
        store.create_hook(sample_hook("alice", "https://example.com/" + std::to_string(i)));
    CHECK_THROWS_AS(store.create_hook(sample_hook("alice", "https://example.com/1000")), TooManyHooks);
    CHECK(active_hooks_of(store, "alice") == 1000);
    CHECK(store.list_hooks({.target_url = "https://example.com/1000"}).items.empty());
    // Every owner has a limit of its own.
    store.create_hook(sample_hook("bob", "https://example.com/1000"));
    CHECK(active_hooks_of(store, "bob") == 1);
}

TEST_CASE("moving a hook to another owner counts against that owner's limit; re-activating one's own needs no room",
          "[sqlite][limits]")
{
    SqliteStore store{":memory:", SqliteOptions{.max_hooks_per_owner = 2}};
    const Hook first = store.create_hook(sample_hook("alice", "https://example.com/1"));
    Hook paused = sample_hook("alice", "https://example.com/paused");
    paused.is_active = false;
    paused = store.create_hook(paused);
    CHECK_FALSE(paused.is_active);
    // An inactive hook takes a place too.
    CHECK_THROWS_AS(store.create_hook(sample_hook("alice", "https://example.com/2")), TooManyHooks);

    Hook resumed = paused;
    resumed.is_active = true;
    CHECK(store.update_hook(resumed).is_active);

    const Hook bobs = store.create_hook(sample_hook("bob", "https://example.com/bob"));
    Hook moved = bobs;
    moved.owner = "alice";
    CHECK_THROWS_AS(store.update_hook(moved), TooManyHooks);
    CHECK(store.find_hook(bobs.id)->owner == "bob");
    moved.is_active = false;
    CHECK_THROWS_AS(store.update_hook(moved), TooManyHooks);

    // Changing a hook that already counts needs no new place.
    Hook changed = first;
    changed.target_url = "https://example.com/changed";
    CHECK(store.update_hook(changed).target_url == "https://example.com/changed");
}

TEST_CASE("deleted hooks count against max_hooks_per_owner until retention removes them with their deliveries",
          "[sqlite][limits][security]")
{
    SqliteStore store{":memory:", SqliteOptions{.max_hooks_per_owner = 2}};
    const Hook kept = store.create_hook(sample_hook("alice", "https://example.com/kept"));
    const Hook idle = store.create_hook(sample_hook("alice", "https://example.com/idle", "package-deleted"));
    // A subscriber that creates and deletes hooks in a loop gets no further than its limit.
    REQUIRE(store.deactivate_hook(idle.id));
    CHECK_THROWS_AS(store.create_hook(sample_hook("alice", "https://example.com/3")), TooManyHooks);
    CHECK(store.list_hooks({.owner = "alice"}).items.size() == 2);

    // Retention removes a deleted hook once it has no deliveries left, and only then.
    const auto written = store.enqueue_events(std::vector{sample_event()});
    REQUIRE(written.at(0).delivery_ids.size() == 1);
    REQUIRE(store.deactivate_hook(kept.id));
    const TimePoint later = Clock::now() + 1h;
    CHECK(store.delete_finished_before(later) == 0); // The pending delivery stays, and so does its hook.
    CHECK(store.find_hook(kept.id));
    CHECK_FALSE(store.find_hook(idle.id));
    store.create_hook(sample_hook("alice", "https://example.com/3"));
    CHECK_THROWS_AS(store.create_hook(sample_hook("alice", "https://example.com/4")), TooManyHooks);

    // An active hook is never removed, deliveries or not.
    CHECK(store.delete_finished_before(later) == 0);
    CHECK(store.list_hooks({.owner = "alice"}).items.size() == 2);
}

TEST_CASE("a delivery keeps its newest max_attempts_kept attempts, listed a page at a time, newest first",
          "[sqlite][limits][security]")
{
    CHECK(SqliteOptions{}.max_attempts_kept == 50);
    CHECK_THROWS_AS(SqliteStore(":memory:", SqliteOptions{.max_attempts_kept = 0}), StoreError);
    SqliteStore store{":memory:", SqliteOptions{.max_attempts_kept = 5}};
    store.create_hook(sample_hook("alice", "https://example.com/hook"));
    const std::int64_t id = store.enqueue_events(std::vector{sample_event()}).at(0).delivery_ids.at(0);
    for (unsigned number = 1; number <= 12; ++number)
        store.record_attempts(std::vector{attempt_report(id, "", number, AttemptVerdict::retry, 500, t0 + 1h)});

    const auto delivery = store.find_delivery(id, true);
    REQUIRE(delivery);
    CHECK(delivery->attempt_count == 12); // Every attempt made still counts.
    std::vector<unsigned> numbers;
    for (const Attempt& attempt : delivery->attempts)
        numbers.push_back(attempt.number);
    CHECK(numbers == std::vector<unsigned>{12, 11, 10, 9, 8});
    CHECK(delivery->attempts.front().response_body == "answer 12");

    numbers.clear();
    std::size_t pages = 0;
    AttemptQuery query{.before = 0, .limit = 2};
    while (true) {
        const AttemptPage page = store.list_attempts(id, query);
        ++pages;
        CHECK(page.stored == 5);
        for (const Attempt& attempt : page.items)
            numbers.push_back(attempt.number);
        if (!page.next)
            break;
        query.before = *page.next;
    }
    CHECK(pages == 3);
    CHECK(numbers == std::vector<unsigned>{12, 11, 10, 9, 8});
    CHECK(store.list_attempts(id + 100, {}).items.empty());
    CHECK(store.list_attempts(id + 100, {}).stored == 0);
}

TEST_CASE("a max_hooks_per_owner of zero sets no limit", "[sqlite][limits]")
{
    SqliteStore store{":memory:", SqliteOptions{.max_hooks_per_owner = 0}};
    for (int i = 0; i < 1001; ++i)
        store.create_hook(sample_hook("alice", "https://example.com/" + std::to_string(i)));
    CHECK(active_hooks_of(store, "alice") == 1001);
}

TEST_CASE("concurrent creates on two connections never pass the hooks-per-owner limit together", "[sqlite][limits]")
{
    TempDir dir;
    const std::string path = dir.file("quota.db");
    const SqliteOptions options{.max_hooks_per_owner = 5};
    SqliteStore first{path, options};
    SqliteStore second{path, options};
    for (int i = 0; i < 4; ++i)
        first.create_hook(sample_hook("alice", "https://example.com/" + std::to_string(i)));

    SqliteStore* stores[] = {&first, &second};
    std::atomic<int> created{0};
    std::atomic<int> refused{0};
    run_threads(8, [&](int i) {
        try {
            stores[i % 2]->create_hook(sample_hook("alice", "https://example.com/racer-" + std::to_string(i)));
            ++created;
        } catch (const TooManyHooks&) {
            ++refused;
        }
    });
    CHECK(created == 1);
    CHECK(refused == 7);
    CHECK(active_hooks_of(second, "alice") == 5);
}

TEST_CASE("a hook whose config nests deeper than Boost.JSON's default is read back and claimed", "[sqlite]")
{
    SqliteStore store{":memory:"};
    boost::json::value deep = boost::json::array{};
    for (int level = 2; level <= 100; ++level)
        deep = boost::json::array{std::move(deep)};
    const Hook hook = store.create_hook(sample_hook("alice", "https://example.com/", "package-created", {{"deep", deep}}));

    REQUIRE(store.find_hook(hook.id));
    CHECK(store.find_hook(hook.id)->config.at("deep") == deep);
    store.enqueue_events(std::vector<NewEvent>{sample_event()});
    auto claimed = store.claim_due({.worker = "w", .now = t0, .lease = 10s, .limit = 10});
    REQUIRE(claimed.size() == 1);
    CHECK(claimed.front().hook.config.at("deep") == deep);
}

TEST_CASE("an attempt writes its hook's row only when the hook's health changes", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    SqliteStore store{path};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 5; ++i) {
        NewEvent event = sample_event();
        ids.push_back(store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0));
    }
    // A trigger, in the file's schema, counts every write of a hook row by any connection.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    const std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer{db, sqlite3_close};
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE hook_writes (n INTEGER NOT NULL);"
                         "INSERT INTO hook_writes VALUES (0);"
                         "CREATE TRIGGER count_hook_writes AFTER UPDATE ON hooks "
                         "BEGIN UPDATE hook_writes SET n = n + 1; END;",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    auto hook_writes = [&] {
        sqlite3_stmt* select = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "SELECT n FROM hook_writes", -1, &select, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(select) == SQLITE_ROW);
        const int n = sqlite3_column_int(select, 0);
        sqlite3_finalize(select);
        return n;
    };
    auto delivered = [](std::int64_t id, unsigned number) {
        return attempt_report(id, "w", number, AttemptVerdict::delivered, 200);
    };
    auto failed = [](std::int64_t id, unsigned number) {
        return attempt_report(id, "w", number, AttemptVerdict::retry, 500, t0 + 1h);
    };

    store.record_attempts(std::vector{delivered(ids[0], 1), delivered(ids[1], 1)});
    CHECK(hook_writes() == 0); // healthy, and still healthy
    store.record_attempts(std::vector{failed(ids[2], 1)});
    CHECK(hook_writes() == 1); // a run of failures starts
    store.record_attempts(std::vector{failed(ids[2], 2)});
    CHECK(hook_writes() == 2); // and grows
    store.record_attempts(std::vector{delivered(ids[2], 3)});
    CHECK(hook_writes() == 3); // the hook recovers
    store.record_attempts(std::vector{delivered(ids[3], 1), delivered(ids[4], 1)});
    CHECK(hook_writes() == 3);
    CHECK(store.find_hook(store.find_delivery(ids[2])->hook_id)->failed_attempts == 0);
}

TEST_CASE("checkpoint moves a grown write-ahead log into the database file; small commits leave it to it",
          "[sqlite]")
{
    test::TempDir dir;
    const std::string path = dir.file("whisperer.db");
    SqliteStore store(path);
    store.create_hook(sample_hook("alice", "https://a.example/"));
    store.checkpoint(); // Nothing to do yet.
    const auto size = [&] { return std::filesystem::file_size(path); };
    const auto database_before = size();

    // About 8 MiB of events: past checkpoint()'s threshold (4 MiB), below the commits' own (32 MiB).
    std::vector<NewEvent> events;
    for (int i = 0; i < 4000; ++i) {
        NewEvent event = sample_event();
        event.body = std::string(2000, 'x');
        events.push_back(std::move(event));
    }
    for (std::size_t i = 0; i < events.size(); i += 500)
        store.enqueue_events(std::span(events).subspan(i, 500));
    CHECK(size() < database_before + 1024 * 1024); // Everything is still in the log.
    CHECK(std::filesystem::file_size(path + "-wal") > 8 * 1024 * 1024);

    store.checkpoint();
    CHECK(size() > database_before + 8 * 1024 * 1024);
    CHECK(store.list_deliveries({}).items.size() > 0);
}

TEST_CASE("a new database file gets the configured page size; an existing one keeps its own", "[sqlite]")
{
    test::TempDir dir;
    const auto page_size = [](const std::string& path) { return test::query_int(path, "PRAGMA page_size").value_or(0); };
    const std::string fresh = dir.file("fresh.db");
    { SqliteStore store(fresh); }
    CHECK(page_size(fresh) == 1024);

    const std::string large = dir.file("large.db");
    { SqliteStore store(large, {.page_size = 8192}); }
    CHECK(page_size(large) == 8192);
    {
        SqliteStore store(large);
        store.create_hook(sample_hook("alice", "https://a.example/"));
    }
    CHECK(page_size(large) == 8192);
}

TEST_CASE("a page size that is not a power of two from 512 to 65536 is refused before anything is written",
          "[sqlite]")
{
    test::TempDir dir;
    const std::string path = dir.file("whisperer.db");
    for (std::size_t bad : {std::size_t{0}, std::size_t{256}, std::size_t{3000}, std::size_t{131072}})
        CHECK_THROWS_AS(SqliteStore(path, {.page_size = bad}), StoreError);
    CHECK((!std::filesystem::exists(path) || std::filesystem::file_size(path) == 0));
    CHECK_NOTHROW(SqliteStore(path, {.page_size = 512}));
}

namespace {

std::int64_t enqueue_due(SubscriptionStore& store, const std::string& event_type, TimePoint due)
{
    NewEvent event = sample_event(event_type, due);
    return store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0);
}

std::vector<std::int64_t> claimed_ids(const std::vector<ClaimedDelivery>& claimed)
{
    std::vector<std::int64_t> ids;
    for (const ClaimedDelivery& d : claimed)
        ids.push_back(d.delivery_id);
    return ids;
}

} // namespace

// A full claim keeps its walk over the hooks for the claims that follow; these are the ways the
// walk must not hide a row.
TEST_CASE("claims that follow a full claim still see every row they should", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("walk.db");
    SqliteStore store{path};
    for (const char* type : {"a-type", "b-type", "c-type"})
        store.create_hook(sample_hook(std::string("owner-") + type, "https://x.example/", type));
    std::vector<std::int64_t> a, b, c;
    for (int i = 0; i < 3; ++i) {
        a.push_back(enqueue_due(store, "a-type", t0 + 1ms * i));
        b.push_back(enqueue_due(store, "b-type", t0 + 10ms + 1ms * i));
        c.push_back(enqueue_due(store, "c-type", t0 + 20ms + 1ms * i));
    }
    const TimePoint now = t0 + 1s;
    // Full: one row each for the two hooks waiting longest.
    REQUIRE(claimed_ids(store.claim_due(claim_by("w", now, 2))) == std::vector<std::int64_t>{a[0], b[0]});

    SECTION("the next claims serve the hooks by their next rows' due times")
    {
        CHECK(claimed_ids(store.claim_due(claim_by("w", now, 2))) == std::vector<std::int64_t>{a[1], b[1]});
        CHECK(claimed_ids(store.claim_due(claim_by("w", now, 4))) == std::vector<std::int64_t>{a[2], b[2], c[0], c[1]});
    }
    SECTION("a row another connection wrote is seen by the next claim")
    {
        SqliteStore other{path};
        const Hook d_hook = other.create_hook(sample_hook("owner-d", "https://x.example/", "d-type"));
        const std::int64_t d = enqueue_due(other, "d-type", t0 - 1s); // older than every row
        const auto next = store.claim_due(claim_by("w", now, 2));
        CHECK(claimed_ids(next) == std::vector<std::int64_t>{d, a[1]});
        CHECK(next.at(0).hook.id == d_hook.id);
    }
    SECTION("a row this connection wrote is seen by the next claim")
    {
        store.create_hook(sample_hook("owner-d", "https://x.example/", "d-type"));
        const std::int64_t d = enqueue_due(store, "d-type", t0 - 1s);
        CHECK(claimed_ids(store.claim_due(claim_by("w", now, 2))) == std::vector<std::int64_t>{d, a[1]});
    }
    SECTION("a row whose lease ran out is seen by the next claim that the walk cannot fill")
    {
        // The lease of a[0] and b[0] runs out 10 s after the first claim.
        const TimePoint later = now + 10s;
        const auto rest = store.claim_due(claim_by("w2", later, 64));
        CHECK(rest.size() == 9); // Everything: the old walk is stale, and a fresh one sees all.
    }
    SECTION("a retry recorded by this connection is seen by the next claim")
    {
        store.record_attempts(std::vector{attempt_report(b[0], "w", 1, AttemptVerdict::retry, 500, t0 - 1s)});
        CHECK(claimed_ids(store.claim_due(claim_by("w", now, 2))) == std::vector<std::int64_t>{b[0], a[1]});
    }
    SECTION("a hook deactivated by this connection takes no more turns")
    {
        store.deactivate_hook(store.claim_due(claim_by("w", now, 1)).at(0).hook.id); // hook a: a[1]
        const auto next = claimed_ids(store.claim_due(claim_by("w", now, 3)));
        CHECK(next == std::vector<std::int64_t>{b[1], b[2], c[0]});
    }
}

namespace {

/// The connections SQLite opens while a `ConnectionWatch` lives, in order (an auto extension
/// sees each one), so a test can ask one of the store's own connections for its settings.
class ConnectionWatch {
public:
    ConnectionWatch()
    {
        opened().clear();
        REQUIRE(sqlite3_auto_extension(reinterpret_cast<void (*)()>(&ConnectionWatch::on_open)) == SQLITE_OK);
    }
    ~ConnectionWatch() { sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(&ConnectionWatch::on_open)); }
    ConnectionWatch(const ConnectionWatch&) = delete;
    ConnectionWatch& operator=(const ConnectionWatch&) = delete;

    /// The first connection opened since the watch began.
    sqlite3* first() const
    {
        std::lock_guard lock{mutex()};
        REQUIRE_FALSE(opened().empty());
        return opened().front();
    }

private:
    static int on_open(sqlite3* db, const char**, const sqlite3_api_routines*)
    {
        std::lock_guard lock{mutex()};
        opened().push_back(db);
        return SQLITE_OK;
    }
    static std::vector<sqlite3*>& opened()
    {
        static std::vector<sqlite3*> connections;
        return connections;
    }
    static std::mutex& mutex()
    {
        static std::mutex m;
        return m;
    }
};

int pragma_synchronous(sqlite3* db)
{
    sqlite3_stmt* select = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA synchronous", -1, &select, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(select) == SQLITE_ROW);
    const int value = sqlite3_column_int(select, 0);
    sqlite3_finalize(select);
    return value;
}

} // namespace

TEST_CASE("the store's connection runs with synchronous=FULL for full durability and NORMAL otherwise", "[sqlite]")
{
    TempDir dir;
    const auto [durability, expected] = GENERATE(std::pair{SqliteDurability::full, 2}, // SQLite's FULL
                                                 std::pair{SqliteDurability::normal, 1});
    ConnectionWatch watch;
    SqliteStore store{dir.file("whisperer.db"), SqliteOptions{.durability = durability}};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    // The store's connection is the first one it opens; it is idle between the store's calls.
    CHECK(pragma_synchronous(watch.first()) == expected);
}

TEST_CASE("record_attempts writes a batch all or nothing: one record the database refuses undoes the others",
          "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    SqliteStore store{path};
    store.create_hook(sample_hook("alice", "https://a.example/"));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 3; ++i) {
        NewEvent event = sample_event();
        ids.push_back(store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.at(0));
    }
    const auto claimed = store.claim_due(claim_by("w", t0 + 1s));
    REQUIRE(claimed.size() == 3);
    // The database refuses an attempt whose error text is "poison", as it would a full disk.
    exec_on_file(path, "CREATE TRIGGER refuse_poison BEFORE INSERT ON attempts WHEN NEW.error = 'poison' "
                       "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;");
    auto poisoned = attempt_report(ids[2], "w", 1, AttemptVerdict::retry, 500, t0 + 1h);
    poisoned.attempt.error = "poison";
    const std::vector batch{attempt_report(ids[0], "w", 1, AttemptVerdict::delivered, 200),
                            attempt_report(ids[1], "w", 1, AttemptVerdict::retry, 500, t0 + 1h), poisoned};

    CHECK_THROWS_AS(store.record_attempts(batch), StoreError);
    CHECK(query_int(path, "SELECT COUNT(*) FROM attempts") == 0);
    CHECK(query_int(path, "SELECT COUNT(*) FROM outbox WHERE lease_owner = 'w'") == 3);
    for (std::int64_t id : ids) {
        const Delivery d = *store.find_delivery(id);
        CHECK(d.state == DeliveryState::pending);
        CHECK(d.attempt_count == 0);
    }
    CHECK(store.find_hook(store.find_delivery(ids[1])->hook_id)->failed_attempts == 0);

    // Without the poisoned record the same batch is written whole.
    store.record_attempts(std::span(batch).first(2));
    CHECK(query_int(path, "SELECT COUNT(*) FROM attempts") == 2);
    CHECK(store.find_delivery(ids[0])->state == DeliveryState::delivered);
    CHECK(store.find_delivery(ids[1])->attempt_count == 1);
}

TEST_CASE("a new database file and its write-ahead log are readable by their owner only, whatever the umask",
          "[sqlite][security]")
{
    TempDir dir;
    const std::string path = dir.file("hooks.db");
    const mode_t previous = ::umask(022);
    {
        SqliteStore store{path};
        store.create_hook(sample_hook("alice", "https://example.com/hook"));
        for (const std::string& file : {path, path + "-wal", path + "-shm"}) {
            INFO(file);
            struct stat st {};
            REQUIRE(::stat(file.c_str(), &st) == 0);
            CHECK((st.st_mode & 0777) == 0600);
        }
    }
    ::umask(previous);

    // An existing file keeps the mode its owner gave it.
    const std::string shared = dir.file("shared.db");
    { std::ofstream{shared}; }
    REQUIRE(::chmod(shared.c_str(), 0640) == 0);
    SqliteStore store{shared};
    struct stat st {};
    REQUIRE(::stat(shared.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
}
