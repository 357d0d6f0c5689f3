#include "catch.hpp"
#include "rejection.hpp"

#include <whisperer/envelope.hpp>
#include <whisperer/error.hpp>
#include <whisperer/event.hpp>

#include <boost/json/serialize.hpp>
#include <boost/json/value_from.hpp>

#include <string>
#include <typeindex>

using namespace whisperer;
namespace json = boost::json;
using whisperer::test::rejection_of;

namespace shop {

/// A host type that already converts to JSON through Boost.JSON's tag_invoke.
struct Package {
    int id = 0;
    int transfer_id = 0;
    std::string order_number;
};

void tag_invoke(json::value_from_tag, json::value& v, const Package& p)
{
    v = {{"id", p.id}, {"transfer_id", p.transfer_id}, {"order_number", p.order_number}};
}

} // namespace shop

namespace {

const shop::Package package{61, 49, "248398923123"};

class PackageCreateEvent : public WhispererEvent<shop::Package> {
public:
    static constexpr std::string_view event_type = "package-created";
};

/// Shapes the data itself instead of using the type's conversion.
class PackageSummaryEvent : public WhispererEvent<shop::Package> {
public:
    json::value serialize(const shop::Package& p) const override
    {
        return {{"package", p.id}, {"order", p.order_number}};
    }
};

/// Adds a key to every new envelope.
class StampedEvent : public WhispererEvent<shop::Package> {
public:
    void customize_payload(json::object& envelope) const override
    {
        envelope["source"] = "warehouse";
        envelope.at("event").as_object()["version"] = 2;
    }
};

/// A host type with no JSON conversion at all.
struct Opaque {
    int code = 0;
};

class OpaqueEvent : public WhispererEvent<Opaque> {
public:
    json::value serialize(const Opaque& o) const override { return {{"code", o.code}}; }
};

class ForgetfulOpaqueEvent : public WhispererEvent<Opaque> {};

} // namespace

TEST_CASE("a WhispererEvent serialises a host type through its tag_invoke conversion", "[event]")
{
    PackageCreateEvent event;
    const EventBase& erased = event;

    json::value expected = {{"id", 61}, {"transfer_id", 49}, {"order_number", "248398923123"}};
    CHECK(event.serialize(package) == expected);
    CHECK(erased.serialize_erased(&package) == expected);
    CHECK(json::serialize(erased.serialize_erased(&package)) ==
          R"({"id":61,"transfer_id":49,"order_number":"248398923123"})");
}

TEST_CASE("a WhispererEvent reports the C++ type of its instances", "[event]")
{
    PackageCreateEvent event;
    const EventBase& erased = event;
    CHECK(erased.instance_type() == std::type_index(typeid(shop::Package)));
    CHECK(erased.instance_type() != std::type_index(typeid(json::value)));
}

TEST_CASE("an overridden serialize is used by the type-erased interface", "[event]")
{
    PackageSummaryEvent event;
    const EventBase& erased = event;
    json::value data = erased.serialize_erased(&package);
    CHECK(json::serialize(data) == R"({"package":61,"order":"248398923123"})");
    CHECK_FALSE(data.as_object().contains("transfer_id"));
}

TEST_CASE("an event class can serialise a type that has no JSON conversion", "[event]")
{
    OpaqueEvent event;
    const EventBase& erased = event;
    const Opaque instance{404};
    CHECK(json::serialize(erased.serialize_erased(&instance)) == R"({"code":404})");
}

TEST_CASE("the default serialize of a type without JSON conversion throws ImproperlyConfigured", "[event]")
{
    ForgetfulOpaqueEvent event;
    const EventBase& erased = event;
    const Opaque instance{1};
    try {
        (void)erased.serialize_erased(&instance);
        FAIL("serialize produced JSON for a type without a conversion");
    } catch (const ImproperlyConfigured& e) {
        CHECK(e.api_code() == "event_100_4");
    }
}

TEST_CASE("customize_payload leaves the envelope unchanged by default", "[event]")
{
    PackageCreateEvent event;
    const EventBase& erased = event;
    json::object envelope = make_envelope(PackageCreateEvent::event_type, "da81e85139824c6187dd1e58a7d3f971",
                                          erased.serialize_erased(&package));
    const json::object before = envelope;
    erased.customize_payload(envelope);
    CHECK(envelope == before);
}

TEST_CASE("an overridden customize_payload can change the whole envelope", "[event]")
{
    StampedEvent event;
    const EventBase& erased = event;
    json::object envelope = make_envelope("package-created", "da81e85139824c6187dd1e58a7d3f971",
                                          erased.serialize_erased(&package));
    erased.customize_payload(envelope);
    CHECK(json::serialize(envelope) ==
          R"({"event":{"type":"package-created","uuid":"da81e85139824c6187dd1e58a7d3f971","version":2},)"
          R"("data":{"id":61,"transfer_id":49,"order_number":"248398923123"},"source":"warehouse"})");
}

TEST_CASE("JsonEvent delivers JSON instances unchanged", "[event]")
{
    JsonEvent event;
    const EventBase& erased = event;
    CHECK(erased.instance_type() == std::type_index(typeid(json::value)));

    const json::value values[] = {
        json::value{{"id", 7}, {"tags", json::array{"a", "b"}}, {"nested", {{"x", nullptr}}}},
        json::array{1, 2.5, "three"},
        json::value("plain string"),
        json::value(nullptr),
        json::value(42),
    };
    for (const json::value& v : values) {
        INFO(json::serialize(v));
        CHECK(erased.serialize_erased(&v) == v);
    }
}

TEST_CASE("validate_event_type accepts letters, digits, dot, dash and underscore", "[event]")
{
    for (std::string_view type : {"package-created", "a", "Order.Shipped_v2", "0-9._-", "x.y.z"}) {
        INFO(type);
        CHECK_NOTHROW(validate_event_type(type));
        CHECK(is_valid_event_type(type));
    }
}

TEST_CASE("validate_event_type rejects an empty type", "[event]")
{
    auto rejection = rejection_of([] { validate_event_type(""); });
    REQUIRE(rejection);
    CHECK(rejection->field == "event_type");
    CHECK_FALSE(is_valid_event_type(""));
}

TEST_CASE("validate_event_type accepts 124 characters and rejects 125", "[event]")
{
    const std::string longest(124, 'e');
    CHECK_NOTHROW(validate_event_type(longest));
    CHECK(is_valid_event_type(longest));

    const std::string too_long(125, 'e');
    auto rejection = rejection_of([&] { validate_event_type(too_long); });
    REQUIRE(rejection);
    CHECK(rejection->field == "event_type");
    CHECK(whisperer::test::contains(rejection->message, "124"));
    CHECK_FALSE(is_valid_event_type(too_long));
}

TEST_CASE("validate_event_type rejects characters outside its alphabet", "[event]")
{
    using namespace std::string_literals;
    for (const std::string& type : {"package created"s, "package/created"s, "caf\xc3\xa9"s, "\xe2\x9c\x93"s,
                                    "tab\there"s, "new\nline"s, "colon:type"s, "nul\0byte"s, "star*"s,
                                    " leading"s, "trailing "s}) {
        INFO(type);
        auto rejection = rejection_of([&] { validate_event_type(type); });
        REQUIRE(rejection);
        CHECK(rejection->field == "event_type");
        CHECK_FALSE(is_valid_event_type(type));
    }
}

TEST_CASE("validate_event_type errors carry the invalid_argument code", "[event]")
{
    try {
        validate_event_type("bad type");
        FAIL("validate_event_type accepted a space");
    } catch (const Error& e) {
        CHECK(e.code() == errc::invalid_argument);
    }
}
