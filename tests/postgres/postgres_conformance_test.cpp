// The store conformance suite (tests/store_conformance_test.cpp) on PostgreSQL: every test runs on
// a schema of its own in the test server's database, with and without a master key.
#include <whisperer/postgres_store.hpp>

#include "postgres/postgres_connection.hpp"
#include "postgres/postgres_schema.hpp"
#include "postgres_server.hpp"

#include <tuple>

namespace {

/// A schema of the test's own, dropped with everything in it at the end.
class PostgresSchema {
public:
    ~PostgresSchema()
    {
        try {
            whisperer::detail::PostgresConnection conn{uri_};
            conn.session().query("DROP SCHEMA " + whisperer::detail::quote_postgres_identifier(name_) + " CASCADE");
        } catch (...) {
        }
    }

    const std::string& uri() const noexcept { return uri_; }
    const std::string& name() const noexcept { return name_; }

private:
    std::string uri_ = whisperer::test::postgres_uri();
    std::string name_ = whisperer::test::unique_postgres_schema();
};

class PostgresPlain {
public:
    whisperer::SubscriptionStore& store() noexcept { return store_; }

private:
    PostgresSchema schema_;
    whisperer::PostgresStore store_{schema_.uri(), whisperer::PostgresOptions{.schema = schema_.name(),
                                                                              .response_body_limit = 20 * 1024}};
};

/// Hook secrets and credentials sealed under a master key: every behaviour must stay the same.
class PostgresEncrypted {
public:
    whisperer::SubscriptionStore& store() noexcept { return store_; }

private:
    PostgresSchema schema_;
    whisperer::PostgresStore store_{schema_.uri(),
                                    whisperer::PostgresOptions{.schema = schema_.name(),
                                                               .response_body_limit = 20 * 1024,
                                                               .master_key = whisperer::MasterKey::generate()}};
};

} // namespace

#define WHISPERER_CONFORMANCE_STORES std::tuple<PostgresPlain, PostgresEncrypted>
#include "../store_conformance_test.cpp"
