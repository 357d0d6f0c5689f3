// Hook secrets encrypted at rest in a real SQLite file: what the file holds, opening it with the
// right key, another key or none, and secrets stored in clear before a key was configured.

#include <whisperer/error.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/sqlite_store.hpp>

#include "catch.hpp"
#include "sqlite_file.hpp"
#include "store_samples.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

using namespace whisperer;
using namespace whisperer::test;
using namespace std::chrono_literals;

namespace {

const std::string first_secret = "first-secret-ZQ7xv3Lm9Pa2";
const std::string second_secret = "second-secret-Kc8Ry4Nw1Ub6";

/// Every file of the database (the main file, and its -wal and -shm when present), by name.
std::map<std::string, std::string> database_files(const std::string& path)
{
    std::map<std::string, std::string> files;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        const std::string name = path + suffix;
        if (!std::filesystem::exists(name))
            continue;
        std::ifstream file{name, std::ios::binary};
        files[name] = {std::istreambuf_iterator<char>{file}, std::istreambuf_iterator<char>{}};
    }
    return files;
}

bool files_contain(const std::string& path, const std::string& text)
{
    for (const auto& [name, bytes] : database_files(path))
        if (bytes.find(text) != std::string::npos)
            return true;
    return false;
}

/// The stored text of a hook's secret_key and retired_secrets columns, read past the store.
std::pair<std::string, std::string> stored_columns(const std::string& path, std::int64_t hook_id)
{
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT secret_key, retired_secrets FROM hooks WHERE id = ?", -1, &statement,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_int64(statement, 1, hook_id);
    REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
    std::pair<std::string, std::string> columns{reinterpret_cast<const char*>(sqlite3_column_text(statement, 0)),
                                                reinterpret_cast<const char*>(sqlite3_column_text(statement, 1))};
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return columns;
}

SqliteOptions with_key(const MasterKey& key)
{
    SqliteOptions options;
    options.master_key = key;
    return options;
}

/// A hook of alice's with `first_secret`, rotated to `second_secret` (the first retired for a
/// day); returns its id.
std::int64_t hook_with_two_secrets(SqliteStore& store)
{
    Hook hook = sample_hook("alice", "https://a.example/hook");
    hook.secret_key = first_secret;
    const std::int64_t id = store.create_hook(hook).id;
    SecretRotation rotation;
    rotation.new_secret = second_secret;
    store.rotate_secret(id, rotation);
    return id;
}

void require_two_secrets(SqliteStore& store, std::int64_t id)
{
    const auto hook = store.find_hook(id);
    REQUIRE(hook);
    CHECK(hook->secret_key == second_secret);
    REQUIRE(hook->retired_secrets.size() == 1);
    CHECK(hook->retired_secrets[0].secret == first_secret);
}

