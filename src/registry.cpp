#include <whisperer/error.hpp>
#include <whisperer/registry.hpp>

namespace whisperer {

void Registry::register_event(std::string event_type, std::shared_ptr<const EventBase> event)
{
    validate_event_type(event_type);
    if (!event)
        throw ImproperlyConfigured("Event class of \"" + event_type + "\" is null.");
    if (events_.contains(event_type))
        throw AlreadyRegisteredEvent("Event type \"" + event_type + "\" is already registered.");
    events_.emplace(std::move(event_type), std::move(event));
}

void Registry::register_json_event(std::string event_type)
{
    register_event(std::move(event_type), std::make_shared<const JsonEvent>());
}

const EventBase* Registry::find(std::string_view event_type) const noexcept
{
    auto it = events_.find(event_type);
    return it == events_.end() ? nullptr : it->second.get();
}

const EventBase& Registry::get(std::string_view event_type) const
{
    if (const EventBase* event = find(event_type))
        return *event;
    throw UnknownEventType("\"" + std::string(event_type) + "\" is not a registered event type.");
}

std::vector<std::string> Registry::event_types() const
{
    std::vector<std::string> types;
    types.reserve(events_.size());
    for (const auto& entry : events_)
        types.push_back(entry.first);
    return types;
}

} // namespace whisperer
