// Credentials sealed at rest with a master key: what the files hold, each sealed value bound to
// its hook and field, unreadable hooks on the claim and hand-off paths, and the upgrade of a
// database sealed in the unbound enc:v1: form.

#include "api_fixture.hpp"
#include "catch.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "sqlite_file.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <whisperer/error.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/sqlite_store.hpp>

#include "detail/base64.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/json.hpp>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <thread>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

using namespace whisperer;
using namespace whisperer::test;
using boost::beast::http::status;
using boost::beast::http::verb;
namespace json = boost::json;

namespace {

const std::string secret = "sealed-secret-Wm3Kd8Zq";
const std::string password = "sealed-pw-Hn5Tc2Vx";
const std::string header_value = "sealed-hdr-Pj7Lr4Bs";

SqliteOptions with_key(const MasterKey& key)
{
    SqliteOptions options;
    options.master_key = key;
    return options;
}

/// True when any file in `dir` (the database, its -wal and -shm, event journals) holds `text`.
bool any_file_holds(const std::filesystem::path& dir, const std::string& text)
{
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (!entry.is_regular_file())
            continue;
        std::ifstream file{entry.path(), std::ios::binary};
        const std::string bytes{std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
        if (bytes.find(text) != std::string::npos)
            return true;
    }
    return false;
}

/// A hook of `owner` with a secret, a basic-auth password and a header, all recognisable.
Hook credentialed_hook(const std::string& owner, const std::string& target_url)
{
    Hook hook = sample_hook(owner, target_url);
    hook.secret_key = secret + "-" + owner;
    hook.additional_headers = {{"X-Api-Key", header_value + "-" + owner}};
    hook.config = {{"auth", {{"auth_type", "basic"}, {"username", owner}, {"password", password + "-" + owner}}}};
    return hook;
}

/// Alice's and Bob's hooks in a new file at `path` sealed with `key`, with `events` events for both.
std::pair<std::int64_t, std::int64_t> two_hooks(const std::string& path, const MasterKey& key, int events)
{
    SqliteStore store{path, with_key(key)};
    const std::int64_t alice = store.create_hook(credentialed_hook("alice", "https://a.example/hook")).id;
    const std::int64_t bob = store.create_hook(credentialed_hook("bob", "https://b.example/hook")).id;
    for (int i = 0; i < events; ++i) {
        NewEvent event = sample_event();
        REQUIRE(store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.size() == 2);
    }
    return {alice, bob};
}

/// The text of column `column` of hook `id`, read past the store.
std::string stored_column(const std::string& path, std::int64_t id, const std::string& column)
{
    return query_text(path, "SELECT " + column + " FROM hooks WHERE id = " + std::to_string(id)).value_or("");
}

/// Whether hook `id` is active, and its disabled reason, read past the store.
std::pair<bool, std::string> hook_state(const std::string& path, std::int64_t id)
{
    const bool active = query_int(path, "SELECT is_active FROM hooks WHERE id = " + std::to_string(id)) == 1;
    return {active, stored_column(path, id, "disabled_reason")};
}

/// `value` sealed as whisperer sealed secrets before schema 8: `enc:v1:`, AES-256-GCM under
/// `key` with one fixed label as associated data, whatever the hook.
std::string sealed_unbound(const MasterKey& key, const std::string& value)
{
    constexpr std::string_view label = "whisperer hook secret v1";
    std::string raw(12 + value.size() + 16, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    REQUIRE(RAND_bytes(out, 12) == 1);
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> context{EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free};
    int length = 0;
    REQUIRE(EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, key.bytes().data(), out) == 1);
    REQUIRE(EVP_EncryptUpdate(context.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(label.data()),
                              static_cast<int>(label.size())) == 1);
    REQUIRE(EVP_EncryptUpdate(context.get(), out + 12, &length, reinterpret_cast<const unsigned char*>(value.data()),
                              static_cast<int>(value.size())) == 1);
    REQUIRE(EVP_EncryptFinal_ex(context.get(), out + 12 + length, &length) == 1);
    REQUIRE(EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, 16, out + 12 + value.size()) == 1);
    return "enc:v1:" + detail::base64_encode(raw);
}

} // namespace

