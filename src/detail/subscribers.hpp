// Who receives an event: the filters every store applies to its active hooks.
#ifndef WHISPERER_DETAIL_SUBSCRIBERS_HPP
#define WHISPERER_DETAIL_SUBSCRIBERS_HPP

#include <boost/json/object.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace whisperer::detail {

/// A hook that may receive an event: its id, and the owner and config that filters match.
struct Subscriber {
    std::int64_t hook_id = 0;
    std::string owner;
    boost::json::object config;
};

/// True when `config` has every key of `filter` with the same value.
bool config_matches(const boost::json::object& config, const boost::json::object& filter);

/// True when `owners` is empty or holds `owner`.
bool owner_matches(const std::string& owner, const std::vector<std::string>& owners);

} // namespace whisperer::detail

#endif
