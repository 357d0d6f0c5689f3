// The behaviour every SubscriptionStore must have. Each test runs once per store in `Stores`; a new
// store joins the suite by adding a fixture type there, or, in a test binary of its own, by
// defining WHISPERER_CONFORMANCE_STORES as a tuple of its fixtures (a type with `store()`) and
// including this file (tests/postgres/postgres_conformance_test.cpp does).

#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

#include "catch.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <set>
#include <tuple>

// GCC before 14 warns about every member a designated initializer leaves to its default, which is
// the point of writing queries as `{.owner = "alice"}`.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 14
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

/// The limit the fixtures configure for stored response bodies.
constexpr std::size_t response_body_limit = 20 * 1024;

#ifdef WHISPERER_CONFORMANCE_STORES
using Stores = WHISPERER_CONFORMANCE_STORES;
#else

class SqliteInMemory {
public:
    SubscriptionStore& store() noexcept { return store_; }

private:
    SqliteStore store_{":memory:", SqliteOptions{.response_body_limit = response_body_limit}};
};

class SqliteOnFile {
public:
    SubscriptionStore& store() noexcept { return store_; }

private:
    TempDir dir_;
    SqliteStore store_{dir_.file("whisperer.db"), SqliteOptions{.response_body_limit = response_body_limit}};
};

/// Hook secrets encrypted at rest under a master key: every behaviour must stay the same.
class SqliteEncrypted {
public:
    SubscriptionStore& store() noexcept { return store_; }

private:
    TempDir dir_;
    SqliteStore store_{dir_.file("whisperer.db"), SqliteOptions{.response_body_limit = response_body_limit,
                                                                .master_key = MasterKey::generate()}};
};

using Stores = std::tuple<SqliteInMemory, SqliteOnFile, SqliteEncrypted>;
#endif

std::vector<std::int64_t> ids_of(const std::vector<Hook>& hooks)
{
    std::vector<std::int64_t> ids;
    for (const Hook& hook : hooks)
        ids.push_back(hook.id);
    return ids;
}

std::vector<std::int64_t> ids_of(const std::vector<ClaimedDelivery>& claimed)
{
    std::vector<std::int64_t> ids;
    for (const ClaimedDelivery& delivery : claimed)
        ids.push_back(delivery.delivery_id);
    return ids;
}

/// Every page of `list`, following `next` until it is absent.
template <class T, class Query, class List>
std::vector<Page<T>> all_pages(Query query, List list)
{
    std::vector<Page<T>> pages;
    do {
        pages.push_back(list(query));
        query.after = pages.back().next.value_or(0);
    } while (pages.back().next && pages.size() < 100);
    return pages;
}

void require_same_hook(const Hook& actual, const Hook& expected)
{
    CHECK(actual.id == expected.id);
    CHECK(actual.owner == expected.owner);
    CHECK(actual.target_url == expected.target_url);
    CHECK(actual.event_type == expected.event_type);
    CHECK(actual.is_active == expected.is_active);
    CHECK(actual.secret_key == expected.secret_key);
    CHECK(actual.callback == expected.callback);
    CHECK(actual.retry_countdown_config == expected.retry_countdown_config);
    CHECK(actual.additional_headers == expected.additional_headers);
    CHECK(actual.config == expected.config);
    CHECK(actual.created == expected.created);
    CHECK(actual.modified == expected.modified);
    CHECK(actual.disabled_reason == expected.disabled_reason);
    CHECK(actual.disabled_at == expected.disabled_at);
    CHECK(actual.failing_since == expected.failing_since);
    CHECK(actual.failed_attempts == expected.failed_attempts);
    CHECK(actual.retired_secrets == expected.retired_secrets);
}

/// Now, cut to what the stores keep.
TimePoint stored_now()
{
    return TimePoint{std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()))};
}

/// One event of the default type fanned out to `hook`, returning its delivery id.
std::int64_t enqueue_one(SubscriptionStore& store, NewEvent event)
{
    const auto enqueued = store.enqueue_events(std::span{&event, 1});
    REQUIRE(enqueued.size() == 1);
    REQUIRE(enqueued[0].delivery_ids.size() == 1);
    return enqueued[0].delivery_ids[0];
}

} // namespace

// --- hooks ---------------------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("a created hook gets an id and times and reads back field for field", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook", "package-created",
                                                       {{"region", "eu"}, {"auth", {{"type", "basic"}}}}));

    CHECK(created.id > 0);
    CHECK(created.created.time_since_epoch().count() > 0);
    CHECK(created.modified == created.created);
    const auto found = store.find_hook(created.id);
    REQUIRE(found);
    require_same_hook(*found, created);
    CHECK(found->config.at("auth").at("type").as_string() == "basic");
    CHECK_FALSE(store.find_hook(created.id + 1000));
}

TEMPLATE_LIST_TEST_CASE("a second active hook with the same owner, URL and event type is refused",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/hook"));

    try {
        store.create_hook(sample_hook("alice", "https://a.example/hook"));
        FAIL("a duplicate subscription was accepted");
    } catch (const WebhookAlreadyRegistered& e) {
        CHECK(e.api_code() == "webhook_100_2");
        CHECK(std::string(e.what()).find("https://a.example/hook") != std::string::npos);
    }
    CHECK_NOTHROW(store.create_hook(sample_hook("bob", "https://a.example/hook")));
    CHECK_NOTHROW(store.create_hook(sample_hook("alice", "https://a.example/hook", "package-updated")));
    CHECK(store.list_hooks({}).items.size() == 3);
}

TEMPLATE_LIST_TEST_CASE("a soft-deleted hook stays readable and can be subscribed again", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook first = store.create_hook(sample_hook("alice", "https://a.example/hook"));

    REQUIRE(store.deactivate_hook(first.id));
    const auto deleted = store.find_hook(first.id);
    REQUIRE(deleted);
    CHECK_FALSE(deleted->is_active);
    CHECK(deleted->disabled_reason.empty());
    CHECK_FALSE(deleted->disabled_at);

    const Hook second = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    CHECK(second.id != first.id);
    CHECK(second.is_active);
    CHECK_FALSE(store.deactivate_hook(second.id + 1000));
}

TEMPLATE_LIST_TEST_CASE("deactivating with a reason records why and when", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/hook"));

    REQUIRE(store.deactivate_hook(hook.id, "too many consecutive failures"));
    const auto disabled = store.find_hook(hook.id);
    REQUIRE(disabled);
    CHECK_FALSE(disabled->is_active);
    CHECK(disabled->disabled_reason == "too many consecutive failures");
    CHECK(disabled->disabled_at);
    CHECK(store.active_hooks("package-created").empty());
}

TEMPLATE_LIST_TEST_CASE("update_hook replaces every field but id and created", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));

    Hook change = created;
    change.target_url = "https://b.example/other";
    change.secret_key = "rotated";
    change.config = {{"region", "us"}};
    change.additional_headers = {};
    change.created = t0; // ignored
    const Hook updated = store.update_hook(change);

    CHECK(updated.id == created.id);
    CHECK(updated.created == created.created);
    CHECK(updated.modified >= created.modified);
    CHECK(updated.target_url == "https://b.example/other");
    CHECK(updated.secret_key == "rotated");
    CHECK(updated.config == boost::json::object{{"region", "us"}});
    CHECK(updated.additional_headers.empty());
    require_same_hook(*store.find_hook(created.id), updated);

    change.id = created.id + 1000;
    CHECK_THROWS_AS(store.update_hook(change), WebhookDoesNotExist);
}

TEMPLATE_LIST_TEST_CASE("an update that would duplicate an active hook is refused and changes nothing",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook first = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    const Hook second = store.create_hook(sample_hook("alice", "https://b.example/hook"));

    Hook change = second;
    change.target_url = first.target_url;
    change.secret_key = "changed";
    try {
        store.update_hook(change);
        FAIL("the duplicate update was accepted");
    } catch (const WebhookAlreadyRegistered& e) {
        CHECK(e.api_code() == "webhook_100_2");
    }
    require_same_hook(*store.find_hook(second.id), second);

    SECTION("re-activating a deleted hook whose subscription is taken again is refused too")
    {
        REQUIRE(store.deactivate_hook(first.id));
        store.create_hook(sample_hook("alice", "https://a.example/hook"));
        Hook revive = *store.find_hook(first.id);
        revive.is_active = true;
        CHECK_THROWS_AS(store.update_hook(revive), WebhookAlreadyRegistered);
        CHECK_FALSE(store.find_hook(first.id)->is_active);
    }
}