TEST_CASE("with a master key no file of the database, its WAL or the event journal holds a credential in clear",
          "[credentials]")
{
    const MasterKey key = MasterKey::generate();
    Receiver receiver;
    std::int64_t id = 0;
    {
        ApiFixture api(quick_dispatcher_options(), with_key(key));
        const json::object body{
            {"event_type", "package-created"},
            {"target_url", receiver.url("/hook")},
            {"secret_key", secret},
            {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 1}}}}},
            {"additional_headers", {{"X-Api-Key", header_value}}},
            {"config", {{"auth", {{"auth_type", "basic"}, {"username", "alice"}, {"password", password}}}}},
        };
        const auto created = api.call(verb::post, "/whisperer/hooks/", api.alice, json::serialize(body));
        REQUIRE(created.result() == status::created);
        id = json::parse(created.body()).at("id").as_int64();
        // Through the journal (deliver_event returns once it is written there) and the store.
        for (int i = 0; i < 20; ++i)
            api.dispatcher->deliver_event(json::value{{"n", i}}, "package-created");
        for (const std::string& text : {secret, password, header_value})
            CHECK_FALSE(any_file_holds(api.dir.path(), text));
        api.dispatcher->start();
        REQUIRE(receiver.wait_for(20));
        for (const std::string& text : {secret, password, header_value})
            CHECK_FALSE(any_file_holds(api.dir.path(), text));
        const auto request = receiver.requests().front();
        CHECK(request.header("x-api-key") == header_value);
        CHECK(request.header("authorization") == "Basic " + detail::base64_encode("alice:" + password));
        CHECK(request.header("webhook-signature").starts_with("v1,"));

        const std::string path = api.dir.file("whisperer.db");
        CHECK(stored_column(path, id, "secret_key").starts_with("enc:v2:"));
        CHECK(stored_column(path, id, "json_extract(additional_headers, '$.X-Api-Key')").starts_with("enc:v2:"));
        CHECK(stored_column(path, id, "json_extract(config, '$.auth.password')").starts_with("enc:v2:"));
        // The names stay in clear: they are what the filters and the operator read.
        CHECK(stored_column(path, id, "json_extract(config, '$.auth.username')") == "alice");
    }

    // The same hook without a key is in the file as written: the search above can find it.
    ApiFixture plain;
    Hook hook = credentialed_hook("carol", "https://c.example/hook");
    plain.store.create_hook(hook);
    CHECK(any_file_holds(plain.dir.path(), hook.additional_headers.at("X-Api-Key").as_string().c_str()));
}

TEST_CASE("events held in the journal for the store hold no credential of the hooks they go to", "[credentials]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    SqliteStore store{path, with_key(MasterKey::generate())};
    const Hook hook = credentialed_hook("alice", "https://a.example/hook");
    store.create_hook(hook);
    Registry registry;
    registry.register_json_event("package-created");
    // The executor does not run yet: accepted events stay in the journal, not yet in the store.
    boost::asio::io_context io;
    Dispatcher dispatcher(io.get_executor(), registry, store, quick_dispatcher_options());
    for (int i = 0; i < 5; ++i)
        dispatcher.deliver_event(json::value{{"n", i}}, "package-created");
    bool journaled = false;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
        journaled = journaled || entry.path().filename().string().find(".journal") != std::string::npos;
    REQUIRE(journaled);
    for (const std::string& text : {hook.secret_key, std::string(hook.additional_headers.at("X-Api-Key").as_string()),
                                    std::string(hook.config.at("auth").at("password").as_string())})
        CHECK_FALSE(any_file_holds(dir.path(), text));
    std::thread runner([&] { io.run_for(std::chrono::seconds(2)); });
    dispatcher.stop(std::chrono::seconds(1));
    runner.join();
}

TEST_CASE("a sealed credential moved to another hook or field does not open and the claim deactivates that hook",
          "[credentials]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    const auto [alice, bob] = two_hooks(path, key, 1);
    const std::string a = std::to_string(alice), b = std::to_string(bob);
    std::string field;
    SECTION("secret_key")
    {
        field = "secret_key";
        exec_on_file(path, "UPDATE hooks SET secret_key = (SELECT secret_key FROM hooks WHERE id = " + a +
                               ") WHERE id = " + b);
    }
    SECTION("a header value")
    {
        field = "additional_headers.X-Api-Key";
        exec_on_file(path, "UPDATE hooks SET additional_headers = (SELECT additional_headers FROM hooks WHERE id = " +
                               a + ") WHERE id = " + b);
    }
    SECTION("the auth password")
    {
        field = "config.auth.password";
        exec_on_file(path, "UPDATE hooks SET config = (SELECT config FROM hooks WHERE id = " + a + ") WHERE id = " + b);
    }
    SECTION("a header value moved to another header of the same hook")
    {
        field = "additional_headers.X-Other";
        exec_on_file(path, "UPDATE hooks SET additional_headers = json_object('X-Other', "
                           "json_extract(additional_headers, '$.X-Api-Key')) WHERE id = " + b);
    }
    SECTION("the secret moved into the password of the same hook")
    {
        field = "config.auth.password";
        exec_on_file(path, "UPDATE hooks SET config = json_set(config, '$.auth.password', secret_key) WHERE id = " + b);
    }

    SqliteStore store{path, with_key(key)};
    try {
        store.find_hook(bob);
        FAIL("a credential of another hook or field was opened");
    } catch (const StoreError& e) {
        const std::string message = e.what();
        CHECK(message.find("The " + field + " of hook " + b) != std::string::npos);
        CHECK(message.find("cannot be decrypted") != std::string::npos);
    }
    CHECK(store.find_hook(alice)->secret_key == secret + "-alice");

    const auto claimed = store.claim_due(claim_by("w", Clock::now()));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].hook.id == alice);
    const auto [active, reason] = hook_state(path, bob);
    CHECK_FALSE(active);
    CHECK(reason.find("cannot be read") != std::string::npos);
    CHECK(reason.find(field) != std::string::npos);
    CHECK(query_int(path, "SELECT COUNT(*) FROM outbox WHERE hook_id = " + b + " AND lease_owner IS NULL") == 1);
}

