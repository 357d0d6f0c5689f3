#include <whisperer/error.hpp>

namespace whisperer {

namespace {

class Category final : public std::error_category {
public:
    const char* name() const noexcept override { return "whisperer"; }

    std::string message(int value) const override
    {
        switch (static_cast<errc>(value)) {
        case errc::hook_not_found: return "Webhook does not exist.";
        case errc::hook_already_registered: return "Webhook is already registered.";
        case errc::delivery_not_found: return "Webhook event does not exist.";
        case errc::unknown_event_type: return "Unknown event type.";
        case errc::event_already_delivered: return "Event is already delivered.";
        case errc::improperly_configured: return "Event is improperly configured.";
        case errc::event_already_registered: return "Event type is already registered.";
        case errc::event_still_retrying: return "Event is still in retry process.";
        case errc::invalid_argument: return "Invalid argument.";
        case errc::store_failure: return "Subscription store failure.";
        case errc::store_version_too_new: return "Database schema is newer than this whisperer.";
        case errc::no_default_dispatcher: return "No default dispatcher is installed.";
        case errc::dispatcher_stopped: return "The dispatcher is stopped.";
        case errc::payload_too_large: return "Payload is too large.";
        case errc::too_many_hooks: return "The owner has as many active webhooks as allowed.";
        }
        return "Unknown whisperer error.";
    }
};

} // namespace

const std::error_category& whisperer_category() noexcept
{
    static const Category category;
    return category;
}

std::string_view api_code(errc e) noexcept
{
    switch (e) {
    case errc::hook_not_found: return "webhook_100_1";
    case errc::hook_already_registered: return "webhook_100_2";
    case errc::delivery_not_found: return "event_100_1";
    case errc::unknown_event_type: return "event_100_2";
    case errc::event_already_delivered: return "event_100_3";
    case errc::improperly_configured: return "event_100_4";
    case errc::event_already_registered: return "event_100_5";
    case errc::event_still_retrying: return "event_100_6";
    case errc::invalid_argument: return "whisperer_invalid";
    case errc::store_failure: return "whisperer_store";
    case errc::store_version_too_new: return "whisperer_store_version";
    case errc::no_default_dispatcher: return "whisperer_no_dispatcher";
    case errc::dispatcher_stopped: return "whisperer_stopped";
    case errc::payload_too_large: return "whisperer_payload_too_large";
    case errc::too_many_hooks: return "whisperer_too_many_hooks";
    }
    return "whisperer_unknown";
}

Error::Error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}

} // namespace whisperer