TEMPLATE_LIST_TEST_CASE("list_hooks pages through hooks in id order", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    std::vector<std::int64_t> created;
    for (int i = 0; i < 7; ++i)
        created.push_back(store.create_hook(sample_hook("alice", "https://a.example/" + std::to_string(i))).id);

    HookQuery query;
    query.limit = 3;
    const auto pages = all_pages<Hook>(query, [&](const HookQuery& q) { return store.list_hooks(q); });

    REQUIRE(pages.size() == 3);
    CHECK(pages[0].items.size() == 3);
    CHECK(pages[1].items.size() == 3);
    CHECK(pages[2].items.size() == 1);
    CHECK(pages[0].next == pages[0].items.back().id);
    CHECK_FALSE(pages[2].next);
    std::vector<std::int64_t> listed;
    for (const auto& page : pages)
        for (const Hook& hook : page.items)
            listed.push_back(hook.id);
    CHECK(listed == created);

    SECTION("a last page that is exactly full says there is nothing after it")
    {
        query.limit = 7;
        const auto page = store.list_hooks(query);
        CHECK(page.items.size() == 7);
        CHECK_FALSE(page.next);
    }
    SECTION("a page size of zero is raised to one")
    {
        query.limit = 0;
        const auto page = store.list_hooks(query);
        CHECK(page.items.size() == 1);
        CHECK(page.next == created[0]);
    }
}

TEMPLATE_LIST_TEST_CASE("list_hooks filters by owner, URL, event type and activity", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook a1 = store.create_hook(sample_hook("alice", "https://a.example/1"));
    const Hook a2 = store.create_hook(sample_hook("alice", "https://a.example/2", "package-updated"));
    const Hook b1 = store.create_hook(sample_hook("bob", "https://a.example/1"));
    store.deactivate_hook(a2.id);

    auto list = [&](HookQuery query) { return ids_of(store.list_hooks(query).items); };
    using Ids = std::vector<std::int64_t>;
    CHECK(list({.owner = "alice"}) == Ids{a1.id, a2.id});
    CHECK(list({.owner = ""}) == Ids{a1.id, a2.id, b1.id});
    CHECK(list({}) == Ids{a1.id, a2.id, b1.id});
    CHECK(list({.target_url = "https://a.example/1"}) == Ids{a1.id, b1.id});
    CHECK(list({.event_type = "package-updated"}) == Ids{a2.id});
    CHECK(list({.is_active = true}) == Ids{a1.id, b1.id});
    CHECK(list({.is_active = false}) == Ids{a2.id});
    CHECK(list({.owner = "bob", .target_url = "https://a.example/1", .event_type = "package-created"}) ==
          Ids{b1.id});
    CHECK(list({.owner = "carol"}).empty());
    CHECK(list({.after = a1.id}) == Ids{a2.id, b1.id});
}

TEMPLATE_LIST_TEST_CASE("list_hooks returns at most 1000 hooks per page", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    // Two owners, so that no owner reaches the store's limit of active hooks.
    for (int i = 0; i < 1001; ++i)
        store.create_hook(sample_hook(i % 2 == 0 ? "alice" : "bob", "https://a.example/" + std::to_string(i)));

    const auto page = store.list_hooks({.limit = 5000});
    CHECK(page.items.size() == 1000);
    CHECK(page.next == page.items.back().id);
}

TEMPLATE_LIST_TEST_CASE("active_hooks returns the active hooks of a type whose config matches", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook eu = store.create_hook(sample_hook("alice", "https://a.example/eu", "package-created",
                                                  {{"region", "eu"}, {"tier", 1}}));
    const Hook us = store.create_hook(sample_hook("alice", "https://a.example/us", "package-created",
                                                  {{"region", "us"}, {"tier", 1}}));
    const Hook plain = store.create_hook(sample_hook("bob", "https://b.example/", "package-created"));
    store.create_hook(sample_hook("bob", "https://b.example/", "package-updated", {{"region", "eu"}}));
    const Hook gone = store.create_hook(sample_hook("carol", "https://c.example/", "package-created",
                                                    {{"region", "eu"}}));
    store.deactivate_hook(gone.id);

    using Ids = std::vector<std::int64_t>;
    CHECK(ids_of(store.active_hooks("package-created")) == Ids{eu.id, us.id, plain.id});
    CHECK(ids_of(store.active_hooks("package-created", {{"region", "eu"}})) == Ids{eu.id});
    CHECK(ids_of(store.active_hooks("package-created", {{"tier", 1}})) == Ids{eu.id, us.id});
    CHECK(ids_of(store.active_hooks("package-created", {{"tier", "1"}})).empty());
    CHECK(ids_of(store.active_hooks("package-created", {{"region", "eu"}, {"tier", 2}})).empty());
    CHECK(store.active_hooks("package-deleted").empty());
    require_same_hook(store.active_hooks("package-created", {{"region", "us"}}).at(0), us);
}

// --- secret rotation -----------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("rotate_secret makes the new secret current and keeps the old one signing until the "
                        "grace period ends", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    const TimePoint now = stored_now();

    const Hook rotated = store.rotate_secret(created.id, {.new_secret = "new-secret", .grace_period = 1h});
    CHECK(rotated.secret_key == "new-secret");
    REQUIRE(rotated.retired_secrets.size() == 1);
    CHECK(rotated.retired_secrets[0].secret == "secret-of-alice");
    CHECK(rotated.retired_secrets[0].expires >= now + 1h);
    CHECK(rotated.retired_secrets[0].expires <= Clock::now() + 1h);
    CHECK(rotated.modified >= created.modified);
    CHECK(rotated.target_url == created.target_url);
    require_same_hook(*store.find_hook(created.id), rotated);

    // The workers get both secrets with the delivery, and sign with both.
    enqueue_one(store, sample_event("package-created", now));
    const auto claimed = store.claim_due(claim_by("w", Clock::now()));
    REQUIRE(claimed.size() == 1);
    CHECK(signing_secrets(claimed[0].hook, Clock::now()) == std::vector<std::string>{"new-secret", "secret-of-alice"});
    CHECK(signing_secrets(claimed[0].hook, rotated.retired_secrets[0].expires) ==
          std::vector<std::string>{"new-secret"});
}

TEMPLATE_LIST_TEST_CASE("rotate_secret without a new secret generates a whsec_ one", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));

    const Hook first = store.rotate_secret(created.id, {});
    const Hook second = store.rotate_secret(created.id, {});
    CHECK(first.secret_key.starts_with("whsec_"));
    CHECK(standard_signing_key(first.secret_key).size() == 32);
    CHECK(second.secret_key.starts_with("whsec_"));
    CHECK(second.secret_key != first.secret_key);
    CHECK(store.find_hook(created.id)->secret_key == second.secret_key);
    REQUIRE(second.retired_secrets.size() == 2);
    CHECK(second.retired_secrets[0].secret == first.secret_key);
    CHECK(second.retired_secrets[1].secret == "secret-of-alice");
}

TEMPLATE_LIST_TEST_CASE("rotate_secret keeps at most ten retired secrets, dropping the oldest", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    for (int i = 1; i <= 12; ++i)
        store.rotate_secret(created.id, {.new_secret = "secret-" + std::to_string(i)});

    const Hook hook = *store.find_hook(created.id);
    CHECK(hook.secret_key == "secret-12");
    REQUIRE(hook.retired_secrets.size() == 10);
    for (std::size_t i = 0; i < 10; ++i)
        CHECK(hook.retired_secrets[i].secret == "secret-" + std::to_string(11 - i));
}

TEMPLATE_LIST_TEST_CASE("expired retired secrets are left out of every read and dropped at the next rotation",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    // A rotation two hours ago with a grace period of one hour: its old secret has expired.
    const Hook past =
        store.rotate_secret(created.id, {.new_secret = "second", .grace_period = 1h, .now = Clock::now() - 2h});
    REQUIRE(past.retired_secrets.size() == 1);
    CHECK(past.retired_secrets[0].secret == "secret-of-alice");

    CHECK(store.find_hook(created.id)->retired_secrets.empty());
    CHECK(store.list_hooks({.owner = "alice"}).items.at(0).retired_secrets.empty());
    CHECK(store.active_hooks("package-created").at(0).retired_secrets.empty());
    enqueue_one(store, sample_event("package-created", t0));
    const auto claimed = store.claim_due(claim_by("w", Clock::now()));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].hook.retired_secrets.empty());
    CHECK(signing_secrets(claimed[0].hook, Clock::now()) == std::vector<std::string>{"second"});

    const Hook rotated = store.rotate_secret(created.id, {.new_secret = "third"});
    REQUIRE(rotated.retired_secrets.size() == 1);
    CHECK(rotated.retired_secrets[0].secret == "second");
    require_same_hook(*store.find_hook(created.id), rotated);

    // A claim made at a later time leaves out what has expired by then.
    store.release_leases("w", std::vector{claimed[0].delivery_id});
    const auto late = store.claim_due(claim_by("w", Clock::now() + 25h));
    REQUIRE(late.size() == 1);
    CHECK(late[0].hook.retired_secrets.empty());
}

