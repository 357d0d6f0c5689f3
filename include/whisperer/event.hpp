#ifndef WHISPERER_EVENT_HPP
#define WHISPERER_EVENT_HPP

#include <whisperer/error.hpp>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/json/value_from.hpp>

#include <string>
#include <string_view>
#include <typeindex>
#include <typeinfo>

namespace whisperer {

/// Throws `ValidationError` unless `event_type` is 1 to 124 characters of letters, digits,
/// `.`, `-` and `_`.
void validate_event_type(std::string_view event_type);

/// True when `event_type` passes `validate_event_type`.
bool is_valid_event_type(std::string_view event_type) noexcept;

/// The type-erased face of an event class, as the registry and the dispatcher see it.
///
/// Hosts do not derive from this directly; they derive from `WhispererEvent<T>`.
/// Implementations must be safe to call from several threads at once (they are `const`).
class EventBase {
public:
    virtual ~EventBase() = default;

    /// The C++ type of the instances this event class serialises.
    virtual std::type_index instance_type() const noexcept = 0;

    /// Serialises `*instance`, which must point to an object of `instance_type()`.
    virtual boost::json::value serialize_erased(const void* instance) const = 0;

    /// Last chance to change the whole envelope `{"event": ..., "data": ...}` of a new event
    /// (not of a re-send). The default leaves it unchanged.
    virtual void customize_payload(boost::json::object& envelope) const {}
};

/// Base of the host's event classes: one per event type.
///
/// Derive with the instance type and declare the type name:
/// \code
/// class PackageCreateEvent : public whisperer::WhispererEvent<Package> {
/// public:
///     static constexpr std::string_view event_type = "package-created";
/// };
/// \endcode
/// `serialize` defaults to `boost::json::value_from(instance)`, so a `T` with a `tag_invoke`
/// conversion needs nothing more; override it to shape the data differently.
template <class T>
class WhispererEvent : public EventBase {
public:
    using instance_type_t = T;

    /// Turns an instance into the envelope's `data`. The default needs a Boost.JSON conversion
    /// of `T`; without one it throws `ImproperlyConfigured`, so such an event class must override it.
    virtual boost::json::value serialize(const T& instance) const
    {
        if constexpr (boost::json::has_value_from<T>::value)
            return boost::json::value_from(instance);
        else
            throw ImproperlyConfigured("An event class whose instance type has no JSON conversion "
                                       "must override serialize.");
    }

    std::type_index instance_type() const noexcept final { return typeid(T); }

    boost::json::value serialize_erased(const void* instance) const final
    {
        return serialize(*static_cast<const T*>(instance));
    }
};

/// The event class of a type whose instances are already JSON (the original's plain dict).
/// `whisperer-server --event-type` and `Registry::register_json_event` use it.
class JsonEvent : public WhispererEvent<boost::json::value> {
public:
    boost::json::value serialize(const boost::json::value& instance) const override
    {
        return instance;
    }
};

} // namespace whisperer

#endif
