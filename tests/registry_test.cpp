#include "catch.hpp"
#include "rejection.hpp"

#include <whisperer/error.hpp>
#include <whisperer/registry.hpp>

#include <boost/json/serialize.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
namespace json = boost::json;

namespace {

struct Package {
    int id = 0;
};

class PackageCreateEvent : public WhispererEvent<Package> {
public:
    static constexpr std::string_view event_type = "package-created";
    json::value serialize(const Package& p) const override { return {{"id", p.id}}; }
};

class PackageDeleteEvent : public WhispererEvent<Package> {
public:
    static constexpr std::string_view event_type = "package-deleted";
    json::value serialize(const Package& p) const override { return {{"deleted", p.id}}; }
};

/// An event class whose constructor takes arguments.
class LabelledEvent : public WhispererEvent<Package> {
public:
    static constexpr std::string_view event_type = "package-labelled";
    explicit LabelledEvent(std::string label) : label_(std::move(label)) {}
    json::value serialize(const Package& p) const override { return {{"id", p.id}, {"label", label_}}; }

private:
    std::string label_;
};

class BadlyNamedEvent : public JsonEvent {
public:
    static constexpr std::string_view event_type = "package created";
};

std::string serialized(const EventBase& event, const Package& p)
{
    return json::serialize(event.serialize_erased(&p));
}

} // namespace

TEST_CASE("register_event makes an event class available under its event_type", "[registry]")
{
    Registry registry;
    registry.register_event<PackageCreateEvent>();

    CHECK(registry.contains("package-created"));
    REQUIRE(registry.find("package-created") != nullptr);
    const EventBase& event = registry.get("package-created");
    CHECK(&event == registry.find("package-created"));
    CHECK(event.instance_type() == std::type_index(typeid(Package)));
    CHECK(serialized(event, Package{61}) == R"({"id":61})");
}

TEST_CASE("register_event forwards constructor arguments to the event class", "[registry]")
{
    Registry registry;
    registry.register_event<LabelledEvent>("fragile");
    CHECK(serialized(registry.get("package-labelled"), Package{3}) == R"({"id":3,"label":"fragile"})");
}

TEST_CASE("registering a taken event type throws AlreadyRegisteredEvent and keeps the first", "[registry]")
{
    Registry registry;
    registry.register_event<PackageCreateEvent>();
    const EventBase* first = registry.find("package-created");

    try {
        registry.register_event<PackageCreateEvent>();
        FAIL("a duplicate event type was accepted");
    } catch (const AlreadyRegisteredEvent& e) {
        CHECK(e.api_code() == "event_100_5");
        CHECK(e.code() == errc::event_already_registered);
        CHECK(whisperer::test::contains(e.what(), "package-created"));
    }
    CHECK_THROWS_AS(registry.register_json_event("package-created"), AlreadyRegisteredEvent);
    CHECK_THROWS_AS(registry.register_event("package-created", std::make_shared<const PackageDeleteEvent>()),
                    AlreadyRegisteredEvent);

    CHECK(registry.find("package-created") == first);
    CHECK(serialized(registry.get("package-created"), Package{1}) == R"({"id":1})");
    CHECK(registry.event_types() == std::vector<std::string>{"package-created"});
}

TEST_CASE("looking up an unknown event type throws UnknownEventType", "[registry]")
{
    Registry registry;
    registry.register_event<PackageCreateEvent>();

    try {
        (void)registry.get("package-shipped");
        FAIL("get returned an event class for an unknown type");
    } catch (const UnknownEventType& e) {
        CHECK(e.api_code() == "event_100_2");
        CHECK(e.code() == errc::unknown_event_type);
        CHECK(whisperer::test::contains(e.what(), "package-shipped"));
    }
    CHECK(registry.find("package-shipped") == nullptr);
    CHECK_FALSE(registry.contains("package-shipped"));
    CHECK_FALSE(registry.contains("Package-Created"));
    CHECK_FALSE(registry.contains(""));
}

