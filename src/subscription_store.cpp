#include <whisperer/subscription_store.hpp>

namespace whisperer {

std::vector<std::int64_t> SubscriptionStore::subscriber_ids(const std::string& event_type,
                                                            const boost::json::object& config_filter,
                                                            const std::vector<std::string>& owners)
{
    std::vector<std::int64_t> ids;
    for (const Hook& hook : active_hooks(event_type, config_filter, owners))
        ids.push_back(hook.id);
    return ids;
}

} // namespace whisperer
