// Claim planning: which outbox rows the dispatcher asks the store for next.
#ifndef WHISPERER_SRC_DISPATCH_CLAIM_PLAN_HPP
#define WHISPERER_SRC_DISPATCH_CLAIM_PLAN_HPP

#include <whisperer/subscription_store.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace whisperer::dispatch {

/// What the slots hold at one moment (a copy of `detail::DeliverySlots`' counts).
struct SlotsSnapshot {
    std::size_t used = 0; ///< Held plus reserved.
    std::size_t hook_quota = 0;
    std::size_t owner_quota = 0;
    std::size_t origin_quota = 0;
    std::vector<std::pair<std::int64_t, std::size_t>> per_hook;
    std::vector<std::pair<std::string, std::size_t>> per_owner;
    std::vector<std::pair<std::string, std::size_t>> per_origin;
};

/// What the dispatcher knows of the outbox since its last claim.
struct OutboxView {
    /// The outbox may hold rows the last claim did not see (new events, retries falling due, rows
    /// of other processes, or rows a full claim left).
    bool unseen = true;
    /// A hook, owner or origin a claim held back for its quota has room again.
    bool held_back_has_room = false;
};

/// The options that shape a claim.
struct ClaimOptions {
    std::string worker;
    std::chrono::milliseconds lease{10000};
    std::size_t max_in_flight = 1024;
    std::size_t claim_batch = 1024;
    std::size_t claim_min_share = 4;
};

/// What a claim may take of a group (hook, owner or origin) that holds `held` of `quota`: the
/// rest, or nothing once less than a quarter is left, so that a busy group takes its rows in
/// batches rather than one by one.
std::size_t claim_room(std::size_t held, std::size_t quota) noexcept;

/// The claim to make now, or nothing when a claim could not be worth it: the slots are full,
/// too little room is left while requests are in flight, or the last claim saw every claimable
/// row and nothing held back has room again. The request's `limit` is what the caller should
/// reserve of the slots before claiming. Pure.
std::optional<ClaimRequest> plan_claim(const SlotsSnapshot& slots, const OutboxView& outbox,
                                       const ClaimOptions& options, TimePoint now);

/// The hooks, owners and origins a claim may have left claimable rows of for want of their quota.
struct HeldBack {
    std::unordered_set<std::int64_t> hooks;
    std::unordered_set<std::string> owners;
    std::unordered_set<std::string> origins;
};

/// Those of `request` that `claimed` shows were held back: a group the request gave no room, or
/// one that took all the room it had. Pure.
HeldBack held_back_by(const ClaimRequest& request, const std::vector<ClaimedDelivery>& claimed);

} // namespace whisperer::dispatch

#endif