TEMPLATE_LIST_TEST_CASE("a rotation with a zero grace period ends every old secret", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    store.rotate_secret(created.id, {.new_secret = "second"});
    const Hook rotated = store.rotate_secret(created.id, {.new_secret = "third", .grace_period = 0s});
    CHECK(rotated.retired_secrets.empty());
    CHECK(store.find_hook(created.id)->retired_secrets.empty());
    CHECK(store.find_hook(created.id)->secret_key == "third");
}

TEMPLATE_LIST_TEST_CASE("an invalid rotation, or one of a missing hook, is refused and changes nothing",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook created = store.create_hook(sample_hook("alice", "https://a.example/hook"));
    const Hook before = store.rotate_secret(created.id, {.new_secret = "second"});

    auto refused_field = [&](const SecretRotation& rotation) -> std::string {
        try {
            store.rotate_secret(created.id, rotation);
        } catch (const ValidationError& e) {
            return e.field();
        }
        return "accepted";
    };
    CHECK(refused_field({.grace_period = -1s}) == "grace_period");
    CHECK(refused_field({.grace_period = max_grace_period + 1s}) == "grace_period");
    CHECK(refused_field({.new_secret = "second"}) == "secret_key");
    CHECK_THROWS_AS(store.rotate_secret(created.id + 1000, {}), WebhookDoesNotExist);
    require_same_hook(*store.find_hook(created.id), before);
}

TEMPLATE_LIST_TEST_CASE("create_hook and update_hook leave retired secrets to rotate_secret", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    Hook with_retired = sample_hook("alice", "https://a.example/hook");
    with_retired.retired_secrets = {{"smuggled", Clock::now() + 1h}};
    const Hook created = store.create_hook(with_retired);
    CHECK(created.retired_secrets.empty());
    CHECK(store.find_hook(created.id)->retired_secrets.empty());

    const Hook rotated = store.rotate_secret(created.id, {.new_secret = "second"});
    Hook change = rotated;
    change.target_url = "https://b.example/hook";
    change.retired_secrets.clear();
    const Hook updated = store.update_hook(change);
    CHECK(updated.retired_secrets == rotated.retired_secrets);
    CHECK(store.find_hook(created.id)->retired_secrets == rotated.retired_secrets);
}

// --- events and deliveries -----------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("an event fans out to every matching active hook with one delivery each", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    std::vector<Hook> receivers;
    for (int i = 0; i < 3; ++i)
        receivers.push_back(store.create_hook(sample_hook("owner" + std::to_string(i), "https://r.example/",
                                                          "package-created", {{"region", "eu"}})));
    store.create_hook(sample_hook("other", "https://r.example/", "package-updated", {{"region", "eu"}}));
    store.create_hook(sample_hook("us", "https://r.example/", "package-created", {{"region", "us"}}));
    const Hook deleted = store.create_hook(sample_hook("gone", "https://r.example/", "package-created"));
    store.deactivate_hook(deleted.id);

    NewEvent event = sample_event("package-created", t0 + 5s);
    event.config_filter = {{"region", "eu"}};
    const auto enqueued = store.enqueue_events(std::span{&event, 1});

    REQUIRE(enqueued.size() == 1);
    CHECK(enqueued[0].uuid == event.uuid);
    CHECK_FALSE(enqueued[0].duplicate);
    REQUIRE(enqueued[0].delivery_ids.size() == 3);

    const auto deliveries = store.deliveries_of_event(event.uuid);
    REQUIRE(deliveries.size() == 3);
    for (std::size_t i = 0; i < deliveries.size(); ++i) {
        const Delivery& delivery = deliveries[i];
        CHECK(delivery.id == enqueued[0].delivery_ids[i]);
        CHECK(delivery.hook_id == receivers[i].id);
        CHECK(delivery.owner == receivers[i].owner);
        CHECK(delivery.event_uuid == event.uuid);
        CHECK(delivery.event_type == "package-created");
        CHECK(delivery.request_body == event.body);
        CHECK(delivery.object_ref == "package:7");
        CHECK(delivery.state == DeliveryState::pending);
        CHECK(delivery.attempt_count == 0);
        CHECK(delivery.next_attempt_at == t0 + 5s);
        CHECK(delivery.created == t0);
    }
    const auto outbox = store.list_outbox({});
    REQUIRE(outbox.items.size() == 3);
    CHECK(outbox.items[0].due == t0 + 5s);
    CHECK_FALSE(outbox.items[0].lease_expires);
}

TEMPLATE_LIST_TEST_CASE("an event that no hook wants is stored without deliveries", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/", "package-updated"));

    NewEvent event = sample_event("package-created");
    const auto enqueued = store.enqueue_events(std::span{&event, 1});

    REQUIRE(enqueued.size() == 1);
    CHECK(enqueued[0].delivery_ids.empty());
    CHECK_FALSE(enqueued[0].duplicate);
    CHECK(store.deliveries_of_event(event.uuid).empty());
    CHECK_FALSE(store.next_due());
}

TEMPLATE_LIST_TEST_CASE("an event with a used idempotency key returns the first uuid and writes nothing",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    NewEvent first = sample_event();
    first.idempotency_key = "order-42";
    NewEvent again = sample_event();
    again.idempotency_key = "order-42";
    NewEvent other = sample_event();
    other.idempotency_key = "order-43";

    const auto enqueued_first = store.enqueue_events(std::span{&first, 1});
    std::vector<NewEvent> batch{again, other, again};
    const auto enqueued = store.enqueue_events(batch);

    REQUIRE(enqueued.size() == 3);
    CHECK(enqueued[0].duplicate);
    CHECK(enqueued[0].uuid == first.uuid);
    CHECK(enqueued[0].delivery_ids.empty());
    CHECK_FALSE(enqueued[1].duplicate);
    CHECK(enqueued[1].delivery_ids.size() == 1);
    CHECK(enqueued[2].duplicate);
    CHECK(enqueued[2].uuid == first.uuid);
    CHECK(store.deliveries_of_event(again.uuid).empty());
    CHECK(store.deliveries_of_event(first.uuid).size() == 1);
    CHECK(store.list_outbox({}).items.size() == 2);
}

TEMPLATE_LIST_TEST_CASE("a batch that cannot be written entirely writes nothing", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    NewEvent fine = sample_event();
    NewEvent clash = sample_event();
    clash.uuid = fine.uuid;
    std::vector<NewEvent> batch{fine, clash};

    CHECK_THROWS_AS(store.enqueue_events(batch), StoreError);
    CHECK(store.deliveries_of_event(fine.uuid).empty());
    CHECK(store.list_outbox({}).items.empty());
    CHECK_FALSE(store.next_due());
}

TEMPLATE_LIST_TEST_CASE("list_deliveries filters by owner, type, event, status, outcome, time and hook",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook alice = store.create_hook(sample_hook("alice", "https://a.example/"));
    const Hook bob = store.create_hook(sample_hook("bob", "https://b.example/"));
    store.create_hook(sample_hook("bob", "https://b.example/", "package-updated"));

    NewEvent early = sample_event();
    NewEvent late = sample_event();
    late.created = t0 + 1h;
    NewEvent updated = sample_event("package-updated");
    std::vector<NewEvent> batch{early, late, updated};
    const auto enqueued = store.enqueue_events(batch);
    const std::int64_t alice_early = enqueued[0].delivery_ids[0];
    const std::int64_t bob_early = enqueued[0].delivery_ids[1];
    const std::int64_t alice_late = enqueued[1].delivery_ids[0];
    const std::int64_t bob_late = enqueued[1].delivery_ids[1];
    const std::int64_t bob_updated = enqueued[2].delivery_ids[0];

    store.claim_due(claim_by("w", t0));
    const std::vector<AttemptRecord> reports{
        attempt_report(alice_early, "w", 1, AttemptVerdict::delivered, 200),
        attempt_report(bob_early, "w", 1, AttemptVerdict::failed, 410),
    };
    store.record_attempts(reports);

    auto list = [&](DeliveryQuery query) {
        std::vector<std::int64_t> ids;
        for (const Delivery& delivery : store.list_deliveries(query).items)
            ids.push_back(delivery.id);
        return ids;
    };
    using Ids = std::vector<std::int64_t>;
    CHECK(list({}) == Ids{alice_early, bob_early, alice_late, bob_late, bob_updated});
    CHECK(list({.owner = "alice"}) == Ids{alice_early, alice_late});
    CHECK(list({.owner = ""}).size() == 5);
    CHECK(list({.event_type = "package-updated"}) == Ids{bob_updated});
    CHECK(list({.event_uuid = late.uuid}) == Ids{alice_late, bob_late});
    CHECK(list({.response_status = 410}) == Ids{bob_early});
    CHECK(list({.delivered = true}) == Ids{alice_early});
    CHECK(list({.delivered = false}) == Ids{bob_early, alice_late, bob_late, bob_updated});
    CHECK(list({.created_from = t0 + 1h}) == Ids{alice_late, bob_late});
    CHECK(list({.created_until = t0}) == Ids{alice_early, bob_early, bob_updated});
    CHECK(list({.hook_id = bob.id}) == Ids{bob_early, bob_late});
    CHECK(list({.owner = "bob", .delivered = false, .hook_id = alice.id}).empty());

    const auto pages = all_pages<Delivery>(DeliveryQuery{.limit = 2},
                                           [&](const DeliveryQuery& q) { return store.list_deliveries(q); });
    REQUIRE(pages.size() == 3);
    CHECK(pages[2].items.size() == 1);
    CHECK(pages[2].items[0].id == bob_updated);
}

