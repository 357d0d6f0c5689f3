#include "postgres/postgres_batch.hpp"

#include <whisperer/error.hpp>

#include <poll.h>

#include <algorithm>

namespace whisperer::detail {

namespace {

using Clock = std::chrono::steady_clock;

std::string connection_error(PGconn* conn, const std::string& what)
{
    std::string message = PQerrorMessage(conn);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
        message.pop_back();
    return "PostgreSQL store: " + what + ": " + message;
}

/// Leaves pipeline mode on the way out, whatever happens, and restores blocking mode.
struct PipelineMode {
    PGconn* conn;
    explicit PipelineMode(PGconn* c) : conn(c)
    {
        if (PQsetnonblocking(conn, 1) != 0 || PQenterPipelineMode(conn) != 1)
            throw StoreError(connection_error(conn, "cannot start a batch"));
    }
    ~PipelineMode()
    {
        PQexitPipelineMode(conn); // Fails (harmlessly) while results remain; the caller then discards conn.
        PQsetnonblocking(conn, 0);
    }
};

/// Waits until the socket can be read (and written, with `want_write`), or throws at `deadline`.
void wait_socket(PGconn* conn, bool want_write, Clock::time_point deadline)
{
    pollfd fd{PQsocket(conn), static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        if (left <= 0)
            throw StoreError("PostgreSQL store: the server did not answer a batch in time");
        const int ready = ::poll(&fd, 1, static_cast<int>(left));
        if (ready > 0)
            return;
        if (ready < 0 && errno != EINTR)
            throw StoreError("PostgreSQL store: cannot wait for the server");
    }
}

/// Sends what libpq has buffered, reading meanwhile so that the server never blocks on its
/// replies while this side blocks on sending.
void flush(PGconn* conn, Clock::time_point deadline)
{
    for (;;) {
        const int pending = PQflush(conn);
        if (pending == 0)
            return;
        if (pending < 0)
            throw StoreError(connection_error(conn, "cannot send a batch"));
        wait_socket(conn, true, deadline);
        if (!PQconsumeInput(conn))
            throw StoreError(connection_error(conn, "lost the connection during a batch"));
    }
}

/// The next result of the pipeline; nullptr between the results of two statements.
PGresult* next_result(PGconn* conn, Clock::time_point deadline)
{
    while (PQisBusy(conn)) {
        wait_socket(conn, false, deadline);
        if (!PQconsumeInput(conn))
            throw StoreError(connection_error(conn, "lost the connection during a batch"));
    }
    return PQgetResult(conn);
}

} // namespace

PostgresBatch& PostgresBatch::add(std::string sql, Params params)
{
    statements_.push_back({std::move(sql), std::move(params)});
    return *this;
}

std::vector<PostgresResult> PostgresBatch::run(PGconn* conn, std::chrono::milliseconds timeout, bool transaction)
{
    const auto deadline = Clock::now() + timeout;
    PipelineMode pipeline{conn};
    auto send = [&](const Statement& statement) {
        std::vector<const char*> values;
        values.reserve(statement.params.size());
        for (const auto& param : statement.params)
            values.push_back(param ? param->c_str() : nullptr);
        if (!PQsendQueryParams(conn, statement.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                               nullptr, nullptr, 0))
            throw StoreError(connection_error(conn, "cannot queue a statement"));
    };
    // Statements of the batch's own around the caller's, whose results are not returned.
    std::vector<Statement> leading, trailing;
    if (transaction) {
        leading.push_back({"BEGIN", {}});
        if (!flush_commit_)
            leading.push_back({"SET LOCAL synchronous_commit = off", {}});
        if (notify_channel_)
            leading.push_back({"SET LOCAL whisperer.notify_after_commit = on", {}});
        trailing.push_back({"COMMIT", {}});
        if (notify_channel_) {
            trailing.push_back({"BEGIN", {}});
            trailing.push_back({"SET LOCAL synchronous_commit = off", {}});
            trailing.push_back({"SELECT pg_notify($1, '')", {*notify_channel_}});
            trailing.push_back({"COMMIT", {}});
        }
    }
    // Up to the batch's COMMIT; what follows it (the notification) may fail without failing it.
    const std::size_t committed = leading.size() + statements_.size() + (transaction ? 1 : 0);
    for (const Statement& statement : leading)
        send(statement);
    for (const Statement& statement : statements_)
        send(statement);
    for (const Statement& statement : trailing)
        send(statement);
    if (!PQpipelineSync(conn))
        throw StoreError(connection_error(conn, "cannot end a batch"));
    flush(conn, deadline);

    std::vector<PostgresResult> results;
    results.reserve(statements_.size());
    std::string failure;
    const std::size_t count = leading.size() + statements_.size() + trailing.size();
    for (std::size_t i = 0; i < count; ++i) {
        PGresult* raw = next_result(conn, deadline);
        if (!raw)
            throw StoreError(connection_error(conn, "a batch ended early"));
        PostgresResult result{raw};
        const ExecStatusType status = PQresultStatus(raw);
        if (failure.empty() && i < committed && status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
            const std::size_t index = i - std::min(i, leading.size());
            const char* state = PQresultErrorField(raw, PG_DIAG_SQLSTATE);
            failure = status == PGRES_PIPELINE_ABORTED
                          ? std::string("skipped")
                          : std::string(PQresultErrorMessage(raw)) + (state ? std::string(" (SQLSTATE ") + state + ")" : "");
            while (!failure.empty() && (failure.back() == '\n' || failure.back() == ' '))
                failure.pop_back();
            if (i >= leading.size() && index < statements_.size())
                failure = "statement " + std::to_string(index + 1) + " of a batch failed: " + failure;
        }
        const bool is_statement = i >= leading.size() && i < leading.size() + statements_.size();
        if (is_statement)
            results.push_back(std::move(result));
        if (next_result(conn, deadline) != nullptr)
            throw StoreError("PostgreSQL store: a statement of a batch returned more than one result");
    }
    PGresult* sync = next_result(conn, deadline);
    const bool synced = sync && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
    PQclear(sync);
    if (!synced)
        throw StoreError(connection_error(conn, "a batch did not end with its sync"));
    // A failed statement inside BEGIN leaves the transaction open and failed after the sync.
    PQexitPipelineMode(conn);
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
    if (!failure.empty())
        throw StoreError("PostgreSQL store: " + failure);
    return results;
}

} // namespace whisperer::detail
