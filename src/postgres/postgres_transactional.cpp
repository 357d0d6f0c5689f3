// deliver_event_in_transaction: an event enqueued on the host's own connection, in its transaction.
#include <whisperer/error.hpp>
#include <whisperer/postgres_store.hpp>

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"

#include <boost/json/serialize.hpp>

namespace whisperer {

std::string deliver_event_in_transaction(pg_conn* conn, std::string_view event_type, const boost::json::value& data,
                                         std::string_view idempotency_key, std::string_view schema)
{
    if (conn == nullptr)
        throw StoreError("PostgreSQL store: deliver_event_in_transaction needs the host's connection");
    std::optional<std::string> key;
    if (!idempotency_key.empty())
        key = std::string(idempotency_key);
    detail::PostgresSession session{conn};
    detail::PostgresResult uuid = session.query(
        "SELECT " + detail::quote_postgres_identifier(schema) + ".deliver_event($1, $2::json, $3)",
        {std::string(event_type), boost::json::serialize(data), key});
    return std::string(uuid.text(0, 0));
}

} // namespace whisperer
