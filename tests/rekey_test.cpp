// Replacing the master key: every secret and credential sealed again under the new key in one
// transaction, through the C++ API and through `whisperer-server rekey`, including a rekey
// killed half-way.

#include "catch.hpp"
#include "child_process.hpp"
#include "eventually.hpp"
#include "receiver.hpp"
#include "sqlite_file.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/sqlite_store.hpp>
#include <whisperer/verify.hpp>

#include "detail/base64.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <filesystem>
#include <regex>
#include <string>
#include <thread>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

const std::string password = "rekey-pw-Zt6Mb3Qe";
const std::string header_value = "rekey-hdr-Fw2Ks9Ya";

SqliteOptions with_key(const MasterKey& key)
{
    SqliteOptions options;
    options.master_key = key;
    options.max_hooks_per_owner = 0;
    return options;
}

/// A hook for `target_url` with a secret, a basic-auth password, a header and a retired secret.
Hook credentialed_hook(const std::string& owner, const std::string& target_url, int n = 0)
{
    Hook hook = sample_hook(owner, target_url);
    hook.secret_key = "rekey-secret-" + std::to_string(n) + "-Lp4Rv8";
    hook.callback.clear();
    hook.additional_headers = {{"X-Api-Key", header_value}};
    hook.config = {{"auth", {{"auth_type", "basic"}, {"username", owner}, {"password", password}}}};
    return hook;
}

/// The StoreError message of opening `path` with `key`, or "" when it opens.
std::string open_refusal(const std::string& path, const MasterKey& key)
{
    try {
        SqliteStore store{path, with_key(key)};
    } catch (const StoreError& e) {
        return e.what();
    }
    return "";
}

void require_credentials(SqliteStore& store, std::int64_t id, const std::string& secret)
{
    const auto hook = store.find_hook(id);
    REQUIRE(hook);
    CHECK(hook->secret_key == secret);
    CHECK(hook->additional_headers.at("X-Api-Key").as_string() == header_value);
    CHECK(hook->config.at("auth").at("password").as_string() == password);
}

std::string server_binary()
{
    return WHISPERER_SERVER_PATH;
}

/// POSTs `body` to `target` on 127.0.0.1:`port` and returns the response.
boost::beast::http::response<boost::beast::http::string_body> post(unsigned short port, const std::string& target,
                                                                   const std::string& token, const std::string& body)
{
    namespace beast = boost::beast;
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket socket{io};
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    beast::http::request<beast::http::string_body> request{beast::http::verb::post, target, 11};
    request.set(beast::http::field::host, "127.0.0.1");
    request.set(beast::http::field::authorization, "Token " + token);
    request.set(beast::http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    beast::http::write(socket, request);
    beast::flat_buffer buffer;
    beast::http::response<beast::http::string_body> response;
    beast::http::read(socket, buffer, response);
    return response;
}

} // namespace

TEST_CASE("rekey seals every credential under the new key and the old key no longer opens the database", "[rekey]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey old_key = MasterKey::generate();
    const MasterKey new_key = MasterKey::generate();
    std::int64_t id = 0;
    std::string sealed_before;
    {
        SqliteStore store{path, with_key(old_key)};
        id = store.create_hook(credentialed_hook("alice", "https://a.example/hook")).id;
        SecretRotation rotation;
        rotation.new_secret = "rekey-new-secret-Hx3";
        store.rotate_secret(id, rotation);
        store.create_hook(credentialed_hook("bob", "https://b.example/hook", 1));
        sealed_before = query_text(path, "SELECT secret_key FROM hooks WHERE id = " + std::to_string(id)).value_or("");

        const SqliteRekeyResult result = store.rekey(new_key);
        CHECK(result.hooks == 2);
        CHECK(result.values == 7); // 2 secrets, 1 retired secret, 2 passwords, 2 header values
        CHECK(result.unreadable_hooks.empty());
        // The store goes on with the new key.
        require_credentials(store, id, "rekey-new-secret-Hx3");
        REQUIRE(store.find_hook(id)->retired_secrets.size() == 1);
        CHECK(store.find_hook(id)->retired_secrets[0].secret == "rekey-secret-0-Lp4Rv8");
        store.create_hook(credentialed_hook("carol", "https://c.example/hook", 2));
        CHECK_THROWS_AS(store.rekey(new_key), StoreError); // the key it has already
    }
    CHECK(query_text(path, "SELECT secret_key FROM hooks WHERE id = " + std::to_string(id)).value_or("") != sealed_before);
    CHECK(open_refusal(path, old_key).find("another master key") != std::string::npos);
    SqliteStore store{path, with_key(new_key)};
    require_credentials(store, id, "rekey-new-secret-Hx3");
    CHECK(store.find_hook(id)->retired_secrets.at(0).secret == "rekey-secret-0-Lp4Rv8");
    CHECK(store.list_hooks({}).items.size() == 3);
}

