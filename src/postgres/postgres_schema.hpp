// The PostgreSQL schema of PostgresStore: forward migrations in a schema of its own.
#ifndef WHISPERER_POSTGRES_POSTGRES_SCHEMA_HPP
#define WHISPERER_POSTGRES_POSTGRES_SCHEMA_HPP

#include <libpq-fe.h>

#include <span>
#include <string>
#include <string_view>

namespace whisperer::detail {

/// The statements that take a whisperer schema from one version to the next. `@schema` in a
/// statement stands for the schema's quoted name. Migration i (0-based) takes version i to i + 1,
/// in the transaction that also records the new version. Never edit a released migration.
using PostgresMigration = std::span<const char* const>;

/// Every migration in order; the schema version is their count.
std::span<const PostgresMigration> postgres_migrations();

/// Creates whisperer's tables in `schema` of the database `conn` is connected to, or migrates them
/// forward to the newest version.
///
/// Processes that open the same database at once migrate it once: the work runs in one transaction
/// under a transaction-scoped advisory lock, and the version is read again after the lock is held.
/// Throws `StoreError`, changing nothing, when the schema holds another application's tables or a
/// version newer than this build knows, or when a statement fails. `conn` must be idle (no open
/// transaction) and is left idle.
void open_postgres_schema(PGconn* conn, std::string_view schema);

/// `schema` quoted as a PostgreSQL identifier ("whisperer" -> "\"whisperer\""). Throws
/// `StoreError` for an empty name or one with a NUL byte.
std::string quote_postgres_identifier(std::string_view schema);

/// `statement` with every `@schema` replaced by `quoted_schema`.
std::string in_postgres_schema(std::string_view statement, std::string_view quoted_schema);

} // namespace whisperer::detail

#endif
