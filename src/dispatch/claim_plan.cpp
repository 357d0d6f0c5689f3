#include "dispatch/claim_plan.hpp"

#include <whisperer/address_policy.hpp>

#include <algorithm>
#include <unordered_map>

namespace whisperer::dispatch {

std::size_t claim_room(std::size_t held, std::size_t quota) noexcept
{
    const std::size_t left = held < quota ? quota - held : 0;
    return left < quota / 4 ? 0 : left;
}

std::optional<ClaimRequest> plan_claim(const SlotsSnapshot& slots, const OutboxView& outbox,
                                       const ClaimOptions& options, TimePoint now)
{
    // Finished attempts whose outcome is not yet recorded still count: a crash now would send
    // them again, so they bound the duplicates a crash can cause. Slots reserved for deliveries
    // being handed off count too.
    const std::size_t busy = slots.used;
    if (busy >= options.max_in_flight)
        return std::nullopt; // Completions claim again.
    // While busy, wait until a worthwhile batch fits: many tiny claims cost more than they bring.
    const std::size_t room = options.max_in_flight - busy;
    if (busy > 0 && room < std::min(options.claim_batch, options.max_in_flight) / 4)
        return std::nullopt;
    // The last claim saw every claimable row and held none back for a quota: nothing a
    // completion frees can be claimed now.
    if (!outbox.unseen && !outbox.held_back_has_room)
        return std::nullopt;
    ClaimRequest request;
    request.worker = options.worker;
    request.now = now;
    request.lease = options.lease;
    // A quarter of the room stays free while the claim runs, for new events handed off
    // meanwhile: a claim's reservation must not send them the long way round.
    request.limit = std::min(options.claim_batch, room - room / 4);
    // The store applies each hook's quota, so a saturated hook's rows are neither claimed nor
    // read through, and whatever is claimed can start.
    request.per_hook_limit = slots.hook_quota;
    request.min_share = options.claim_min_share;
    // A hook (owner, origin) this close to its quota waits for its completions rather than
    // taking its rows a few at a time.
    for (const auto& [hook, n] : slots.per_hook)
        request.hook_limits.push_back({hook, claim_room(n, slots.hook_quota)});
    // One owner's hooks, or one origin's, never hold more than their quota of the slots: a
    // tenant whose receivers stall, or a stalled receiver many tenants send to, leaves the rest
    // to the others.
    request.per_owner_limit = slots.owner_quota;
    for (const auto& [owner, n] : slots.per_owner)
        request.owner_limits.push_back({owner, claim_room(n, slots.owner_quota)});
    request.per_origin_limit = slots.origin_quota;
    for (const auto& [origin, n] : slots.per_origin)
        request.origin_limits.push_back({origin, claim_room(n, slots.origin_quota)});
    // Every hook in flight is near its quota and the last claim saw the whole outbox: a claim
    // now would find nothing.
    const bool all_held = !request.hook_limits.empty() &&
                          std::all_of(request.hook_limits.begin(), request.hook_limits.end(),
                                      [](const HookClaimLimit& h) { return h.limit == 0; });
    if (all_held && !outbox.unseen)
        return std::nullopt;
    if (request.limit == 0)
        return std::nullopt;
    return request;
}

namespace {

void add_held_back_groups(const std::vector<GroupClaimLimit>& limits, std::size_t per_group,
                          std::unordered_map<std::string, std::size_t>& taken,
                          std::unordered_set<std::string>& held_back)
{
    for (const GroupClaimLimit& g : limits)
        if (g.limit == 0 || taken[g.key] >= g.limit)
            held_back.insert(g.key);
    for (const auto& [key, n] : taken)
        if (n >= per_group)
            held_back.insert(key);
}

} // namespace

HeldBack held_back_by(const ClaimRequest& request, const std::vector<ClaimedDelivery>& claimed)
{
    std::unordered_map<std::int64_t, std::size_t> taken;
    std::unordered_map<std::string, std::size_t> owners_taken;
    std::unordered_map<std::string, std::size_t> origins_taken;
    for (const ClaimedDelivery& d : claimed) {
        ++taken[d.hook.id];
        ++owners_taken[d.hook.owner];
        ++origins_taken[target_origin(d.hook.target_url)];
    }
    HeldBack held;
    for (const HookClaimLimit& h : request.hook_limits)
        if (h.limit == 0 || taken[h.hook_id] >= h.limit)
            held.hooks.insert(h.hook_id);
    for (const auto& [hook, n] : taken)
        if (n >= request.per_hook_limit)
            held.hooks.insert(hook);
    add_held_back_groups(request.owner_limits, request.per_owner_limit, owners_taken, held.owners);
    add_held_back_groups(request.origin_limits, request.per_origin_limit, origins_taken, held.origins);
    return held;
}

} // namespace whisperer::dispatch