TEST_CASE("rekey leaves a credential the old key cannot open as it was and names its hook", "[rekey]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey old_key = MasterKey::generate();
    std::int64_t alice = 0, bob = 0;
    {
        SqliteStore store{path, with_key(old_key)};
        alice = store.create_hook(credentialed_hook("alice", "https://a.example/hook")).id;
        bob = store.create_hook(credentialed_hook("bob", "https://b.example/hook", 1)).id;
    }
    exec_on_file(path, "UPDATE hooks SET secret_key = (SELECT secret_key FROM hooks WHERE id = " +
                           std::to_string(alice) + ") WHERE id = " + std::to_string(bob));
    SqliteStore store{path, with_key(old_key)};
    const SqliteRekeyResult result = store.rekey(MasterKey::generate());
    CHECK(result.unreadable_hooks == std::vector<std::int64_t>{bob});
    require_credentials(store, alice, "rekey-secret-0-Lp4Rv8");
    CHECK_THROWS_AS(store.find_hook(bob), StoreError);
}

TEST_CASE("whisperer-server rekey replaces the key: the old key is refused, the new one serves signed deliveries",
          "[rekey][server]")
{
    TempDir dir;
    const std::string db = dir.file("whisperer.db");
    const std::string old_key = dir.file("old.key");
    const std::string new_key = dir.file("new.key");
    Receiver receiver;
    std::string token;
    const Hook hook = credentialed_hook("alice", receiver.url("/hook"));
    {
        SqliteStore store{db, with_key(MasterKey::from_file(old_key))};
        store.create_hook(hook);
        token = issue_token(store, "publisher", false, true);
    }

    const auto [rekeyed, rekey_output] =
        run_process(server_binary(), {"rekey", "--db", db, "--secret-key-file", old_key, "--new-key-file", new_key},
                    dir.file("rekey.out"));
    INFO(rekey_output);
    REQUIRE(rekeyed.exit_code == 0);
    CHECK(rekey_output.find("Sealed 3 secrets and credentials of 1 webhooks") != std::string::npos);
    CHECK((std::filesystem::status(new_key).permissions() & std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));

    const auto [refused, refusal] = run_process(
        server_binary(), {"--db", db, "--secret-key-file", old_key, "--listen", "127.0.0.1:0"}, dir.file("old.out"));
    INFO(refusal);
    CHECK(refused.exit_code == 1);
    CHECK(refusal.find("another master key") != std::string::npos);
    const auto [again, again_output] =
        run_process(server_binary(), {"rekey", "--db", db, "--secret-key-file", old_key, "--new-key-file", new_key},
                    dir.file("again.out"));
    CHECK(again.exit_code == 1);

    ChildProcess server(server_binary(),
                        {"--db", db, "--secret-key-file", new_key, "--listen", "127.0.0.1:0", "--event-type",
                         "package-created", "--allow-private", "127.0.0.0/8"},
                        dir.file("server.out"));
    const std::regex listening{R"(listening on http://127\.0\.0\.1:(\d+)/)"};
    std::smatch match;
    std::string output;
    REQUIRE(eventually([&] {
        output = server.output();
        return std::regex_search(output, match, listening) || server.ended();
    }));
    INFO(output);
    REQUIRE(match.size() == 2);
    const auto port = static_cast<unsigned short>(std::stoi(match[1].str()));
    const auto response = post(port, "/whisperer/events/", token, R"({"event_type": "package-created", "data": {}})");
    INFO(response.body());
    REQUIRE(response.result_int() == 202);
    REQUIRE(receiver.wait_for(1));
    const ReceivedRequest delivery = receiver.requests().front();
    std::vector<std::pair<std::string, std::string>> headers(delivery.headers.begin(), delivery.headers.end());
    const std::vector<std::string> secrets{hook.secret_key};
    const VerifyResult verified = verify_webhook(headers, delivery.body, secrets);
    INFO(verified.reason);
    CHECK(verified);
    CHECK(delivery.header("authorization") == "Basic " + detail::base64_encode("alice:" + password));
    CHECK(delivery.header("x-api-key") == header_value);
    server.signal(SIGTERM);
    CHECK(server.wait().exit_code == 0);
}

