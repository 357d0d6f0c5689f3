#ifndef WHISPERER_REGISTRY_HPP
#define WHISPERER_REGISTRY_HPP

#include <whisperer/event.hpp>

#include <boost/json/value_from.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace whisperer {

/// Maps event types to the host's event classes.
///
/// An ordinary object: a host usually makes one and hands it to the dispatcher and the router.
/// Thread safety: registering is not thread-safe; once the host has finished registering,
/// any number of threads may look up concurrently.
class Registry {
public:
    /// Registers `E` (a `WhispererEvent<T>` with a `static constexpr event_type`).
    /// Throws `AlreadyRegisteredEvent` (event_100_5) when the type is taken, and
    /// `ValidationError` when the type name is invalid.
    template <class E, class... Args>
    void register_event(Args&&... args)
    {
        static_assert(std::is_base_of_v<EventBase, E>,
                      "register_event<E>: E must derive from whisperer::WhispererEvent<T>");
        using T = typename E::instance_type_t;
        static_assert(boost::json::has_value_from<T>::value ||
                          !std::is_same_v<decltype(&E::serialize),
                                          boost::json::value (WhispererEvent<T>::*)(const T&) const>,
                      "register_event<E>: E must override serialize when T has no Boost.JSON conversion");
        register_event(std::string(E::event_type), std::make_shared<const E>(std::forward<Args>(args)...));
    }

    /// Registers an event class object under `event_type`. Same errors as above.
    void register_event(std::string event_type, std::shared_ptr<const EventBase> event);

    /// Registers `event_type` with a `JsonEvent`: its instances are JSON, delivered unchanged.
    void register_json_event(std::string event_type);

    /// The event class of `event_type`; throws `UnknownEventType` (event_100_2).
    const EventBase& get(std::string_view event_type) const;

    /// The event class of `event_type`, or nullptr.
    const EventBase* find(std::string_view event_type) const noexcept;

    bool contains(std::string_view event_type) const noexcept { return find(event_type) != nullptr; }

    /// Every registered type, sorted.
    std::vector<std::string> event_types() const;

private:
    std::map<std::string, std::shared_ptr<const EventBase>, std::less<>> events_;
};

} // namespace whisperer

#endif
