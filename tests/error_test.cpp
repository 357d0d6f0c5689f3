#include "catch.hpp"

#include <whisperer/error.hpp>

#include <array>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>

using namespace whisperer;

namespace {

constexpr std::array all_codes = {
    errc::hook_not_found,        errc::hook_already_registered, errc::delivery_not_found,
    errc::unknown_event_type,    errc::event_already_delivered, errc::improperly_configured,
    errc::event_already_registered, errc::event_still_retrying, errc::invalid_argument,
    errc::store_failure,         errc::store_version_too_new,   errc::no_default_dispatcher,
    errc::dispatcher_stopped,    errc::payload_too_large,       errc::too_many_hooks,
};

template <class E>
void check_exception(errc expected_code, std::string_view expected_api_code)
{
    try {
        throw E("something went wrong");
    } catch (const Error& e) {
        CHECK(e.code() == expected_code);
        CHECK(e.api_code() == expected_api_code);
        CHECK(e.error_code() == make_error_code(expected_code));
        CHECK(std::string(e.what()) == "something went wrong");
    }
}

} // namespace

TEST_CASE("whisperer error codes belong to a category named whisperer", "[error]")
{
    CHECK(std::string(whisperer_category().name()) == "whisperer");
    for (errc e : all_codes) {
        std::error_code ec = make_error_code(e);
        CHECK(ec.category() == whisperer_category());
        CHECK(ec.value() == static_cast<int>(e));
        CHECK(ec);
    }
}

TEST_CASE("errc converts implicitly to std::error_code and compares with it", "[error]")
{
    std::error_code ec = errc::unknown_event_type;
    CHECK(ec == errc::unknown_event_type);
    CHECK(ec != errc::hook_not_found);
    // Same integer value in another category is a different error.
    CHECK(make_error_code(errc::hook_not_found) != std::error_code(1, std::generic_category()));
}

TEST_CASE("every error code has its own non-empty message", "[error]")
{
    std::set<std::string> messages;
    for (errc e : all_codes) {
        std::string message = make_error_code(e).message();
        INFO("code " << static_cast<int>(e));
        CHECK_FALSE(message.empty());
        CHECK_FALSE(message == whisperer_category().message(0));
        messages.insert(message);
    }
    CHECK(messages.size() == all_codes.size());
    CHECK(whisperer_category().message(9999) == "Unknown whisperer error.");
}

TEST_CASE("api_code returns the original API's codes", "[error]")
{
    CHECK(api_code(errc::hook_not_found) == "webhook_100_1");
    CHECK(api_code(errc::hook_already_registered) == "webhook_100_2");
    CHECK(api_code(errc::delivery_not_found) == "event_100_1");
    CHECK(api_code(errc::unknown_event_type) == "event_100_2");
    CHECK(api_code(errc::event_already_delivered) == "event_100_3");
    CHECK(api_code(errc::improperly_configured) == "event_100_4");
    CHECK(api_code(errc::event_already_registered) == "event_100_5");
    CHECK(api_code(errc::event_still_retrying) == "event_100_6");
}

TEST_CASE("codes the original API lacks get distinct whisperer_ codes", "[error]")
{
    std::set<std::string_view> codes;
    for (errc e : all_codes)
        codes.insert(api_code(e));
    CHECK(codes.size() == all_codes.size());
    for (errc e : {errc::invalid_argument, errc::store_failure, errc::store_version_too_new,
                   errc::no_default_dispatcher, errc::dispatcher_stopped, errc::payload_too_large,
                   errc::too_many_hooks}) {
        INFO("code " << static_cast<int>(e));
        CHECK(api_code(e).starts_with("whisperer_"));
    }
}

TEST_CASE("each named exception carries its code and API code", "[error]")
{
    check_exception<WebhookDoesNotExist>(errc::hook_not_found, "webhook_100_1");
    check_exception<WebhookAlreadyRegistered>(errc::hook_already_registered, "webhook_100_2");
    check_exception<WebhookEventDoesNotExist>(errc::delivery_not_found, "event_100_1");
    check_exception<UnknownEventType>(errc::unknown_event_type, "event_100_2");
    check_exception<EventAlreadyDelivered>(errc::event_already_delivered, "event_100_3");
    check_exception<ImproperlyConfigured>(errc::improperly_configured, "event_100_4");
    check_exception<AlreadyRegisteredEvent>(errc::event_already_registered, "event_100_5");
    check_exception<EventStillRetrying>(errc::event_still_retrying, "event_100_6");
    check_exception<StoreError>(errc::store_failure, "whisperer_store");
    check_exception<TooManyHooks>(errc::too_many_hooks, "whisperer_too_many_hooks");
}

TEST_CASE("whisperer exceptions can be caught as std::runtime_error", "[error]")
{
    CHECK_THROWS_AS(throw UnknownEventType("nope"), std::runtime_error);
    CHECK_THROWS_AS(throw ValidationError("field", "bad"), std::runtime_error);
    CHECK_THROWS_AS(throw ValidationError("field", "bad"), Error);
}

TEST_CASE("ValidationError names the field and has the invalid_argument code", "[error]")
{
    ValidationError e("retry_countdown_config.kwargs.base", "kwarg \"base\" is required.");
    CHECK(e.field() == "retry_countdown_config.kwargs.base");
    CHECK(std::string(e.what()) == "kwarg \"base\" is required.");
    CHECK(e.code() == errc::invalid_argument);
    CHECK(e.error_code() == errc::invalid_argument);
    CHECK(e.api_code() == api_code(errc::invalid_argument));

    ValidationError unnamed("", "bad input");
    CHECK(unnamed.field().empty());
}