TEST_CASE("a hand-off batch with an unreadable hook stores every event and leaves that hook to the claim",
          "[credentials]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    const auto [alice, bob] = two_hooks(path, key, 0);
    exec_on_file(path, "UPDATE hooks SET secret_key = (SELECT secret_key FROM hooks WHERE id = " +
                           std::to_string(alice) + ") WHERE id = " + std::to_string(bob));

    SqliteStore store{path, with_key(key)};
    std::vector<NewEvent> events(2, sample_event());
    events[1].uuid = next_uuid();
    for (NewEvent& event : events) {
        event.handoff_hook_ids = {alice, bob};
        event.handoff_worker = "w";
        event.handoff_lease = std::chrono::seconds(10);
    }
    const auto enqueued = store.enqueue_events(events);
    REQUIRE(enqueued.size() == 2);
    for (const EnqueuedEvent& event : enqueued) {
        CHECK(event.delivery_ids.size() == 2);
        REQUIRE(event.handed_off.size() == 1);
        CHECK(event.handed_off[0].hook.id == alice);
    }
    CHECK(query_int(path, "SELECT COUNT(*) FROM outbox WHERE hook_id = " + std::to_string(bob) +
                              " AND lease_owner IS NULL") == 2);
    // The claim that meets the unreadable hook deactivates it; its rows stay in the outbox.
    CHECK(store.claim_due(claim_by("w", Clock::now())).empty());
    CHECK_FALSE(hook_state(path, bob).first);
    CHECK(hook_state(path, alice).first);
}

TEST_CASE("a database sealed in the unbound enc:v1 form is sealed again, bound to its hooks, when opened with its key",
          "[credentials]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    std::int64_t id = 0;
    {
        SqliteStore store{path, with_key(key)};
        id = store.create_hook(credentialed_hook("alice", "https://a.example/hook")).id;
    }
    // The file as schema 7 left it: secrets sealed without binding, passwords and headers in clear.
    const std::string old_secret = sealed_unbound(key, "v1-secret");
    const std::string old_retired = sealed_unbound(key, "v1-retired");
    const std::string expires = std::to_string(
        std::chrono::duration_cast<std::chrono::microseconds>((Clock::now() + std::chrono::hours(1)).time_since_epoch())
            .count());
    exec_on_file(path, "UPDATE hooks SET secret_key = '" + old_secret + "', retired_secrets = '[{\"secret\":\"" +
                           old_retired + "\",\"expires\":" + expires +
                           "}]', additional_headers = '{\"X-Api-Key\":\"v1-header\"}', "
                           "config = '{\"auth\":{\"auth_type\":\"basic\",\"username\":\"u\",\"password\":\"v1-pw\"}}'"
                           " WHERE id = " + std::to_string(id) + ";"
                           "ALTER TABLE master_key DROP COLUMN sealing; PRAGMA user_version = 7;");
    REQUIRE(any_file_holds(dir.path(), "v1-header"));

    {
        SqliteStore store{path, with_key(key)};
        const Hook hook = *store.find_hook(id);
        CHECK(hook.secret_key == "v1-secret");
        REQUIRE(hook.retired_secrets.size() == 1);
        CHECK(hook.retired_secrets[0].secret == "v1-retired");
        CHECK(hook.additional_headers.at("X-Api-Key") == "v1-header");
        CHECK(hook.config.at("auth").at("password") == "v1-pw");
    }
    CHECK(query_int(path, "PRAGMA user_version") == SqliteStore::schema_version());
    CHECK(query_int(path, "SELECT sealing FROM master_key") == 2);
    CHECK(stored_column(path, id, "secret_key").starts_with("enc:v2:"));
    CHECK(stored_column(path, id, "retired_secrets").find("enc:v2:") != std::string::npos);
    CHECK(stored_column(path, id, "retired_secrets").find("enc:v1:") == std::string::npos);
    CHECK_FALSE(any_file_holds(dir.path(), "v1-header"));
    CHECK_FALSE(any_file_holds(dir.path(), "v1-pw"));

    // After the upgrade the unbound form no longer opens: a value copied from an old backup is refused.
    exec_on_file(path, "UPDATE hooks SET secret_key = '" + old_secret + "' WHERE id = " + std::to_string(id));
    SqliteStore store{path, with_key(key)};
    CHECK_THROWS_AS(store.find_hook(id), StoreError);
}