/// The StoreError message of opening `path` with `options`, or "" when it opens.
std::string open_refusal(const std::string& path, SqliteOptions options)
{
    try {
        SqliteStore store{path, std::move(options)};
    } catch (const StoreError& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("with a master key the database file holds no hook secret in clear", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    std::int64_t id = 0;
    {
        SqliteStore store{path, with_key(key)};
        id = hook_with_two_secrets(store);
        require_two_secrets(store, id);
        // While the store is open too, in the WAL.
        CHECK_FALSE(files_contain(path, first_secret));
        CHECK_FALSE(files_contain(path, second_secret));
    }
    CHECK_FALSE(files_contain(path, first_secret));
    CHECK_FALSE(files_contain(path, second_secret));
    const auto [secret_key, retired] = stored_columns(path, id);
    CHECK(secret_key.starts_with("enc:v2:"));
    CHECK(retired.find("enc:v2:") != std::string::npos);

    // The same steps without a key leave both secrets readable in the file.
    const std::string plain = dir.file("plain.db");
    {
        SqliteStore store{plain};
        hook_with_two_secrets(store);
    }
    CHECK(files_contain(plain, first_secret));
    CHECK(files_contain(plain, second_secret));
}

TEST_CASE("each stored secret is encrypted with its own nonce", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t a = 0, b = 0;
    {
        SqliteStore store{path, with_key(MasterKey::generate())};
        Hook hook = sample_hook("alice", "https://a.example/hook");
        hook.secret_key = first_secret;
        a = store.create_hook(hook).id;
        hook.target_url = "https://b.example/hook";
        b = store.create_hook(hook).id;
    }
    CHECK(stored_columns(path, a).first != stored_columns(path, b).first);
}

TEST_CASE("a database reopened with its master key reads its secrets back", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const std::string key_file = dir.file("master.key");
    std::int64_t id = 0;
    {
        SqliteStore store{path, with_key(MasterKey::from_file(key_file))};
        id = hook_with_two_secrets(store);
    }
    SqliteStore store{path, with_key(MasterKey::from_file(key_file))};
    require_two_secrets(store, id);
    NewEvent event = sample_event("package-created", t0);
    store.enqueue_events(std::span{&event, 1});
    const auto claimed = store.claim_due(claim_by("w", Clock::now()));
    REQUIRE(claimed.size() == 1);
    CHECK(signing_secrets(claimed[0].hook, Clock::now()) == std::vector<std::string>{second_secret, first_secret});
}

TEST_CASE("opening with another master key, or none, fails clearly and leaves the file unchanged", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    std::int64_t id = 0;
    {
        SqliteStore store{path, with_key(key)};
        id = hook_with_two_secrets(store);
    }
    const auto before = database_files(path);
    REQUIRE(before.size() == 1);

    const std::string wrong_key = open_refusal(path, with_key(MasterKey::generate()));
    CHECK(wrong_key.find(path) != std::string::npos);
    CHECK(wrong_key.find("another master key") != std::string::npos);
    CHECK(database_files(path) == before);

    const std::string no_key = open_refusal(path, {});
    CHECK(no_key.find(path) != std::string::npos);
    CHECK(no_key.find("master key") != std::string::npos);
    CHECK(database_files(path) == before);

    SqliteStore store{path, with_key(key)};
    require_two_secrets(store, id);
}

TEST_CASE("secrets stored in clear before a key was configured are read, then encrypted in place", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    std::int64_t id = 0, unsigned_id = 0;
    {
        SqliteStore store{path};
        id = hook_with_two_secrets(store);
        Hook without_secret = sample_hook("bob", "https://b.example/hook");
        without_secret.secret_key.clear();
        unsigned_id = store.create_hook(without_secret).id;
    }
    REQUIRE(files_contain(path, first_secret));
    REQUIRE(files_contain(path, second_secret));
    REQUIRE(stored_columns(path, id).first == second_secret);

    const MasterKey key = MasterKey::generate();
    {
        SqliteStore store{path, with_key(key)};
        require_two_secrets(store, id);
        CHECK(store.find_hook(unsigned_id)->secret_key.empty());
    }
    CHECK(stored_columns(path, id).first.starts_with("enc:v2:"));
    CHECK(stored_columns(path, id).second.find("enc:v2:") != std::string::npos);
    CHECK(stored_columns(path, unsigned_id).first.empty());
    CHECK_FALSE(files_contain(path, first_secret));
    CHECK_FALSE(files_contain(path, second_secret));

    // From now on the key is needed, and the secrets read back through it.
    CHECK_FALSE(open_refusal(path, {}).empty());
    SqliteStore store{path, with_key(key)};
    require_two_secrets(store, id);
}

TEST_CASE("a secret whose stored bytes were changed fails its read clearly", "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    std::int64_t id = 0;
    {
        SqliteStore store{path, with_key(key)};
        Hook hook = sample_hook("alice", "https://a.example/hook");
        hook.secret_key = first_secret;
        id = store.create_hook(hook).id;
    }
    std::string sealed = stored_columns(path, id).first;
    REQUIRE(sealed.size() > 20);
    sealed[sealed.size() - 5] = sealed[sealed.size() - 5] == 'A' ? 'B' : 'A';
    exec_on_file(path, "UPDATE hooks SET secret_key = '" + sealed + "' WHERE id = " + std::to_string(id));

    SqliteStore store{path, with_key(key)};
    try {
        store.find_hook(id);
        FAIL("a changed secret was read");
    } catch (const StoreError& e) {
        CHECK(std::string(e.what()).find("hook " + std::to_string(id)) != std::string::npos);
        CHECK(std::string(e.what()).find("cannot be decrypted") != std::string::npos);
    }
}

TEST_CASE("a hook whose secret cannot be read is deactivated by a claim and the others' rows are claimed",
          "[sqlite]")
{
    TempDir dir;
    const std::string path = dir.file("whisperer.db");
    const MasterKey key = MasterKey::generate();
    std::int64_t damaged = 0;
    std::int64_t healthy = 0;
    {
        SqliteStore store{path, with_key(key)};
        Hook hook = sample_hook("alice", "https://a.example/hook");
        hook.secret_key = first_secret;
        damaged = store.create_hook(hook).id;
        hook = sample_hook("bob", "https://b.example/hook");
        hook.secret_key = second_secret;
        healthy = store.create_hook(hook).id;
        NewEvent event = sample_event();
        REQUIRE(store.enqueue_events(std::span{&event, 1}).at(0).delivery_ids.size() == 2);
    }
    std::string sealed = stored_columns(path, damaged).first;
    sealed[sealed.size() - 5] = sealed[sealed.size() - 5] == 'A' ? 'B' : 'A';
    exec_on_file(path, "UPDATE hooks SET secret_key = '" + sealed + "' WHERE id = " + std::to_string(damaged));

    SqliteStore store{path, with_key(key)};
    const auto claimed = store.claim_due(claim_by("w", Clock::now()));
    REQUIRE(claimed.size() == 1);
    CHECK(claimed[0].hook.id == healthy);
    CHECK(claimed[0].hook.secret_key == second_secret);

    // The damaged hook is inactive and says why (read past the store: reading the hook through
    // it still fails, clearly); its delivery still waits in the outbox, unclaimed.
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(db,
                               "SELECT h.is_active, h.disabled_reason, h.disabled_at IS NOT NULL, "
                               "(SELECT COUNT(*) FROM outbox o WHERE o.hook_id = h.id AND o.lease_owner IS NULL) "
                               "FROM hooks h WHERE h.id = ?",
                               -1, &statement, nullptr) == SQLITE_OK);
    sqlite3_bind_int64(statement, 1, damaged);
    REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
    CHECK(sqlite3_column_int(statement, 0) == 0);
    const std::string reason = reinterpret_cast<const char*>(sqlite3_column_text(statement, 1));
    CHECK(reason.find("cannot be read") != std::string::npos);
    CHECK(reason.find("cannot be decrypted") != std::string::npos);
    CHECK(sqlite3_column_int(statement, 2) == 1);
    CHECK(sqlite3_column_int(statement, 3) == 1);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    CHECK_THROWS_AS(store.find_hook(damaged), StoreError);
    // Later claims go on without it.
    CHECK(store.claim_due(claim_by("w", Clock::now())).empty());
}