TEST_CASE("a rekey killed half-way leaves the database readable with exactly one of the two keys", "[rekey][server]")
{
    TempDir dir;
    const std::string db = dir.file("whisperer.db");
    const std::string old_key = dir.file("old.key");
    const std::string new_key = dir.file("new.key");
    // Enough hooks that the rekey's transaction spills pages into the WAL long before it commits.
    constexpr int hooks = 20000;
    {
        SqliteStore store{db, with_key(MasterKey::from_file(old_key))};
        for (int i = 0; i < hooks; ++i)
            store.create_hook(credentialed_hook("owner-" + std::to_string(i % 50),
                                                "https://h" + std::to_string(i) + ".example/hook", i));
    }
    REQUIRE_FALSE(std::filesystem::exists(db + "-wal"));

    ChildProcess rekey(server_binary(),
                       {"rekey", "--db", db, "--secret-key-file", old_key, "--new-key-file", new_key},
                       dir.file("rekey.out"));
    // Killed once its uncommitted pages reach the WAL.
    while (!rekey.ended()) {
        std::error_code ec;
        const auto wal = std::filesystem::file_size(db + "-wal", ec);
        if (!ec && wal > 512 * 1024) {
            rekey.signal(SIGKILL);
            break;
        }
        std::this_thread::sleep_for(200us);
    }
    const ProcessEnd end = rekey.wait();
    INFO(rekey.output());
    REQUIRE(end.signal == SIGKILL); // It had not finished: the kill came in the middle.

    const std::string with_old = open_refusal(db, MasterKey::from_file(old_key));
    const std::string with_new = open_refusal(db, MasterKey::from_file(new_key));
    INFO(with_old << " / " << with_new);
    CHECK(with_old.empty());
    CHECK(with_new.find("another master key") != std::string::npos);
    {
        SqliteStore store{db, with_key(MasterKey::from_file(old_key))};
        for (std::int64_t id : {std::int64_t{1}, std::int64_t{hooks / 2}, std::int64_t{hooks}})
            require_credentials(store, id, "rekey-secret-" + std::to_string(id - 1) + "-Lp4Rv8");
    }

    // Run to its end, the rekey moves every hook to the new key.
    const auto [done, output] = run_process(
        server_binary(), {"rekey", "--db", db, "--secret-key-file", old_key, "--new-key-file", new_key},
        dir.file("rekey2.out"));
    INFO(output);
    REQUIRE(done.exit_code == 0);
    CHECK(open_refusal(db, MasterKey::from_file(old_key)).find("another master key") != std::string::npos);
    SqliteStore store{db, with_key(MasterKey::from_file(new_key))};
    for (std::int64_t id : {std::int64_t{1}, std::int64_t{hooks / 2}, std::int64_t{hooks}})
        require_credentials(store, id, "rekey-secret-" + std::to_string(id - 1) + "-Lp4Rv8");
}
