#ifndef WHISPERER_ERROR_HPP
#define WHISPERER_ERROR_HPP

#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace whisperer {

/// Error codes of whisperer, in the category named "whisperer".
///
/// The first group carries the codes of the original dj-whisperer API (`webhook_100_1`, ...),
/// which `api_code()` returns; the rest are whisperer's own.
enum class errc {
    hook_not_found = 1,          ///< webhook_100_1: the hook does not exist (or is not yours).
    hook_already_registered,     ///< webhook_100_2: an active hook with this owner, URL and type exists.
    delivery_not_found,          ///< event_100_1: the delivery does not exist.
    unknown_event_type,          ///< event_100_2: no event class is registered under this type.
    event_already_delivered,     ///< event_100_3: re-sending a delivered event needs `force`.
    improperly_configured,       ///< event_100_4: an event class or instance does not fit.
    event_already_registered,    ///< event_100_5: the registry already has this event type.
    event_still_retrying,        ///< event_100_6: the delivery is still retrying; needs `force`.
    invalid_argument,            ///< input rejected by validation; the message names the field.
    store_failure,               ///< the subscription store could not read or write.
    store_version_too_new,       ///< the database was written by a newer whisperer.
    no_default_dispatcher,       ///< whisperer::deliver_event called before set_default_dispatcher.
    dispatcher_stopped,          ///< the dispatcher is stopped and takes no new events.
    payload_too_large,           ///< the serialised envelope exceeds the configured limit.
    too_many_hooks,              ///< the owner already has as many active hooks as the store allows.
};

/// The category of `errc`; its name() is "whisperer".
const std::error_category& whisperer_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept
{
    return {static_cast<int>(e), whisperer_category()};
}

/// The original API's code for `e` ("webhook_100_2", "event_100_3", ...), or a "whisperer_" code
/// ("whisperer_invalid", "whisperer_store", ...) for codes the original does not have.
std::string_view api_code(errc e) noexcept;

/// Base of every exception whisperer throws: carries an `errc` and its API code.
class Error : public std::runtime_error {
public:
    Error(errc code, const std::string& message);
    errc code() const noexcept { return code_; }
    std::error_code error_code() const noexcept { return make_error_code(code_); }
    /// "webhook_100_2", "event_100_3", ... as in the original API.
    std::string_view api_code() const noexcept { return whisperer::api_code(code_); }

private:
    errc code_;
};

/// Thrown when input fails validation; `field()` names the offending field (may be empty).
class ValidationError : public Error {
public:
    ValidationError(std::string field, const std::string& message)
        : Error(errc::invalid_argument, message), field_(std::move(field)) {}
    const std::string& field() const noexcept { return field_; }

private:
    std::string field_;
};

#define WHISPERER_DEFINE_ERROR(Name, Code)                                                      \
    class Name : public Error {                                                                  \
    public:                                                                                      \
        explicit Name(const std::string& message) : Error(Code, message) {}                      \
    }

WHISPERER_DEFINE_ERROR(WebhookDoesNotExist, errc::hook_not_found);
WHISPERER_DEFINE_ERROR(WebhookAlreadyRegistered, errc::hook_already_registered);
WHISPERER_DEFINE_ERROR(WebhookEventDoesNotExist, errc::delivery_not_found);
WHISPERER_DEFINE_ERROR(UnknownEventType, errc::unknown_event_type);
WHISPERER_DEFINE_ERROR(EventAlreadyDelivered, errc::event_already_delivered);
WHISPERER_DEFINE_ERROR(ImproperlyConfigured, errc::improperly_configured);
WHISPERER_DEFINE_ERROR(AlreadyRegisteredEvent, errc::event_already_registered);
WHISPERER_DEFINE_ERROR(EventStillRetrying, errc::event_still_retrying);
WHISPERER_DEFINE_ERROR(StoreError, errc::store_failure);
WHISPERER_DEFINE_ERROR(TooManyHooks, errc::too_many_hooks);

#undef WHISPERER_DEFINE_ERROR

} // namespace whisperer

template <>
struct std::is_error_code_enum<whisperer::errc> : std::true_type {};

#endif