// --- claiming ------------------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("claim_due leases due rows, oldest due first, up to the limit", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const NewEvent later = sample_event("package-created", t0 + 1s);
    const NewEvent sooner = sample_event("package-created", t0);
    const NewEvent future = sample_event("package-created", t0 + 2s);
    const std::int64_t later_id = enqueue_one(store, later);
    const std::int64_t sooner_id = enqueue_one(store, sooner);
    enqueue_one(store, future);

    SECTION("only rows that are due, in due order")
    {
        const auto claimed = store.claim_due(claim_by("w", t0 + 1s));
        REQUIRE(ids_of(claimed) == std::vector<std::int64_t>{sooner_id, later_id});
        const ClaimedDelivery& first = claimed[0];
        CHECK(first.event_uuid == sooner.uuid);
        CHECK(first.event_type == "package-created");
        CHECK(first.body == sooner.body);
        CHECK(first.attempt_count == 0);
        CHECK(first.created == t0);
        require_same_hook(first.hook, hook);
        CHECK(store.claim_due(claim_by("w", t0 + 1s)).empty());
    }
    SECTION("no more than the limit")
    {
        CHECK(ids_of(store.claim_due(claim_by("w", t0 + 5s, 1))) == std::vector<std::int64_t>{sooner_id});
        CHECK(store.claim_due(claim_by("w", t0 + 5s, 5)).size() == 2);
        CHECK(store.claim_due(claim_by("w", t0 + 5s, 0)).empty());
    }
}

TEMPLATE_LIST_TEST_CASE("deliveries handed off at enqueue are leased to their worker and come back ready to send",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook a = store.create_hook(sample_hook("alice", "https://a.example/"));
    const Hook b = store.create_hook(sample_hook("alice", "https://b.example/"));
    const Hook c = store.create_hook(sample_hook("alice", "https://c.example/"));
    REQUIRE(store.deactivate_hook(c.id)); // Chosen when the event was accepted, inactive now.

    NewEvent event = sample_event();
    event.hook_ids = std::vector<std::int64_t>{a.id, b.id, c.id};
    event.handoff_hook_ids = {a.id, c.id};
    event.handoff_worker = "w";
    event.handoff_lease = 10s;
    const TimePoint before = Clock::now();
    const EnqueuedEvent written = store.enqueue_events(std::span(&event, 1)).at(0);
    const TimePoint after = Clock::now();
    REQUIRE(written.delivery_ids.size() == 3);

    // Only the active hook's delivery is handed off, with everything needed to send it.
    REQUIRE(written.handed_off.size() == 1);
    const ClaimedDelivery& sent = written.handed_off[0];
    CHECK(sent.delivery_id == written.delivery_ids[0]);
    CHECK(sent.event_uuid == event.uuid);
    CHECK(sent.event_type == event.event_type);
    CHECK(sent.body == event.body);
    CHECK(sent.attempt_count == 0);
    CHECK(sent.created == t0);
    require_same_hook(sent.hook, a);

    // Leased to "w" for 10 s from the write: another worker claims the unleased row of b, not
    // a's; c is inactive.
    CHECK(ids_of(store.claim_due(claim_by("x", after + 1s))) == std::vector<std::int64_t>{written.delivery_ids[1]});
    const auto outbox = store.list_outbox({}).items;
    const auto entry = std::find_if(outbox.begin(), outbox.end(),
                                    [&](const OutboxEntry& e) { return e.delivery_id == sent.delivery_id; });
    REQUIRE(entry != outbox.end());
    REQUIRE(entry->lease_expires);
    CHECK(*entry->lease_expires >= before + 10s - 1ms);
    CHECK(*entry->lease_expires <= after + 10s + 1ms);
    // If "w" never reports, the row is claimable once the lease runs out.
    CHECK(ids_of(store.claim_due(claim_by("x", after + 10500ms))) == std::vector<std::int64_t>{sent.delivery_id});

    // Its outcome is recorded like a claimed delivery's.
    store.record_attempts(std::vector{attempt_report(sent.delivery_id, "x", 1, AttemptVerdict::delivered, 200)});
    CHECK(store.find_delivery(sent.delivery_id)->state == DeliveryState::delivered);
}

TEMPLATE_LIST_TEST_CASE("a duplicate event hands nothing off", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook a = store.create_hook(sample_hook("alice", "https://a.example/"));
    NewEvent event = sample_event();
    event.hook_ids = std::vector<std::int64_t>{a.id};
    REQUIRE(store.enqueue_events(std::span(&event, 1)).at(0).delivery_ids.size() == 1);

    event.replayed = true;
    event.handoff_hook_ids = {a.id};
    event.handoff_worker = "w";
    event.handoff_lease = 10s;
    const EnqueuedEvent again = store.enqueue_events(std::span(&event, 1)).at(0);
    CHECK(again.duplicate);
    CHECK(again.handed_off.empty());
    CHECK(store.list_outbox({}).items.size() == 1);
}

TEMPLATE_LIST_TEST_CASE("every claim sends with the hook as stored then: changed fields, rotated and expired "
                        "secrets, health", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    // Claims one new delivery and, unless told to keep it, records it as delivered.
    auto claim_one = [&](TimePoint now, bool keep = false) {
        enqueue_one(store, sample_event("package-created", now));
        auto claimed = store.claim_due(claim_by("w", now));
        REQUIRE(claimed.size() == 1);
        if (!keep)
            store.record_attempts(
                std::vector{attempt_report(claimed[0].delivery_id, "w", 1, AttemptVerdict::delivered, 200)});
        return claimed[0];
    };
    CHECK(claim_one(t0).hook.target_url == "https://a.example/");

    Hook changed = *store.find_hook(hook.id);
    changed.target_url = "https://b.example/";
    changed.additional_headers = {{"X-Tenant", "bob"}};
    store.update_hook(changed);
    const Hook after_update = claim_one(t0 + 1s).hook;
    CHECK(after_update.target_url == "https://b.example/");
    CHECK(after_update.additional_headers == boost::json::object{{"X-Tenant", "bob"}});

    store.rotate_secret(hook.id, {.new_secret = "new-secret", .grace_period = 1h, .now = t0});
    const Hook during_grace = claim_one(t0 + 2s).hook;
    CHECK(during_grace.secret_key == "new-secret");
    REQUIRE(during_grace.retired_secrets.size() == 1);
    CHECK(during_grace.retired_secrets[0].secret == hook.secret_key);
    const ClaimedDelivery late = claim_one(t0 + 2h, true);
    CHECK(late.hook.retired_secrets.empty()); // Expired between two claims.
    CHECK(late.hook.failed_attempts == 0);

    store.record_attempts(std::vector{attempt_report(late.delivery_id, "w", 1, AttemptVerdict::retry, 500, t0 + 5h)});
    const Hook failing = claim_one(t0 + 3h).hook;
    CHECK(failing.failed_attempts == 1);
    CHECK(failing.failing_since);
}

TEMPLATE_LIST_TEST_CASE("a leased row is claimed again only after its lease expires", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());

    REQUIRE(store.claim_due(claim_by("a", t0)).size() == 1);
    const auto entry = store.list_outbox({}).items.at(0);
    CHECK(entry.lease_expires == t0 + 10s);
    CHECK(store.claim_due(claim_by("b", t0 + 9s)).empty());
    CHECK(ids_of(store.claim_due(claim_by("b", t0 + 10s))) == std::vector<std::int64_t>{id});
    CHECK(store.list_outbox({}).items.at(0).lease_expires == t0 + 20s);
}

TEMPLATE_LIST_TEST_CASE("renewing leases keeps rows leased, and only the holder can renew", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("a", t0)).size() == 1);
    const std::vector<std::int64_t> ids{id};

    store.renew_leases("a", ids, t0 + 30s);
    store.renew_leases("b", ids, t0 + 100s);

    CHECK(store.list_outbox({}).items.at(0).lease_expires == t0 + 30s);
    CHECK(store.claim_due(claim_by("b", t0 + 20s)).empty());
    CHECK(store.claim_due(claim_by("b", t0 + 30s)).size() == 1);
}

