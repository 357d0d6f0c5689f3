// Claim planning (src/dispatch/claim_plan.hpp): a pure function from the slots, what the
// dispatcher knows of the outbox and its options to the claim it makes.
#include "catch.hpp"

#include "dispatch/claim_plan.hpp"

#include <algorithm>

using namespace whisperer;
using namespace whisperer::dispatch;

namespace {

ClaimOptions options_of(std::size_t max_in_flight, std::size_t claim_batch)
{
    return {.worker = "worker-a", .lease = std::chrono::milliseconds(7000), .max_in_flight = max_in_flight,
            .claim_batch = claim_batch, .claim_min_share = 4};
}

SlotsSnapshot empty_slots(std::size_t hook_quota = 256, std::size_t group_quota = 512)
{
    return {.used = 0, .hook_quota = hook_quota, .owner_quota = group_quota, .origin_quota = group_quota};
}

const TimePoint now = Clock::now();

ClaimedDelivery claimed_of(std::int64_t hook, std::string owner, std::string url)
{
    ClaimedDelivery d;
    d.hook.id = hook;
    d.hook.owner = std::move(owner);
    d.hook.target_url = std::move(url);
    return d;
}

} // namespace

TEST_CASE("An idle dispatcher claims three quarters of its room, with its worker, lease and quotas", "[claim_plan]")
{
    auto request = plan_claim(empty_slots(), {.unseen = true}, options_of(1024, 1024), now);
    REQUIRE(request);
    CHECK(request->worker == "worker-a");
    CHECK(request->lease == std::chrono::milliseconds(7000));
    CHECK(request->now == now);
    CHECK(request->limit == 768);
    CHECK(request->per_hook_limit == 256);
    CHECK(request->per_owner_limit == 512);
    CHECK(request->per_origin_limit == 512);
    CHECK(request->min_share == 4);
    CHECK(request->hook_limits.empty());
}

TEST_CASE("A claim takes at most claim_batch rows", "[claim_plan]")
{
    auto request = plan_claim(empty_slots(), {.unseen = true}, options_of(1024, 100), now);
    REQUIRE(request);
    CHECK(request->limit == 100);
}

TEST_CASE("Full slots, or too little room while busy, plan no claim", "[claim_plan]")
{
    SlotsSnapshot slots = empty_slots();
    slots.used = 1024;
    CHECK_FALSE(plan_claim(slots, {.unseen = true}, options_of(1024, 1024), now));
    slots.used = 1024 - 255; // Less than a quarter of a batch fits.
    CHECK_FALSE(plan_claim(slots, {.unseen = true}, options_of(1024, 1024), now));
    slots.used = 1024 - 256;
    auto request = plan_claim(slots, {.unseen = true}, options_of(1024, 1024), now);
    REQUIRE(request);
    CHECK(request->limit == 192);
}

TEST_CASE("An outbox the last claim saw whole is not claimed again until something held back has room",
          "[claim_plan]")
{
    CHECK_FALSE(plan_claim(empty_slots(), {.unseen = false, .held_back_has_room = false}, options_of(64, 64), now));
    CHECK(plan_claim(empty_slots(), {.unseen = false, .held_back_has_room = true}, options_of(64, 64), now));
}

TEST_CASE("Hooks, owners and origins in flight get what is left of their quota, or nothing when little is left",
          "[claim_plan]")
{
    SlotsSnapshot slots = empty_slots(100, 200);
    slots.used = 300;
    slots.per_hook = {{1, 10}, {2, 80}};
    slots.per_owner = {{"alice", 90}, {"bob", 160}};
    slots.per_origin = {{"http://a:80", 40}};
    auto request = plan_claim(slots, {.unseen = true}, options_of(1024, 1024), now);
    REQUIRE(request);
    auto hook_limit = [&](std::int64_t id) {
        auto it = std::find_if(request->hook_limits.begin(), request->hook_limits.end(),
                               [&](const HookClaimLimit& h) { return h.hook_id == id; });
        REQUIRE(it != request->hook_limits.end());
        return it->limit;
    };
    auto group_limit = [](const std::vector<GroupClaimLimit>& limits, const std::string& key) {
        auto it = std::find_if(limits.begin(), limits.end(), [&](const GroupClaimLimit& g) { return g.key == key; });
        REQUIRE(it != limits.end());
        return it->limit;
    };
    CHECK(hook_limit(1) == 90);
    CHECK(hook_limit(2) == 0); // 20 left of 100: under a quarter.
    CHECK(group_limit(request->owner_limits, "alice") == 110);
    CHECK(group_limit(request->owner_limits, "bob") == 0); // 40 left of 200: under a quarter.
    CHECK(group_limit(request->origin_limits, "http://a:80") == 160);
}

TEST_CASE("When every hook in flight is held at its quota, only unseen rows make a claim worth it", "[claim_plan]")
{
    SlotsSnapshot slots = empty_slots(100, 200);
    slots.used = 95;
    slots.per_hook = {{1, 95}};
    CHECK_FALSE(plan_claim(slots, {.unseen = false, .held_back_has_room = true}, options_of(1024, 1024), now));
    CHECK(plan_claim(slots, {.unseen = true}, options_of(1024, 1024), now));
}

TEST_CASE("The claim room of a group is what is left, or nothing under a quarter of its quota", "[claim_plan]")
{
    CHECK(claim_room(0, 100) == 100);
    CHECK(claim_room(75, 100) == 25);
    CHECK(claim_room(76, 100) == 0);
    CHECK(claim_room(150, 100) == 0);
}

TEST_CASE("A hook, owner or origin given no room, or that took all its room, is held back", "[claim_plan]")
{
    ClaimRequest request;
    request.per_hook_limit = 3;
    request.hook_limits = {{1, 0}, {2, 2}, {3, 5}};
    request.per_owner_limit = 10;
    request.owner_limits = {{"carol", 0}};
    request.per_origin_limit = 2;
    const std::vector<ClaimedDelivery> claimed = {
        claimed_of(2, "alice", "http://a.example/x"), claimed_of(2, "alice", "http://a.example/y"),
        claimed_of(3, "bob", "http://b.example/"),    claimed_of(4, "bob", "http://b.example/"),
        claimed_of(4, "bob", "http://c.example/"),    claimed_of(4, "bob", "http://d.example/")};
    const HeldBack held = held_back_by(request, claimed);
    CHECK(held.hooks == std::unordered_set<std::int64_t>{1, 2, 4}); // 1: no room; 2: took its 2; 4: per-hook 3.
    CHECK(held.owners == std::unordered_set<std::string>{"carol"});
    CHECK(held.origins == std::unordered_set<std::string>{"http://a.example:80", "http://b.example:80"});
}
