// Helpers for running SqliteStore's SQL statements.
#ifndef WHISPERER_DETAIL_SQLITE_STATEMENTS_HPP
#define WHISPERER_DETAIL_SQLITE_STATEMENTS_HPP

#include <SQLiteCpp/Statement.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace whisperer::detail {

/// A size as an SQL LIMIT, saturating instead of wrapping.
inline std::int64_t sql_limit(std::size_t n) noexcept
{
    return static_cast<std::int64_t>(std::min<std::size_t>(n, std::numeric_limits<std::int64_t>::max()));
}

/// A cached statement lent out for one use: its bindings start cleared, and it is reset when the
/// loan ends, so that no half-read SELECT keeps a snapshot open after the transaction.
class LentStatement {
public:
    explicit LentStatement(SQLite::Statement& statement) : statement_(statement)
    {
        statement_.reset();
        statement_.clearBindings();
    }
    ~LentStatement() { statement_.tryReset(); }
    LentStatement(const LentStatement&) = delete;
    LentStatement& operator=(const LentStatement&) = delete;

    SQLite::Statement* operator->() const noexcept { return &statement_; }
    SQLite::Statement& operator*() const noexcept { return statement_; }

private:
    SQLite::Statement& statement_;
};

/// The optional filters of a listing as an SQL condition with named parameters.
class Conditions {
public:
    using Value = std::variant<std::int64_t, std::string>;

    /// Adds `condition`, which names the parameter `name`, bound to `value`.
    void add(std::string_view condition, const char* name, Value value)
    {
        sql_ += sql_.empty() ? "" : " AND ";
        sql_ += condition;
        values_.emplace_back(name, std::move(value));
    }

    /// The conditions joined with AND; empty when none was added.
    const std::string& sql() const noexcept { return sql_; }

    void bind(SQLite::Statement& statement) const
    {
        for (const auto& [name, value] : values_)
            std::visit([&, n = name](const auto& v) { statement.bind(n, v); }, value);
    }

private:
    std::string sql_;
    std::vector<std::pair<const char*, Value>> values_;
};

} // namespace whisperer::detail

#endif