TEMPLATE_LIST_TEST_CASE("released leases make rows claimable at once, and only the holder can release",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("a", t0)).size() == 1);
    const std::vector<std::int64_t> ids{id};

    store.release_leases("b", ids);
    CHECK(store.claim_due(claim_by("c", t0 + 1s)).empty());

    store.release_leases("a", ids);
    CHECK_FALSE(store.list_outbox({}).items.at(0).lease_expires);
    CHECK(ids_of(store.claim_due(claim_by("c", t0 + 1s))) == ids);
}

TEMPLATE_LIST_TEST_CASE("claim_due takes no rows of a hook whose limit is zero", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook saturated = store.create_hook(sample_hook("alice", "https://slow.example/"));
    store.create_hook(sample_hook("bob", "https://fast.example/"));
    const auto enqueued = store.enqueue_events(std::vector<NewEvent>{sample_event()});
    REQUIRE(enqueued.at(0).delivery_ids.size() == 2);

    ClaimRequest request = claim_by("w", t0);
    request.hook_limits = {{.hook_id = saturated.id, .limit = 0}, {.hook_id = 999, .limit = 0}};
    const auto claimed = store.claim_due(request);

    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].hook.target_url == "https://fast.example/");
    CHECK(store.claim_due(claim_by("w", t0)).at(0).hook.id == saturated.id);
}

TEMPLATE_LIST_TEST_CASE("claim_due takes at most each hook's limit, serving the hooks waiting longest first",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook busy = store.create_hook(sample_hook("alice", "https://busy.example/", "busy-type"));
    const Hook quiet = store.create_hook(sample_hook("bob", "https://quiet.example/", "quiet-type"));
    const Hook late = store.create_hook(sample_hook("carol", "https://late.example/", "late-type"));
    // The busy hook's backlog is older than everything else and larger than any limit.
    std::vector<std::int64_t> busy_ids;
    for (int i = 0; i < 10; ++i)
        busy_ids.push_back(enqueue_one(store, sample_event("busy-type", t0 + 1ms * i)));
    const std::int64_t quiet_first = enqueue_one(store, sample_event("quiet-type", t0 + 5ms));
    const std::int64_t quiet_second = enqueue_one(store, sample_event("quiet-type", t0 + 20ms));
    const std::int64_t late_id = enqueue_one(store, sample_event("late-type", t0 + 30ms));
    auto hooks_of = [](const std::vector<ClaimedDelivery>& claimed) {
        std::multiset<std::int64_t> hooks;
        for (const ClaimedDelivery& delivery : claimed)
            hooks.insert(delivery.hook.id);
        return hooks;
    };

    SECTION("the per-hook limit leaves room for every hook, and the rows come in due order")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 10);
        request.per_hook_limit = 3;
        const auto claimed = store.claim_due(request);
        CHECK(ids_of(claimed) ==
              std::vector<std::int64_t>{busy_ids[0], busy_ids[1], busy_ids[2], quiet_first, quiet_second, late_id});
        CHECK(hooks_of(claimed).count(busy.id) == 3);
    }
    SECTION("when the limit in all runs out, each hook gets a share before any gets more")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 4);
        request.per_hook_limit = 2;
        // One row each, then the room left to the hook that has waited longest.
        CHECK(ids_of(store.claim_due(request)) ==
              std::vector<std::int64_t>{busy_ids[0], busy_ids[1], quiet_first, late_id});
        // The next claim, with the busy hook at its limit, serves the row left out.
        request.hook_limits = {{.hook_id = busy.id, .limit = 0}};
        CHECK(ids_of(store.claim_due(request)) == std::vector<std::int64_t>{quiet_second});
    }
    SECTION("with fewer rows allowed than hooks waiting, the hooks waiting longest are served")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 2);
        CHECK(ids_of(store.claim_due(request)) == std::vector<std::int64_t>{busy_ids[0], quiet_first});
        CHECK(ids_of(store.claim_due(request)) == std::vector<std::int64_t>{busy_ids[1], quiet_second});
        // The late hook's row is now the oldest waiting of any hook but the busy one's.
        CHECK(ids_of(store.claim_due(request)) == std::vector<std::int64_t>{busy_ids[2], late_id});
    }
    SECTION("with a minimum share, the hooks waiting longest take that many each, the others wait")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 4);
        request.min_share = 2;
        // Three hooks wait and four rows fit: two each for the two hooks waiting longest.
        CHECK(ids_of(store.claim_due(request)) ==
              std::vector<std::int64_t>{busy_ids[0], busy_ids[1], quiet_first, quiet_second});
        // The late hook, left out, is served by the next claim.
        request.limit = 3;
        CHECK(ids_of(store.claim_due(request)) == std::vector<std::int64_t>{busy_ids[2], busy_ids[3], late_id});
    }
    SECTION("a minimum share stays within each hook's limit")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 6);
        request.min_share = 8;
        request.per_hook_limit = 3;
        const auto hooks = hooks_of(store.claim_due(request));
        CHECK(hooks.count(busy.id) == 3);
        CHECK(hooks.count(quiet.id) == 2);
        CHECK(hooks.count(late.id) == 1);
    }
    SECTION("a hook's own limit overrides the per-hook limit")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.per_hook_limit = 1;
        request.hook_limits = {{.hook_id = busy.id, .limit = 4}};
        const auto hooks = hooks_of(store.claim_due(request));
        CHECK(hooks.count(busy.id) == 4);
        CHECK(hooks.count(quiet.id) == 1);
        CHECK(hooks.count(late.id) == 1);
    }
    SECTION("repeated claims take the backlog in due order without repeating a row")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.per_hook_limit = 4;
        request.hook_limits = {{.hook_id = quiet.id, .limit = 0}, {.hook_id = late.id, .limit = 0}};
        std::vector<std::int64_t> taken;
        for (auto claimed = store.claim_due(request); !claimed.empty(); claimed = store.claim_due(request)) {
            CHECK(claimed.size() <= 4);
            for (std::int64_t id : ids_of(claimed))
                taken.push_back(id);
        }
        CHECK(taken == busy_ids);
    }
}

TEMPLATE_LIST_TEST_CASE("claim_due takes no more rows of one owner's hooks, or of one origin's, than their limits",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook alice_a = store.create_hook(sample_hook("alice", "https://a.example/one", "type-1"));
    const Hook alice_b = store.create_hook(sample_hook("alice", "https://b.example/", "type-2"));
    const Hook bob_a = store.create_hook(sample_hook("bob", "https://a.example:443/two?token=x", "type-3"));
    const Hook carol_c = store.create_hook(sample_hook("carol", "https://c.example/", "type-4"));
    for (int i = 0; i < 3; ++i)
        for (const char* type : {"type-1", "type-2", "type-3", "type-4"})
            enqueue_one(store, sample_event(type, t0 + 1ms * i));
    auto count = [](const std::vector<ClaimedDelivery>& claimed, auto&& which) {
        return std::count_if(claimed.begin(), claimed.end(), which);
    };
    auto of_owner = [](std::string owner) { return [owner](const ClaimedDelivery& d) { return d.hook.owner == owner; }; };
    auto of_a = [&](const ClaimedDelivery& d) { return d.hook.id == alice_a.id || d.hook.id == bob_a.id; };
    CHECK(target_origin(alice_a.target_url) == target_origin(bob_a.target_url));

    SECTION("the per-owner limit holds over all of an owner's hooks")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.per_owner_limit = 4;
        const auto claimed = store.claim_due(request);
        CHECK(count(claimed, of_owner("alice")) == 4);
        CHECK(count(claimed, of_owner("bob")) == 3);
        CHECK(count(claimed, of_owner("carol")) == 3);
    }
    SECTION("an owner's own limit overrides the per-owner limit; zero leaves its rows alone")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.per_owner_limit = 2;
        request.owner_limits = {{.key = "alice", .limit = 0}, {.key = "carol", .limit = 3}};
        const auto claimed = store.claim_due(request);
        CHECK(count(claimed, of_owner("alice")) == 0);
        CHECK(count(claimed, of_owner("bob")) == 2);
        CHECK(count(claimed, of_owner("carol")) == 3);
    }
    SECTION("the per-origin limit holds over every owner's hooks of the origin")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.per_origin_limit = 4;
        const auto claimed = store.claim_due(request);
        CHECK(count(claimed, of_a) == 4);
        CHECK(count(claimed, [&](const ClaimedDelivery& d) { return d.hook.id == alice_b.id; }) == 3);
        CHECK(count(claimed, [&](const ClaimedDelivery& d) { return d.hook.id == carol_c.id; }) == 3);
    }
    SECTION("an origin's own limit overrides the per-origin limit")
    {
        ClaimRequest request = claim_by("w", t0 + 1s, 64);
        request.origin_limits = {{.key = target_origin(alice_a.target_url), .limit = 1}};
        const auto claimed = store.claim_due(request);
        CHECK(count(claimed, of_a) == 1);
        CHECK(claimed.size() == 7);
    }
}

