// The dispatcher's slots for deliveries in flight, shared by its workers and by deliver_event.
#ifndef WHISPERER_SRC_DETAIL_DELIVERY_SLOTS_HPP
#define WHISPERER_SRC_DETAIL_DELIVERY_SLOTS_HPP

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <unordered_map>
#include <vector>

namespace whisperer::detail {

/// How many deliveries a dispatcher holds, in all and per hook, against its limits.
///
/// A delivery holds a slot from the moment it is reserved (handed off by `deliver_event`, or a
/// claim about to run) until its outcome is recorded; it counts against its hook's quota while it
/// is reserved or in flight. The workers report what they hold with `set_held`; `deliver_event`
/// reserves slots for the hooks of a new event with `reserve`, so that its deliveries can be
/// written leased to this dispatcher and sent without a claim. Thread-safe.
class DeliverySlots {
public:
    DeliverySlots(std::size_t max_total, std::size_t hook_quota) : max_total_(max_total), hook_quota_(hook_quota) {}

    std::size_t hook_quota() const noexcept { return hook_quota_; }

    /// Reserves a slot for each of `hook_ids` that fits, in order; returns those that got one.
    /// Hand-offs leave a quarter of the slots to claims (counting what is held, not what a
    /// running claim reserved), so that retries, events that did not fit and other processes'
    /// rows keep moving while new events arrive.
    std::vector<std::int64_t> reserve(std::span<const std::int64_t> hook_ids)
    {
        std::vector<std::int64_t> taken;
        const std::size_t handoff_limit = max_total_ - max_total_ / 4;
        std::lock_guard lock{mutex_};
        for (std::int64_t hook : hook_ids) {
            if (held_ + reserved_ >= max_total_ || held_ + handoff_reserved_ >= handoff_limit)
                break;
            std::size_t& n = per_hook_[hook];
            if (n >= hook_quota_)
                continue;
            ++n;
            ++reserved_;
            ++handoff_reserved_;
            taken.push_back(hook);
        }
        return taken;
    }

    /// Gives back reservations of `hook_ids` that were not used.
    void unreserve(std::span<const std::int64_t> hook_ids)
    {
        std::lock_guard lock{mutex_};
        for (std::int64_t hook : hook_ids) {
            --reserved_;
            --handoff_reserved_;
            drop_hook(hook);
        }
    }

    /// Turns `n` reservations into deliveries in flight, which the workers now count as held.
    void started_reserved(std::size_t n)
    {
        std::lock_guard lock{mutex_};
        reserved_ -= n;
        handoff_reserved_ -= n;
        held_ += n;
    }

    /// Reserves up to `wanted` slots for a claim; returns how many (0 when the slots are full).
    std::size_t reserve_claim(std::size_t wanted)
    {
        std::lock_guard lock{mutex_};
        const std::size_t used = held_ + reserved_;
        const std::size_t n = used >= max_total_ ? 0 : std::min(wanted, max_total_ - used);
        reserved_ += n;
        return n;
    }

    /// A claim reserved `reserved` slots and took the deliveries of `hook_ids` (one per delivery).
    void claimed(std::size_t reserved, std::span<const std::int64_t> hook_ids)
    {
        std::lock_guard lock{mutex_};
        reserved_ -= reserved;
        held_ += hook_ids.size();
        for (std::int64_t hook : hook_ids)
            ++per_hook_[hook];
    }

    /// A delivery of `hook` is no longer in flight (its outcome may still be unrecorded).
    void finished(std::int64_t hook)
    {
        std::lock_guard lock{mutex_};
        drop_hook(hook);
    }

    /// `n` held deliveries are recorded or released: their slots are free.
    void freed(std::size_t n)
    {
        std::lock_guard lock{mutex_};
        assert(n <= held_);
        held_ -= std::min(n, held_);
    }

    /// Slots in use: held plus reserved.
    std::size_t used() const
    {
        std::lock_guard lock{mutex_};
        return held_ + reserved_;
    }

    /// Deliveries of `hook` reserved or in flight.
    std::size_t held_by(std::int64_t hook) const
    {
        std::lock_guard lock{mutex_};
        auto it = per_hook_.find(hook);
        return it == per_hook_.end() ? 0 : it->second;
    }

    /// Each hook with deliveries reserved or in flight, and how many.
    std::vector<std::pair<std::int64_t, std::size_t>> per_hook() const
    {
        std::lock_guard lock{mutex_};
        return {per_hook_.begin(), per_hook_.end()};
    }

private:
    void drop_hook(std::int64_t hook)
    {
        if (auto it = per_hook_.find(hook); it != per_hook_.end() && --it->second == 0)
            per_hook_.erase(it);
    }

    const std::size_t max_total_;
    const std::size_t hook_quota_;
    mutable std::mutex mutex_;
    std::size_t held_ = 0;     // Claimed or handed off, started, outcome not yet recorded.
    std::size_t reserved_ = 0;         // Reserved for hand-offs and claims not yet started.
    std::size_t handoff_reserved_ = 0; // Of reserved_, those for hand-offs.
    std::unordered_map<std::int64_t, std::size_t> per_hook_;
};

} // namespace whisperer::detail

#endif
