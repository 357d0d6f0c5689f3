// A blocking libpq connection and its results, with errors as StoreError.
#ifndef WHISPERER_POSTGRES_POSTGRES_CONNECTION_HPP
#define WHISPERER_POSTGRES_POSTGRES_CONNECTION_HPP

#include <libpq-fe.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer::detail {

/// `conninfo` (a `postgresql://` URI or `key=value` words) with its password replaced by `****`:
/// the only form of a connection string that may reach a log line or an error message.
std::string redact_postgres_conninfo(std::string_view conninfo);

/// The result of one statement. Owns its `PGresult`; movable, not copyable.
class PostgresResult {
public:
    explicit PostgresResult(PGresult* result) noexcept : result_(result) {}

    int rows() const noexcept { return PQntuples(result_.get()); }
    bool is_null(int row, int column) const noexcept { return PQgetisnull(result_.get(), row, column) != 0; }
    /// The text of a field; empty for NULL.
    std::string_view text(int row, int column) const noexcept
    {
        return {PQgetvalue(result_.get(), row, column),
                static_cast<std::size_t>(PQgetlength(result_.get(), row, column))};
    }
    /// A field of an integer column. Throws `StoreError` when it is NULL or not an integer.
    std::int64_t integer(int row, int column) const;

private:
    struct Clear {
        void operator()(PGresult* r) const noexcept { PQclear(r); }
    };
    std::unique_ptr<PGresult, Clear> result_;
};

/// Runs statements on a connection it does not own, one at a time, waiting for each.
///
/// For set-up work (migrations, tests, command-line tools), never on a thread that must not wait
/// on the network. Not thread-safe: one session per connection at a time.
class PostgresSession {
public:
    explicit PostgresSession(PGconn* conn) noexcept : conn_(conn) {}

    /// Runs `sql` with `params` as text parameters `$1`, `$2`, ... (nullopt is NULL). Throws
    /// `StoreError` with the server's message and SQLSTATE when the statement fails.
    PostgresResult query(const std::string& sql, const std::vector<std::optional<std::string>>& params = {});

    /// Runs `work` between BEGIN and COMMIT; rolls back and rethrows when `work` throws.
    void transaction(const std::function<void()>& work);

private:
    PGconn* conn_;
};

/// An open connection. Throws `StoreError`, with the connection string redacted, when the server
/// cannot be reached or refuses the login. Movable, not copyable; not thread-safe.
class PostgresConnection {
public:
    explicit PostgresConnection(const std::string& conninfo);

    PGconn* get() const noexcept { return conn_.get(); }
    PostgresSession session() const noexcept { return PostgresSession{conn_.get()}; }
    /// Gives up ownership: the caller closes the connection with `PQfinish`.
    PGconn* release() noexcept { return conn_.release(); }

private:
    struct Finish {
        void operator()(PGconn* c) const noexcept { PQfinish(c); }
    };
    std::unique_ptr<PGconn, Finish> conn_;
};

} // namespace whisperer::detail

#endif
