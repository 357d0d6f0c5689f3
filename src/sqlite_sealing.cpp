#include "detail/sqlite_sealing.hpp"

#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>

#include "detail/hook_credentials.hpp"
#include "detail/sqlite_rows.hpp"

#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>
#include <boost/json/serialize.hpp>

#include <functional>
#include <optional>

namespace whisperer::detail {

namespace {

/// The form of the sealed values a key row vouches for (`master_key.sealing`, schema 8).
constexpr int unbound_values = 1; // enc:v1: may be present, from before schema 8
constexpr int bound_values = 2;   // enc:v2: only

/// The new stored text of one credential, or nullopt to leave it as it is (setting `unreadable`
/// when that is because it does not open).
using Convert = std::function<std::optional<std::string>(std::int64_t hook_id, const std::string& field,
                                                         const std::string& stored, bool& unreadable)>;

/// Passes every credential of every hook through `convert` and rewrites the rows it changed, in
/// the caller's transaction. A row whose columns cannot be parsed is left and reported.
SqliteRekeyResult convert_credentials(SQLite::Database& db, const Convert& convert)
{
    SqliteRekeyResult result;
    SQLite::Statement select{db, "SELECT id, secret_key, retired_secrets, additional_headers, config FROM hooks "
                                 "ORDER BY id"};
    SQLite::Statement update{db, "UPDATE hooks SET secret_key = :secret_key, retired_secrets = :retired, "
                                 "additional_headers = :headers, config = :config WHERE id = :id"};
    while (select.executeStep()) {
        RowReader row{select};
        Hook hook;
        hook.id = row.int64();
        try {
            hook.secret_key = row.text();
            // Expired retired secrets are kept as they are: they are rewritten, not dropped.
            hook.retired_secrets = read_retired_secrets(row.text(), TimePoint::min(), hook.id);
            hook.additional_headers = row.object();
            hook.config = row.object();
        } catch (const StoreError&) {
            result.unreadable_hooks.push_back(hook.id);
            continue;
        }
        std::size_t changed = 0;
        bool unreadable = false;
        visit_credentials(hook, [&](const std::string& field, auto& value) {
            if (value.empty())
                return;
            auto converted = convert(hook.id, field, std::string(value), unreadable);
            if (!converted)
                return;
            value = *converted;
            ++changed;
        });
        if (unreadable)
            result.unreadable_hooks.push_back(hook.id);
        if (changed == 0)
            continue;
        update.bind(":secret_key", hook.secret_key);
        update.bind(":retired", retired_secrets_text(hook.retired_secrets));
        update.bind(":headers", boost::json::serialize(hook.additional_headers));
        update.bind(":config", boost::json::serialize(hook.config));
        update.bind(":id", hook.id);
        update.exec();
        update.reset();
        ++result.hooks;
        result.values += changed;
    }
    return result;
}

/// Runs `rewrite` with SQLite's `secure_delete` on, so that the text it replaces is zeroed in
/// freed space, and truncates the WAL after it when it changed something.
template <class Rewrite>
auto with_secure_delete(SQLite::Database& db, const std::string& path, Rewrite&& rewrite)
{
    std::string before;
    try {
        const int mode = db.execAndGet("PRAGMA secure_delete").getInt();
        before = mode == 2 ? "FAST" : std::to_string(mode);
        db.exec("PRAGMA secure_delete = ON");
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot configure '" + path + "': " + e.what());
    }
    auto result = rewrite();
    try {
        db.exec("PRAGMA secure_delete = " + before);
        if (result.values > 0)
            db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } catch (const SQLite::Exception& e) {
        throw StoreError("SQLite store: cannot configure '" + path + "': " + e.what());
    }
    return result;
}

std::string another_key(const std::string& path)
{
    return "SQLite store: '" + path + "' was encrypted with another master key; refusing to open it with this one";
}

} // namespace

void seal_credentials_at_rest(SQLite::Database& db, const SecretBox& box, const std::string& path)
{
    with_secure_delete(db, path, [&] {
        try {
            SQLite::Transaction transaction{db, SQLite::TransactionBehavior::IMMEDIATE};
            int sealing = bound_values;
            {
                SQLite::Statement select{db, "SELECT key_check, sealing FROM master_key WHERE id = 1"};
                if (select.executeStep()) {
                    // Another process may have set a key since the store checked it, unlocked.
                    if (!constant_time_equal(select.getColumn(0).getString(), box.key_check()))
                        throw StoreError(another_key(path));
                    sealing = select.getColumn(1).getInt();
                } else {
                    SQLite::Statement insert{db, "INSERT INTO master_key (id, key_check, created, sealing) "
                                                 "VALUES (1, :check, :now, :sealing)"};
                    insert.bind(":check", box.key_check());
                    insert.bind(":now", to_micros(Clock::now()));
                    insert.bind(":sealing", bound_values);
                    insert.exec();
                }
            }
            const bool upgrade = sealing == unbound_values;
            auto result = convert_credentials(db, [&](std::int64_t hook_id, const std::string& field,
                                                      const std::string& stored, bool& unreadable) -> std::optional<std::string> {
                if (!SecretBox::is_sealed(stored))
                    return box.seal(stored, credential_binding(hook_id, field));
                if (!stored.starts_with(SecretBox::unbound_prefix))
                    return std::nullopt;
                auto value = upgrade ? box.open_unbound(stored) : std::nullopt;
                if (!value) {
                    unreadable = true;
                    return std::nullopt;
                }
                return box.seal(*value, credential_binding(hook_id, field));
            });
            if (upgrade)
                db.exec("UPDATE master_key SET sealing = " + std::to_string(bound_values) + " WHERE id = 1");
            transaction.commit();
            return result;
        } catch (const SQLite::Exception& e) {
            throw StoreError("SQLite store '" + path + "': cannot encrypt hook credentials: " + e.what());
        }
    });
}

SqliteRekeyResult reseal_credentials(SQLite::Database& db, const SecretBox& from, const SecretBox& to,
                                     const std::string& path)
{
    return with_secure_delete(db, path, [&] {
        try {
            SQLite::Transaction transaction{db, SQLite::TransactionBehavior::IMMEDIATE};
            {
                SQLite::Statement select{db, "SELECT key_check FROM master_key WHERE id = 1"};
                if (!select.executeStep() || !constant_time_equal(select.getColumn(0).getString(), from.key_check()))
                    throw StoreError(another_key(path));
            }
            auto result = convert_credentials(db, [&](std::int64_t hook_id, const std::string& field,
                                                      const std::string& stored, bool& unreadable) -> std::optional<std::string> {
                const std::string binding = credential_binding(hook_id, field);
                if (!SecretBox::is_sealed(stored))
                    return to.seal(stored, binding);
                auto value = from.open(stored, binding);
                if (!value) {
                    unreadable = true;
                    return std::nullopt;
                }
                return to.seal(*value, binding);
            });
            SQLite::Statement replace{db, "UPDATE master_key SET key_check = :check, sealing = :sealing WHERE id = 1"};
            replace.bind(":check", to.key_check());
            replace.bind(":sealing", bound_values);
            replace.exec();
            transaction.commit();
            return result;
        } catch (const SQLite::Exception& e) {
            throw StoreError("SQLite store '" + path + "': cannot re-key: " + e.what());
        }
    });
}

} // namespace whisperer::detail