TEST_CASE("lookups match the whole string view, not a prefix", "[registry]")
{
    Registry registry;
    registry.register_event<PackageCreateEvent>();
    const std::string longer = "package-created-later";
    CHECK(registry.find(std::string_view(longer).substr(0, 15)) != nullptr);
    CHECK(registry.find(longer) == nullptr);
    CHECK(registry.find("package-create") == nullptr);
}

TEST_CASE("event_types lists every registered type sorted", "[registry]")
{
    Registry registry;
    CHECK(registry.event_types().empty());

    registry.register_json_event("zeta");
    registry.register_event<PackageDeleteEvent>();
    registry.register_json_event("alpha");
    registry.register_event<PackageCreateEvent>();
    registry.register_json_event("Beta");

    CHECK(registry.event_types() ==
          std::vector<std::string>{"Beta", "alpha", "package-created", "package-deleted", "zeta"});
}

TEST_CASE("register_json_event delivers JSON instances unchanged", "[registry]")
{
    Registry registry;
    registry.register_json_event("order.paid");

    const EventBase& event = registry.get("order.paid");
    CHECK(event.instance_type() == std::type_index(typeid(json::value)));
    const json::value payload = {{"order", 17}, {"total", "12.50"}, {"items", json::array{1, 2}}};
    CHECK(event.serialize_erased(&payload) == payload);
}

TEST_CASE("registering an invalid event type name is rejected and registers nothing", "[registry]")
{
    Registry registry;
    auto rejection = whisperer::test::rejection_of([&] { registry.register_event<BadlyNamedEvent>(); });
    REQUIRE(rejection);
    CHECK(rejection->field == "event_type");

    CHECK_THROWS_AS(registry.register_json_event(""), ValidationError);
    CHECK_THROWS_AS(registry.register_json_event(std::string(125, 'x')), ValidationError);
    CHECK_THROWS_AS(registry.register_json_event("a/b"), ValidationError);
    CHECK(registry.event_types().empty());
}

TEST_CASE("registering a null event class throws ImproperlyConfigured", "[registry]")
{
    Registry registry;
    try {
        registry.register_event("package-created", nullptr);
        FAIL("a null event class was accepted");
    } catch (const ImproperlyConfigured& e) {
        CHECK(e.api_code() == "event_100_4");
    }
    CHECK_FALSE(registry.contains("package-created"));
}

TEST_CASE("separate registries do not share registrations", "[registry]")
{
    Registry first;
    Registry second;
    first.register_event<PackageCreateEvent>();
    CHECK(first.contains("package-created"));
    CHECK_FALSE(second.contains("package-created"));
    CHECK_NOTHROW(second.register_event<PackageCreateEvent>());
}

TEST_CASE("several threads can look up a fully registered registry at once", "[registry]")
{
    Registry registry;
    constexpr int type_count = 64;
    for (int i = 0; i < type_count; ++i)
        registry.register_json_event("type-" + std::to_string(i));
    registry.register_event<PackageCreateEvent>();

    std::atomic<int> mismatches{0};
    std::atomic<int> lookups{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 200; ++round) {
                for (int i = 0; i < type_count; ++i) {
                    const std::string type = "type-" + std::to_string((i + t) % type_count);
                    const json::value payload = {{"n", i}};
                    const EventBase* event = registry.find(type);
                    if (event == nullptr || event->serialize_erased(&payload) != payload ||
                        &registry.get(type) != event)
                        ++mismatches;
                    if (registry.find("type-missing") != nullptr)
                        ++mismatches;
                    ++lookups;
                }
                Package p{round};
                if (serialized(registry.get("package-created"), p) != R"({"id":)" + std::to_string(round) + "}")
                    ++mismatches;
                if (registry.event_types().size() != type_count + 1)
                    ++mismatches;
            }
        });
    }
    for (std::thread& thread : threads)
        thread.join();

    CHECK(lookups == 4 * 200 * type_count);
    CHECK(mismatches == 0);
}
