#include "postgres/postgres_connection.hpp"

#include <whisperer/error.hpp>

#include <charconv>

namespace whisperer::detail {

namespace {

std::string trimmed(const char* message)
{
    std::string text = message ? message : "";
    while (!text.empty() && (text.back() == '\n' || text.back() == ' '))
        text.pop_back();
    return text;
}

/// `password=...` in key=value words, quoted or not, with its value masked.
std::string redact_words(std::string_view conninfo)
{
    std::string out{conninfo};
    for (std::size_t at = out.find("password"); at != std::string::npos; at = out.find("password", at + 1)) {
        std::size_t value = out.find_first_not_of(' ', at + 8);
        if (value == std::string::npos || out[value] != '=')
            continue;
        value = out.find_first_not_of(' ', value + 1);
        if (value == std::string::npos)
            break;
        std::size_t end = value;
        if (out[value] == '\'') {
            for (end = value + 1; end < out.size() && out[end] != '\''; ++end)
                if (out[end] == '\\')
                    ++end;
            end = std::min(end + 1, out.size());
        } else {
            end = out.find(' ', value);
            if (end == std::string::npos)
                end = out.size();
        }
        out.replace(value, end - value, "****");
    }
    return out;
}

} // namespace

std::string redact_postgres_conninfo(std::string_view conninfo)
{
    for (std::string_view scheme : {"postgresql://", "postgres://"}) {
        if (!conninfo.starts_with(scheme))
            continue;
        std::string out{conninfo};
        const std::size_t authority = scheme.size();
        const std::size_t end = out.find_first_of("/?", authority);
        const std::size_t at = out.rfind('@', end == std::string::npos ? out.size() : end);
        if (at != std::string::npos && at >= authority) {
            const std::size_t colon = out.find(':', authority);
            if (colon != std::string::npos && colon < at)
                out.replace(colon + 1, at - colon - 1, "****");
        }
        // A password may also come as a query parameter.
        const std::size_t query = out.find('?');
        if (query == std::string::npos)
            return out;
        for (std::size_t p = out.find("password=", query); p != std::string::npos; p = out.find("password=", p + 1)) {
            const std::size_t value = p + 9;
            const std::size_t stop = out.find('&', value);
            out.replace(value, (stop == std::string::npos ? out.size() : stop) - value, "****");
        }
        return out;
    }
    return redact_words(conninfo);
}

std::int64_t PostgresResult::integer(int row, int column) const
{
    const std::string_view field = text(row, column);
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (is_null(row, column) || ec != std::errc{} || end != field.data() + field.size())
        throw StoreError("PostgreSQL store: expected an integer from the database, got '" + std::string(field) + "'");
    return value;
}

PostgresResult PostgresSession::query(const std::string& sql, const std::vector<std::optional<std::string>>& params)
{
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params)
        values.push_back(param ? param->c_str() : nullptr);
    PGresult* raw = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                 nullptr, nullptr, 0);
    PostgresResult result{raw};
    const ExecStatusType status = raw ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK)
        return result;
    const char* state = raw ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
    throw StoreError("PostgreSQL store: " + trimmed(raw ? PQresultErrorMessage(raw) : PQerrorMessage(conn_)) +
                     (state ? std::string(" (SQLSTATE ") + state + ")" : std::string()));
}

void PostgresSession::transaction(const std::function<void()>& work)
{
    query("BEGIN");
    try {
        work();
    } catch (...) {
        // A lost connection cannot roll back, and the server already has.
        PQclear(PQexec(conn_, "ROLLBACK"));
        throw;
    }
    query("COMMIT");
}

PostgresConnection::PostgresConnection(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str()))
{
    if (!conn_)
        throw StoreError("PostgreSQL store: out of memory connecting to " + redact_postgres_conninfo(conninfo));
    if (PQstatus(conn_.get()) != CONNECTION_OK)
        throw StoreError("PostgreSQL store: cannot connect to " + redact_postgres_conninfo(conninfo) + ": " +
                         trimmed(PQerrorMessage(conn_.get())));
    // A library writes nothing to the host's stderr; notices (e.g. "schema already exists,
    // skipping") tell the caller nothing it acts on.
    PQsetNoticeProcessor(conn_.get(), [](void*, const char*) {}, nullptr);
}

} // namespace whisperer::detail
