// Several statements sent to PostgreSQL in one round trip (libpq's pipeline mode).
#ifndef WHISPERER_POSTGRES_POSTGRES_BATCH_HPP
#define WHISPERER_POSTGRES_POSTGRES_BATCH_HPP

#include "postgres/postgres_connection.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace whisperer::detail {

/// Statements to run in order in one round trip, in one transaction unless told otherwise.
///
/// `run` sends every statement, then one sync, then reads every result: the cost is one network
/// round trip however many statements there are. When one statement fails, the server skips the
/// rest and the transaction rolls back; `run` throws `StoreError` naming the failed statement.
/// Not thread-safe; a batch may be run once.
class PostgresBatch {
public:
    using Params = std::vector<std::optional<std::string>>;

    /// Appends a statement with text parameters `$1`, `$2`, ... (nullopt is NULL).
    PostgresBatch& add(std::string sql, Params params = {});

    std::size_t size() const noexcept { return statements_.size(); }

    /// Lets the transaction's commit return before the server has flushed it to disk
    /// (`synchronous_commit = off` for it alone). Only for the dispatcher's own bookkeeping
    /// (claims, leases, records): a server crash may undo the last such commits, which leaves
    /// their deliveries due again, to be sent once more. Never for accepting events.
    PostgresBatch& commit_without_flush() noexcept
    {
        flush_commit_ = false;
        return *this;
    }

    /// Sends a notification on `channel` once the transaction has committed, in a transaction of
    /// its own in the same round trip that does not wait for a flush, and keeps the schema's
    /// triggers from notifying inside the batch's transaction (`whisperer.notify_after_commit`).
    /// A notification inside a transaction holds a database-wide lock from the commit until the
    /// flush, so that concurrent commits that notify finish one at a time. Its failure is
    /// ignored: listeners also poll.
    PostgresBatch& notify_after_commit(std::string channel)
    {
        notify_channel_ = std::move(channel);
        return *this;
    }

    /// Runs the statements on `conn`, which must be idle (no open transaction, no pipeline). With
    /// `transaction`, they run between BEGIN and COMMIT sent in the same round trip. Waits at most
    /// `timeout` for the server (then throws `StoreError`; the connection must be discarded).
    /// Returns one result per statement added, in order.
    std::vector<PostgresResult> run(PGconn* conn, std::chrono::milliseconds timeout, bool transaction = true);

private:
    struct Statement {
        std::string sql;
        Params params;
    };
    std::vector<Statement> statements_;
    bool flush_commit_ = true;
    std::optional<std::string> notify_channel_;
};

} // namespace whisperer::detail

#endif
