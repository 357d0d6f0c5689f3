#pragma once
// Reading and writing a whisperer database file past the store, through a SQLite connection of
// the test's own: what another process, a migration's predecessor or an attacker would do.

#include "catch.hpp"

#include <sqlite3.h>

#include <optional>
#include <string>

namespace whisperer::test {

/// Runs `sql` (one or more statements) on the file at `path`; fails the test when it fails.
inline void exec_on_file(const std::string& path, const std::string& sql)
{
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    char* error = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &error);
    const std::string message = error ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    INFO(message);
    REQUIRE(rc == SQLITE_OK);
}

/// The first column of the first row `sql` returns on the file at `path`, as an integer, or
/// nothing when it returns no row. `text` is bound to its first parameter, when given.
inline std::optional<long long> query_int(const std::string& path, const std::string& sql,
                                          const std::optional<std::string>& text = std::nullopt)
{
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
    if (text)
        sqlite3_bind_text(statement, 1, text->c_str(), -1, SQLITE_TRANSIENT);
    std::optional<long long> value;
    if (sqlite3_step(statement) == SQLITE_ROW)
        value = sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
}

/// The first column of the first row `sql` returns on the file at `path`, as text, or nothing
/// when it returns no row or NULL.
inline std::optional<std::string> query_text(const std::string& path, const std::string& sql)
{
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    sqlite3_stmt* statement = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
    std::optional<std::string> value;
    if (sqlite3_step(statement) == SQLITE_ROW && sqlite3_column_type(statement, 0) != SQLITE_NULL)
        value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return value;
}

} // namespace whisperer::test