TEMPLATE_LIST_TEST_CASE("claim_due passes over the leased rows of a hook to its next ones", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    std::vector<std::int64_t> ids;
    for (int i = 0; i < 3; ++i)
        ids.push_back(enqueue_one(store, sample_event("package-created", t0 + 1ms * i)));
    ClaimRequest first = claim_by("a", t0 + 1s);
    first.per_hook_limit = 1;
    REQUIRE(ids_of(store.claim_due(first)) == std::vector<std::int64_t>{ids[0]});

    // Another worker gets the rows behind the leased one, never the leased one itself.
    ClaimRequest second = claim_by("b", t0 + 2s);
    CHECK(ids_of(store.claim_due(second)) == std::vector<std::int64_t>{ids[1], ids[2]});
    CHECK(store.claim_due(second).empty());
    // Once the first lease runs out, its row is claimable again.
    CHECK(ids_of(store.claim_due(claim_by("c", t0 + 11s))) == std::vector<std::int64_t>{ids[0]});
}

TEMPLATE_LIST_TEST_CASE("rows of an inactive hook stay in the outbox unclaimed until it is re-activated",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.deactivate_hook(hook.id));

    CHECK(store.claim_due(claim_by("w", t0 + 1h)).empty());
    CHECK(store.list_outbox({}).items.size() == 1);
    CHECK(store.find_delivery(id)->state == DeliveryState::pending);

    Hook revived = *store.find_hook(hook.id);
    revived.is_active = true;
    store.update_hook(revived);
    CHECK(ids_of(store.claim_due(claim_by("w", t0 + 1h))) == std::vector<std::int64_t>{id});
}

TEMPLATE_LIST_TEST_CASE("an inactive hook's older backlog does not keep active hooks from being claimed",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook inactive = store.create_hook(sample_hook("alice", "https://gone.example/", "old-type"));
    const Hook active = store.create_hook(sample_hook("bob", "https://b.example/"));
    for (int i = 0; i < 20; ++i)
        enqueue_one(store, sample_event("old-type", t0 + 1ms * i));
    REQUIRE(store.deactivate_hook(inactive.id));
    const std::int64_t id = enqueue_one(store, sample_event("package-created", t0 + 1s));

    const auto claimed = store.claim_due(claim_by("w", t0 + 2s, 1));
    REQUIRE(ids_of(claimed) == std::vector<std::int64_t>{id});
    CHECK(claimed[0].hook.id == active.id);
    CHECK(store.claim_due(claim_by("w", t0 + 2s)).empty());
    // Nor does it make anything seem due: what comes next is the end of the lease just taken.
    CHECK(store.next_due() == t0 + 2s + 10s);
}

// --- recording attempts ----------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("a delivered attempt marks the delivery delivered and leaves the outbox", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);

    const std::vector<AttemptRecord> reports{attempt_report(id, "w", 1, AttemptVerdict::delivered, 200)};
    store.record_attempts(reports);

    const auto delivery = store.find_delivery(id, true);
    REQUIRE(delivery);
    CHECK(delivery->delivered());
    CHECK(delivery->attempt_count == 1);
    CHECK(delivery->response_status == 200);
    CHECK(delivery->response_body == "answer 1");
    CHECK(delivery->response_time == 1500us);
    CHECK(delivery->last_failure == FailureClass::none);
    CHECK(delivery->last_error.empty());
    CHECK_FALSE(delivery->next_attempt_at);
    REQUIRE(delivery->attempts.size() == 1);
    const Attempt& attempt = delivery->attempts[0];
    CHECK(attempt.number == 1);
    CHECK(attempt.started_at == t0 + 1s);
    CHECK(attempt.duration == 1500us);
    CHECK(attempt.response_status == 200);
    CHECK(attempt.response_body == "answer 1");
    CHECK(attempt.succeeded());
    CHECK(attempt.trigger == AttemptTrigger::scheduled);
    CHECK(store.list_outbox({}).items.empty());
    CHECK_FALSE(store.next_due());
    CHECK(store.find_delivery(id, false)->attempts.empty());
}

TEMPLATE_LIST_TEST_CASE("a retry keeps the delivery pending and due again at the next attempt time",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);

    std::vector<AttemptRecord> reports{attempt_report(id, "w", 1, AttemptVerdict::retry, 503, t0 + 60s)};
    reports[0].attempt.trigger = AttemptTrigger::manual;
    store.record_attempts(reports);

    const auto delivery = store.find_delivery(id, true);
    CHECK(delivery->state == DeliveryState::pending);
    CHECK(delivery->attempt_count == 1);
    CHECK(delivery->response_status == 503);
    CHECK(delivery->last_failure == FailureClass::http_status);
    CHECK(delivery->last_error == "HTTP 503");
    CHECK(delivery->next_attempt_at == t0 + 60s);
    CHECK(delivery->attempts.at(0).trigger == AttemptTrigger::manual);
    const auto entry = store.list_outbox({}).items.at(0);
    CHECK(entry.due == t0 + 60s);
    CHECK(entry.attempt_count == 1);
    CHECK_FALSE(entry.lease_expires);
    CHECK(store.next_due() == t0 + 60s);
    CHECK(store.claim_due(claim_by("w", t0 + 59s)).empty());
    const auto claimed = store.claim_due(claim_by("w", t0 + 60s));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].attempt_count == 1);
}

TEMPLATE_LIST_TEST_CASE("a failed verdict marks the delivery failed and leaves the outbox", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);

    std::vector<AttemptRecord> reports{attempt_report(id, "w", 3, AttemptVerdict::failed, 0)};
    reports[0].attempt.failure = FailureClass::connection_refused;
    reports[0].attempt.error = "connection refused";
    store.record_attempts(reports);

    const auto delivery = store.find_delivery(id, true);
    CHECK(delivery->state == DeliveryState::failed);
    CHECK(delivery->attempt_count == 3);
    CHECK(delivery->response_status == 0);
    CHECK(delivery->last_failure == FailureClass::connection_refused);
    CHECK(delivery->last_error == "connection refused");
    CHECK_FALSE(delivery->next_attempt_at);
    CHECK(delivery->attempts.at(0).failure == FailureClass::connection_refused);
    CHECK(store.list_outbox({}).items.empty());
    CHECK(store.claim_due(claim_by("w", t0 + 1h)).empty());
}

TEMPLATE_LIST_TEST_CASE("a worker that lost its lease records only its attempt, unless it delivered",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("a", t0)).size() == 1);
    REQUIRE(store.claim_due(claim_by("b", t0 + 10s)).size() == 1);

    std::vector<AttemptRecord> reports{attempt_report(id, "a", 1, AttemptVerdict::retry, 500, t0 + 1h),
                                       attempt_report(id, "a", 1, AttemptVerdict::failed, 500)};
    store.record_attempts(reports);

    auto delivery = store.find_delivery(id, true);
    CHECK(delivery->state == DeliveryState::pending);
    CHECK(delivery->attempt_count == 0);
    CHECK(delivery->attempts.size() == 2);
    auto entry = store.list_outbox({}).items.at(0);
    CHECK(entry.lease_expires == t0 + 20s);
    CHECK(entry.due == t0);

    reports = {attempt_report(id, "a", 1, AttemptVerdict::delivered, 204)};
    store.record_attempts(reports);
    delivery = store.find_delivery(id, true);
    CHECK(delivery->delivered());
    CHECK(delivery->response_status == 204);
    CHECK(delivery->attempts.size() == 3);
    CHECK(store.list_outbox({}).items.empty());
}

TEMPLATE_LIST_TEST_CASE("a verdict on a queued delivery that nobody leases applies, one on a finished "
                        "delivery does not", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());

    std::vector<AttemptRecord> reports{attempt_report(id, "sync", 1, AttemptVerdict::retry, 500, t0 + 1h)};
    store.record_attempts(reports);
    CHECK(store.find_delivery(id)->attempt_count == 1);
    CHECK(store.list_outbox({}).items.at(0).due == t0 + 1h);

    reports = {attempt_report(id, "sync", 2, AttemptVerdict::failed, 500)};
    store.record_attempts(reports);
    CHECK(store.find_delivery(id)->state == DeliveryState::failed);
    CHECK(store.list_outbox({}).items.empty());

    reports = {attempt_report(id, "late", 3, AttemptVerdict::retry, 500, t0 + 2h)};
    store.record_attempts(reports);
    const auto delivery = store.find_delivery(id, true);
    CHECK(delivery->state == DeliveryState::failed);
    CHECK(delivery->attempt_count == 2);
    CHECK(delivery->attempts.size() == 3);
    CHECK_FALSE(store.next_due());
}

