// The room a claim has left under its owner and origin limits, whatever the store.
#ifndef WHISPERER_DETAIL_CLAIM_ROOM_HPP
#define WHISPERER_DETAIL_CLAIM_ROOM_HPP

#include <whisperer/subscription_store.hpp>

#include <algorithm>
#include <cstddef>
#include <map>
#include <string>

namespace whisperer::detail {

/// What a claim may still take of each owner's and each origin's hooks: the request's limits
/// less the rows taken so far. A `Candidate` has the `owner` and `origin` (`target_origin`) of
/// its hook. The request must outlive the room.
class GroupRoom {
public:
    explicit GroupRoom(const ClaimRequest& request) : request_(&request)
    {
        for (const GroupClaimLimit& entry : request.owner_limits)
            owners_[entry.key] = entry.limit;
        for (const GroupClaimLimit& entry : request.origin_limits)
            origins_[entry.key] = entry.limit;
    }

    template <class Candidate>
    std::size_t left(const Candidate& c)
    {
        return std::min(left_of(owners_, c.owner, request_->per_owner_limit),
                        left_of(origins_, c.origin, request_->per_origin_limit));
    }

    template <class Candidate>
    void took(const Candidate& c, std::size_t n)
    {
        left_of(owners_, c.owner, request_->per_owner_limit) -= n;
        left_of(origins_, c.origin, request_->per_origin_limit) -= n;
    }

private:
    static std::size_t& left_of(std::map<std::string, std::size_t>& lefts, const std::string& key,
                                std::size_t otherwise)
    {
        return lefts.try_emplace(key, otherwise).first->second;
    }

    const ClaimRequest* request_;
    std::map<std::string, std::size_t> owners_;
    std::map<std::string, std::size_t> origins_;
};

} // namespace whisperer::detail

#endif
