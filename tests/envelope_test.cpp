#include "catch.hpp"

#include <whisperer/envelope.hpp>

#include <boost/json/serialize.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>

using namespace whisperer;
namespace json = boost::json;

namespace {

constexpr std::string_view seed_uuid = "da81e85139824c6187dd1e58a7d3f971";

json::value seed_data()
{
    return {{"id", 61}, {"transfer_id", 49}, {"order_number", "248398923123"}};
}

} // namespace

TEST_CASE("make_envelope produces the Quick Start page's envelope byte for byte", "[envelope]")
{
    json::object envelope = make_envelope("package-created", seed_uuid, seed_data());
    CHECK(json::serialize(envelope) ==
          R"({"event":{"type":"package-created","uuid":"da81e85139824c6187dd1e58a7d3f971"},)"
          R"("data":{"id":61,"transfer_id":49,"order_number":"248398923123"}})");
}

TEST_CASE("make_envelope can put the data under the payload key", "[envelope]")
{
    json::object envelope = make_envelope("package-created", seed_uuid, seed_data(), DataKey::payload);
    CHECK(json::serialize(envelope) ==
          R"({"event":{"type":"package-created","uuid":"da81e85139824c6187dd1e58a7d3f971"},)"
          R"("payload":{"id":61,"transfer_id":49,"order_number":"248398923123"}})");
    CHECK_FALSE(envelope.contains("data"));
}

TEST_CASE("the data key option is spelled data or payload", "[envelope]")
{
    CHECK(to_string(DataKey::data) == "data");
    CHECK(to_string(DataKey::payload) == "payload");
}

TEST_CASE("make_envelope accepts any JSON value as data and escapes strings", "[envelope]")
{
    CHECK(json::serialize(make_envelope("t", seed_uuid, nullptr)) ==
          R"({"event":{"type":"t","uuid":"da81e85139824c6187dd1e58a7d3f971"},"data":null})");
    CHECK(json::serialize(make_envelope("t", seed_uuid, json::array{1, "two"})) ==
          R"({"event":{"type":"t","uuid":"da81e85139824c6187dd1e58a7d3f971"},"data":[1,"two"]})");
    CHECK(json::serialize(make_envelope("t", seed_uuid, json::value("say \"hi\"\n"))) ==
          R"({"event":{"type":"t","uuid":"da81e85139824c6187dd1e58a7d3f971"},"data":"say \"hi\"\n"})");
}

TEST_CASE("make_envelope has exactly the event and data keys", "[envelope]")
{
    json::object envelope = make_envelope("package-created", seed_uuid, seed_data());
    CHECK(envelope.size() == 2);
    const json::object& event = envelope.at("event").as_object();
    CHECK(event.size() == 2);
    CHECK(event.at("type").as_string() == "package-created");
    CHECK(event.at("uuid").as_string() == seed_uuid);
    CHECK(envelope.at("data") == seed_data());
}

TEST_CASE("new_event_uuid returns 32 lowercase hex digits of a version 7 UUID that starts with the time",
          "[envelope]")
{
    for (int i = 0; i < 100; ++i) {
        const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
        const std::string uuid = new_event_uuid();
        const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
        INFO(uuid);
        REQUIRE(uuid.size() == 32);
        for (char c : uuid)
            CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
        CHECK(uuid[12] == '7');
        CHECK(std::string_view("89ab").find(uuid[16]) != std::string_view::npos);
        CHECK(is_event_uuid(uuid));
        const auto millis = static_cast<long long>(std::stoull(uuid.substr(0, 12), nullptr, 16));
        CHECK(millis >= before);
        CHECK(millis <= after);
    }
}

TEST_CASE("uuids of later events sort after earlier ones", "[envelope]")
{
    const std::string earlier = new_event_uuid();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    const std::string later = new_event_uuid();
    CHECK(earlier < later);
}

TEST_CASE("new_event_uuid does not repeat over many calls", "[envelope]")
{
    constexpr std::size_t count = 20000;
    std::set<std::string> seen;
    for (std::size_t i = 0; i < count; ++i)
        seen.insert(new_event_uuid());
    CHECK(seen.size() == count);
}

TEST_CASE("is_event_uuid accepts only 32 lowercase hex digits", "[envelope]")
{
    CHECK(is_event_uuid(seed_uuid));
    CHECK(is_event_uuid("00000000000000000000000000000000"));
    CHECK(is_event_uuid("ffffffffffffffffffffffffffffffff"));

    CHECK_FALSE(is_event_uuid(""));
    CHECK_FALSE(is_event_uuid("da81e85139824c6187dd1e58a7d3f97"));   // 31
    CHECK_FALSE(is_event_uuid("da81e85139824c6187dd1e58a7d3f9710")); // 33
    CHECK_FALSE(is_event_uuid("DA81E85139824C6187DD1E58A7D3F971"));
    CHECK_FALSE(is_event_uuid("da81e851-3982-4c61-87dd-1e58a7d3f971"));
    CHECK_FALSE(is_event_uuid("ga81e85139824c6187dd1e58a7d3f971"));
    CHECK_FALSE(is_event_uuid("da81e85139824c6187dd1e58a7d3f97 "));
    CHECK_FALSE(is_event_uuid(std::string_view("da81e85139824c6187dd1e58a7d3f9\0" "1", 32)));
}