TEMPLATE_LIST_TEST_CASE("attempts are listed newest first", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    for (unsigned number = 1; number <= 3; ++number) {
        REQUIRE(store.claim_due(claim_by("w", t0 + 1h * number)).size() == 1);
        const auto verdict = number == 3 ? AttemptVerdict::delivered : AttemptVerdict::retry;
        const std::vector<AttemptRecord> reports{
            attempt_report(id, "w", number, verdict, number == 3 ? 200 : 500, t0 + 1h * (number + 1))};
        store.record_attempts(reports);
    }

    const auto delivery = store.find_delivery(id, true);
    REQUIRE(delivery->attempts.size() == 3);
    CHECK(delivery->attempts[0].number == 3);
    CHECK(delivery->attempts[1].number == 2);
    CHECK(delivery->attempts[2].number == 1);
    CHECK(delivery->attempt_count == 3);
    CHECK_FALSE(store.find_delivery(id + 1000));
}

TEMPLATE_LIST_TEST_CASE("stored response bodies are cut to the configured limit", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);

    std::vector<AttemptRecord> reports{attempt_report(id, "w", 1, AttemptVerdict::delivered, 200)};
    reports[0].attempt.response_body = std::string(response_body_limit * 2, 'x');
    store.record_attempts(reports);

    const auto delivery = store.find_delivery(id, true);
    CHECK(delivery->response_body == std::string(response_body_limit, 'x'));
    CHECK(delivery->attempts.at(0).response_body == std::string(response_body_limit, 'x'));
}

TEMPLATE_LIST_TEST_CASE("next_due is when the next outbox row becomes claimable", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    CHECK_FALSE(store.next_due());

    const std::int64_t second = enqueue_one(store, sample_event("package-created", t0 + 5s));
    const std::int64_t first = enqueue_one(store, sample_event("package-created", t0 + 3s));
    CHECK(store.next_due() == t0 + 3s);

    REQUIRE(store.claim_due(claim_by("w", t0 + 3s)).size() == 1);
    CHECK(store.next_due() == t0 + 5s);

    ClaimRequest short_lease = claim_by("w", t0 + 5s);
    short_lease.lease = 1s;
    REQUIRE(store.claim_due(short_lease).size() == 1);
    CHECK(store.next_due() == t0 + 6s);

    const std::vector<AttemptRecord> reports{attempt_report(first, "w", 1, AttemptVerdict::delivered, 200),
                                             attempt_report(second, "w", 1, AttemptVerdict::delivered, 200)};
    store.record_attempts(reports);
    CHECK_FALSE(store.next_due());
}

TEMPLATE_LIST_TEST_CASE("list_outbox pages through pending rows, scoped to an owner", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook alice = store.create_hook(sample_hook("alice", "https://a.example/"));
    store.create_hook(sample_hook("bob", "https://b.example/"));
    std::vector<NewEvent> events;
    for (int i = 0; i < 4; ++i)
        events.push_back(sample_event("package-created", t0 + 1s * i));
    const auto enqueued = store.enqueue_events(events);
    const std::int64_t delivered = enqueued[0].delivery_ids[0];
    REQUIRE(store.claim_due(claim_by("w", t0, 1)).size() == 1);
    const std::vector<AttemptRecord> reports{attempt_report(delivered, "w", 1, AttemptVerdict::delivered, 200)};
    store.record_attempts(reports);

    const auto everyone = store.list_outbox({});
    CHECK(everyone.items.size() == 7);
    CHECK_FALSE(everyone.next);

    const auto pages = all_pages<OutboxEntry>(OutboxQuery{.owner = "alice", .limit = 2},
                                              [&](const OutboxQuery& q) { return store.list_outbox(q); });
    REQUIRE(pages.size() == 2);
    CHECK(pages[0].items.size() == 2);
    CHECK(pages[1].items.size() == 1);
    const OutboxEntry& entry = pages[0].items[0];
    CHECK(entry.delivery_id == enqueued[1].delivery_ids[0]);
    CHECK(entry.hook_id == alice.id);
    CHECK(entry.owner == "alice");
    CHECK(entry.event_uuid == events[1].uuid);
    CHECK(entry.event_type == "package-created");
    CHECK(entry.attempt_count == 0);
    CHECK(entry.due == t0 + 1s);
    CHECK(entry.created == t0);
    for (const auto& page : pages)
        for (const OutboxEntry& row : page.items)
            CHECK(row.owner == "alice");
}

// --- requeueing ----------------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("requeue puts a delivery back in the outbox as pending", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    REQUIRE(store.claim_due(claim_by("w", t0)).size() == 1);
    // A delivered delivery is re-sent; a leased one is taken from its worker.
    const bool delivered_first = GENERATE(true, false);
    if (delivered_first) {
        const std::vector<AttemptRecord> reports{attempt_report(id, "w", 1, AttemptVerdict::delivered, 200)};
        store.record_attempts(reports);
    }

    REQUIRE(store.requeue(id, t0 + 1h));

    const auto delivery = store.find_delivery(id);
    CHECK(delivery->state == DeliveryState::pending);
    CHECK(delivery->next_attempt_at == t0 + 1h);
    const auto entry = store.list_outbox({}).items.at(0);
    CHECK(entry.due == t0 + 1h);
    CHECK_FALSE(entry.lease_expires);
    CHECK(store.claim_due(claim_by("x", t0 + 1h - 1s)).empty());
    CHECK(store.claim_due(claim_by("x", t0 + 1h)).size() == 1);
    CHECK_FALSE(store.requeue(id + 1000, t0));
}

TEMPLATE_LIST_TEST_CASE("requeue_failed requeues a hook's failed deliveries created in a window", "[store]",
                        Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    store.create_hook(sample_hook("bob", "https://b.example/"));
    std::vector<NewEvent> events;
    for (int hour = 0; hour < 4; ++hour) {
        events.push_back(sample_event());
        events.back().created = t0 + 1h * hour;
    }
    const auto enqueued = store.enqueue_events(events);
    std::vector<AttemptRecord> failures;
    for (const auto& claimed : store.claim_due(claim_by("w", t0)))
        failures.push_back(attempt_report(claimed.delivery_id, "w", 1, AttemptVerdict::failed, 500));
    REQUIRE(failures.size() == 8);
    store.record_attempts(failures);

    CHECK(store.requeue_failed(hook.id, t0 + 1h, t0 + 2h, t0 + 5h) == 2);
    for (int hour = 0; hour < 4; ++hour) {
        const bool in_window = hour == 1 || hour == 2;
        const auto mine = store.find_delivery(enqueued[hour].delivery_ids[0]);
        CHECK(mine->state == (in_window ? DeliveryState::pending : DeliveryState::failed));
        CHECK(store.find_delivery(enqueued[hour].delivery_ids[1])->state == DeliveryState::failed);
    }
    CHECK(store.next_due() == t0 + 5h);
    CHECK(store.requeue_failed(hook.id, t0, t0 + 3h, t0, 1) == 1);
    CHECK(store.requeue_failed(hook.id, t0, t0 + 3h, t0) == 1);
    CHECK(store.requeue_failed(hook.id, t0, t0 + 3h, t0) == 0);
}

// --- tokens and retention --------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("tokens are found by the hash of their key", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const std::string hash(64, 'a');
    store.add_token(hash, ApiToken{.owner = "alice", .admin = false, .publisher = true, .created = t0});
    store.add_token(std::string(64, 'b'), ApiToken{.owner = "root", .admin = true, .created = t0 + 1s});

    const auto token = store.find_token(hash);
    REQUIRE(token);
    CHECK(token->owner == "alice");
    CHECK_FALSE(token->admin);
    CHECK(token->publisher);
    CHECK(token->created == t0);
    CHECK(store.find_token(std::string(64, 'b'))->admin);
    CHECK_FALSE(store.find_token(std::string(64, 'c')));
}

TEMPLATE_LIST_TEST_CASE("tokens have ids never reused, expiries, last uses that only move forward, and revocations",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const std::int64_t alice = store.add_token(std::string(64, 'a'), ApiToken{.owner = "alice", .created = t0});
    const std::int64_t bob =
        store.add_token(std::string(64, 'b'), ApiToken{.owner = "bob", .created = t0 + 1s, .expires = t0 + 1h});
    CHECK(alice > 0);
    CHECK(bob > alice);
    // The same hash again replaces the token and keeps its id.
    CHECK(store.add_token(std::string(64, 'a'), ApiToken{.owner = "alice", .publisher = true, .created = t0}) == alice);
    CHECK(store.find_token(std::string(64, 'a'))->publisher);

    auto tokens = store.list_tokens();
    REQUIRE(tokens.size() == 2);
    CHECK(tokens[0].id == alice);
    CHECK(tokens[0].owner == "alice");
    CHECK_FALSE(tokens[0].expires);
    CHECK(tokens[1].id == bob);
    CHECK(tokens[1].expires == t0 + 1h);
    CHECK(tokens[1].expired(t0 + 1h));
    CHECK_FALSE(tokens[1].expired(t0 + 1h - 1s));

    store.record_token_use(alice, t0 + 2min);
    CHECK(store.find_token(std::string(64, 'a'))->last_used == t0 + 2min);
    store.record_token_use(alice, t0 + 1min); // Never backwards.
    CHECK(store.find_token(std::string(64, 'a'))->last_used == t0 + 2min);
    CHECK_FALSE(store.find_token(std::string(64, 'b'))->last_used);

    CHECK(store.revoke_token(bob));
    CHECK_FALSE(store.revoke_token(bob));
    CHECK_FALSE(store.find_token(std::string(64, 'b')));
    store.record_token_use(bob, t0 + 3min); // Gone: nothing happens.
    CHECK(store.list_tokens().size() == 1);
    // A revoked token's id is not given to the next one.
    const std::int64_t carol = store.add_token(std::string(64, 'c'), ApiToken{.owner = "carol", .created = t0});
    CHECK(carol > bob);
}

