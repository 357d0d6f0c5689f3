// The dispatcher's slots for deliveries in flight, shared by its workers and by deliver_event.
#ifndef WHISPERER_SRC_DETAIL_DELIVERY_SLOTS_HPP
#define WHISPERER_SRC_DETAIL_DELIVERY_SLOTS_HPP

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace whisperer::detail {

/// The limits of `DeliverySlots`.
struct SlotQuotas {
    std::size_t total = 0;  ///< Slots in all.
    std::size_t hook = 0;   ///< Reserved or in flight for one hook.
    std::size_t owner = 0;  ///< In flight for the hooks of one owner together.
    std::size_t origin = 0; ///< In flight to one origin (`scheme://host:port`), whoever's hooks.
};

/// How many deliveries a dispatcher holds, in all, per hook, per owner and per origin, against
/// its limits.
///
/// A delivery holds a slot from the moment it is reserved (handed off by `deliver_event`, or a
/// claim about to run) until its outcome is recorded; it counts against its hook's quota while it
/// is reserved or in flight, and against its owner's and origin's while in flight (from `admit`
/// to `finished`). `deliver_event` reserves slots for the hooks of a new event with `reserve`, so
/// that its deliveries can be written leased to this dispatcher and sent without a claim.
/// Thread-safe.
class DeliverySlots {
public:
    explicit DeliverySlots(SlotQuotas quotas) : max_total_(quotas.total), hook_quota_(quotas.hook),
                                                 owner_quota_(quotas.owner), origin_quota_(quotas.origin) {}

    std::size_t hook_quota() const noexcept { return hook_quota_; }
    std::size_t owner_quota() const noexcept { return owner_quota_; }
    std::size_t origin_quota() const noexcept { return origin_quota_; }

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
            if (group_full_locked(hook))
                continue; // `admit` would refuse it: left to a claim, once its group has room.
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

    /// Counts a started delivery of `hook` against its owner's and origin's quotas; false, and
    /// nothing counted, when either is full (the caller gives the delivery back with `refused`).
    bool admit(std::int64_t hook, const std::string& owner, const std::string& origin)
    {
        std::lock_guard lock{mutex_};
        remember_group(hook, owner, origin);
        if (count_of(per_owner_, owner) >= owner_quota_ || count_of(per_origin_, origin) >= origin_quota_)
            return false;
        ++per_owner_[owner];
        ++per_origin_[origin];
        return true;
    }

    /// A delivery of `hook` that `admit` refused does not start: its slot is free.
    void refused(std::int64_t hook)
    {
        std::lock_guard lock{mutex_};
        drop_hook(hook);
        assert(held_ > 0);
        held_ -= std::min<std::size_t>(1, held_);
    }

    /// An admitted delivery of `hook` is no longer in flight (its outcome may still be unrecorded).
    void finished(std::int64_t hook, const std::string& owner, const std::string& origin)
    {
        std::lock_guard lock{mutex_};
        drop_hook(hook);
        drop_key(per_owner_, owner);
        drop_key(per_origin_, origin);
    }

    /// Deliveries of `owner`'s hooks in flight.
    std::size_t held_by_owner(const std::string& owner) const
    {
        std::lock_guard lock{mutex_};
        return count_of(per_owner_, owner);
    }

    /// Deliveries to `origin` in flight.
    std::size_t held_by_origin(const std::string& origin) const
    {
        std::lock_guard lock{mutex_};
        return count_of(per_origin_, origin);
    }

    /// Each owner with deliveries in flight, and how many.
    std::vector<std::pair<std::string, std::size_t>> per_owner() const
    {
        std::lock_guard lock{mutex_};
        return {per_owner_.begin(), per_owner_.end()};
    }

    /// Each origin with deliveries in flight, and how many.
    std::vector<std::pair<std::string, std::size_t>> per_origin() const
    {
        std::lock_guard lock{mutex_};
        return {per_origin_.begin(), per_origin_.end()};
    }

    /// The owner and origin of `hook`'s last delivery that `admit` saw, if it remembers one.
    std::optional<std::pair<std::string, std::string>> group_of(std::int64_t hook) const
    {
        std::lock_guard lock{mutex_};
        auto it = groups_.find(hook);
        if (it == groups_.end())
            return std::nullopt;
        return std::pair{it->second.owner, it->second.origin};
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
    using Counts = std::unordered_map<std::string, std::size_t>;

    /// The owner and origin of a hook's last admitted or refused delivery: a hint for `reserve`.
    struct Group {
        std::string owner;
        std::string origin;
    };

    void drop_hook(std::int64_t hook)
    {
        if (auto it = per_hook_.find(hook); it != per_hook_.end() && --it->second == 0)
            per_hook_.erase(it);
    }

    static std::size_t count_of(const Counts& counts, const std::string& key)
    {
        auto it = counts.find(key);
        return it == counts.end() ? 0 : it->second;
    }

    static void drop_key(Counts& counts, const std::string& key)
    {
        if (auto it = counts.find(key); it != counts.end() && --it->second == 0)
            counts.erase(it);
    }

    void remember_group(std::int64_t hook, const std::string& owner, const std::string& origin)
    {
        // A hint, not a record: forgetting costs a hand-off that `admit` refuses, nothing more.
        if (groups_.size() >= 4 * max_total_ + 64 && !groups_.contains(hook))
            groups_.clear();
        Group& group = groups_[hook];
        if (group.owner != owner)
            group.owner = owner;
        if (group.origin != origin)
            group.origin = origin;
    }

    bool group_full_locked(std::int64_t hook) const
    {
        auto it = groups_.find(hook);
        return it != groups_.end() && (count_of(per_owner_, it->second.owner) >= owner_quota_ ||
                                       count_of(per_origin_, it->second.origin) >= origin_quota_);
    }

    const std::size_t max_total_;
    const std::size_t hook_quota_;
    const std::size_t owner_quota_;
    const std::size_t origin_quota_;
    mutable std::mutex mutex_;
    std::size_t held_ = 0;     // Claimed or handed off, started, outcome not yet recorded.
    std::size_t reserved_ = 0;         // Reserved for hand-offs and claims not yet started.
    std::size_t handoff_reserved_ = 0; // Of reserved_, those for hand-offs.
    std::unordered_map<std::int64_t, std::size_t> per_hook_;
    Counts per_owner_;  // Admitted and not finished.
    Counts per_origin_; // Admitted and not finished.
    std::unordered_map<std::int64_t, Group> groups_;
};

} // namespace whisperer::detail

#endif