TEMPLATE_LIST_TEST_CASE("delete_finished_before deletes old finished deliveries and keeps pending ones",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    store.create_hook(sample_hook("alice", "https://a.example/"));
    store.create_hook(sample_hook("bob", "https://b.example/"));
    NewEvent old_event = sample_event();
    NewEvent new_event = sample_event();
    new_event.created = t0 + 2h;
    const auto enqueued = store.enqueue_events(std::vector<NewEvent>{old_event, new_event});
    const std::int64_t old_delivered = enqueued[0].delivery_ids[0];
    const std::int64_t old_pending = enqueued[0].delivery_ids[1];
    const std::int64_t new_delivered = enqueued[1].delivery_ids[0];
    const std::int64_t new_failed = enqueued[1].delivery_ids[1];
    store.claim_due(claim_by("w", t0));
    const std::vector<AttemptRecord> reports{
        attempt_report(old_delivered, "w", 1, AttemptVerdict::delivered, 200),
        attempt_report(old_pending, "w", 1, AttemptVerdict::retry, 500, t0 + 1h),
        attempt_report(new_delivered, "w", 1, AttemptVerdict::delivered, 200),
        attempt_report(new_failed, "w", 1, AttemptVerdict::failed, 500),
    };
    store.record_attempts(reports);

    CHECK(store.delete_finished_before(t0 + 1h) == 1);
    CHECK_FALSE(store.find_delivery(old_delivered));
    CHECK(store.find_delivery(old_pending, true)->attempts.size() == 1);
    CHECK(store.find_delivery(new_delivered));
    CHECK(store.deliveries_of_event(old_event.uuid).size() == 1);

    CHECK(store.delete_finished_before(t0 + 3h, 1) == 1);
    CHECK(store.delete_finished_before(t0 + 3h, 1) == 1);
    CHECK(store.delete_finished_before(t0 + 3h) == 0);
    CHECK(store.deliveries_of_event(new_event.uuid).empty());
    CHECK(store.find_delivery(old_pending)->state == DeliveryState::pending);
    CHECK(store.list_outbox({}).items.size() == 1);

    SECTION("an event whose deliveries are all gone is gone too, so its uuid can be used again")
    {
        NewEvent reused = sample_event();
        reused.uuid = new_event.uuid;
        CHECK_NOTHROW(store.enqueue_events(std::span{&reused, 1}));
    }
}

// --- endpoint health ------------------------------------------------------------------------------

TEMPLATE_LIST_TEST_CASE("a new hook is healthy: no run of failures", "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    CHECK_FALSE(hook.failing_since);
    CHECK(hook.failed_attempts == 0);
    const Hook read = *store.find_hook(hook.id);
    CHECK_FALSE(read.failing_since);
    CHECK(read.failed_attempts == 0);
}

TEMPLATE_LIST_TEST_CASE("failed attempts start and extend a hook's run of failures, a success ends it",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const Hook other = store.create_hook(sample_hook("bob", "https://b.example/", "other-type"));
    const std::int64_t first = enqueue_one(store, sample_event());

    store.record_attempts(std::vector{attempt_report(first, "w", 1, AttemptVerdict::retry, 500, t0 + 1h)});
    Hook failing = *store.find_hook(hook.id);
    REQUIRE(failing.failing_since);
    CHECK(*failing.failing_since == t0 + 1s); // the first failed attempt's start
    CHECK(failing.failed_attempts == 1);

    // Later failures extend the run; it keeps its start.
    store.record_attempts(std::vector{attempt_report(first, "w", 2, AttemptVerdict::retry, 503, t0 + 1h),
                                      attempt_report(first, "w", 3, AttemptVerdict::retry, 429, t0 + 1h)});
    failing = *store.find_hook(hook.id);
    CHECK(*failing.failing_since == t0 + 1s);
    CHECK(failing.failed_attempts == 3);
    const Hook untouched = *store.find_hook(other.id);
    CHECK_FALSE(untouched.failing_since);
    CHECK(untouched.failed_attempts == 0);

    store.record_attempts(std::vector{attempt_report(first, "w", 4, AttemptVerdict::delivered, 200)});
    const Hook healthy = *store.find_hook(hook.id);
    CHECK_FALSE(healthy.failing_since);
    CHECK(healthy.failed_attempts == 0);
}

TEMPLATE_LIST_TEST_CASE("one batch of reports moves a hook's health as the reports would one by one, in order",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const Hook other = store.create_hook(sample_hook("bob", "https://b.example/", "other-type"));
    const std::int64_t a = enqueue_one(store, sample_event());
    const std::int64_t b = enqueue_one(store, sample_event());
    const std::int64_t c = enqueue_one(store, sample_event("other-type"));

    // A failure, a success, then two failures (started at t0 + 3 s and t0 + 4 s), across two
    // deliveries of one hook; the other hook only fails.
    store.record_attempts(std::vector{attempt_report(b, "w", 1, AttemptVerdict::retry, 500, t0 + 1h),
                                      attempt_report(a, "w", 2, AttemptVerdict::delivered, 200),
                                      attempt_report(b, "w", 3, AttemptVerdict::retry, 502, t0 + 1h),
                                      attempt_report(c, "w", 5, AttemptVerdict::retry, 503, t0 + 1h),
                                      attempt_report(b, "w", 4, AttemptVerdict::retry, 503, t0 + 1h)});
    Hook failing = *store.find_hook(hook.id);
    REQUIRE(failing.failing_since);
    CHECK(*failing.failing_since == t0 + 3s);
    CHECK(failing.failed_attempts == 2);
    Hook other_failing = *store.find_hook(other.id);
    REQUIRE(other_failing.failing_since);
    CHECK(*other_failing.failing_since == t0 + 5s);
    CHECK(other_failing.failed_attempts == 1);

    // Failures only: the run goes on from what is stored; then a batch that ends in a success.
    store.record_attempts(std::vector{attempt_report(b, "w", 6, AttemptVerdict::retry, 500, t0 + 1h),
                                      attempt_report(c, "w", 7, AttemptVerdict::retry, 500, t0 + 1h),
                                      attempt_report(c, "w", 8, AttemptVerdict::delivered, 200)});
    failing = *store.find_hook(hook.id);
    CHECK(*failing.failing_since == t0 + 3s);
    CHECK(failing.failed_attempts == 3);
    other_failing = *store.find_hook(other.id);
    CHECK_FALSE(other_failing.failing_since);
    CHECK(other_failing.failed_attempts == 0);
}

TEMPLATE_LIST_TEST_CASE("update_hook keeps the health fields, and re-activation clears them with the reason",
                        "[store]", Stores)
{
    TestType fixture;
    auto& store = fixture.store();
    const Hook hook = store.create_hook(sample_hook("alice", "https://a.example/"));
    const std::int64_t id = enqueue_one(store, sample_event());
    store.record_attempts(std::vector{attempt_report(id, "w", 1, AttemptVerdict::retry, 500, t0 + 1h)});

    // A write of the hook with stale health fields leaves the store's alone.
    Hook change = *store.find_hook(hook.id);
    change.failing_since.reset();
    change.failed_attempts = 0;
    change.secret_key = "rotated";
    Hook updated = store.update_hook(change);
    CHECK(updated.failing_since == t0 + 1s);
    CHECK(updated.failed_attempts == 1);

    REQUIRE(store.deactivate_hook(hook.id, "no success for 5 days"));
    Hook disabled = *store.find_hook(hook.id);
    CHECK_FALSE(disabled.is_active);
    CHECK(disabled.failed_attempts == 1);

    disabled.is_active = true;
    const Hook enabled = store.update_hook(disabled);
    CHECK(enabled.is_active);
    CHECK(enabled.disabled_reason.empty());
    CHECK_FALSE(enabled.disabled_at);
    CHECK_FALSE(enabled.failing_since);
    CHECK(enabled.failed_attempts == 0);
    require_same_hook(*store.find_hook(hook.id), enabled);
}
