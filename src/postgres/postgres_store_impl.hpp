// What PostgresStore's parts share: the pool, the schema's name, the master key, the subscriber
// cache, and running a batch of statements on a pooled connection.
#ifndef WHISPERER_POSTGRES_POSTGRES_STORE_IMPL_HPP
#define WHISPERER_POSTGRES_POSTGRES_STORE_IMPL_HPP

#include <whisperer/postgres_store.hpp>

#include "detail/secret_box.hpp"
#include "detail/subscribers.hpp"
#include "postgres/postgres_batch.hpp"
#include "postgres/postgres_pool.hpp"
#include "postgres/postgres_rows.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace whisperer {

struct PostgresStore::Impl {
    Impl(const std::string& conninfo, PostgresOptions options);

    /// `sql` with `@schema` replaced by the quoted schema name.
    std::string sql(std::string_view statement) const;

    /// Runs `batch` on a pooled connection, in one transaction unless told otherwise; `what`
    /// names the operation in errors. A connection that failed mid-batch is closed.
    std::vector<detail::PostgresResult> run(std::string_view what, detail::PostgresBatch& batch,
                                            bool transaction = true);
    /// One statement, in the implicit transaction of its own.
    detail::PostgresResult query(std::string_view what, std::string statement, detail::PostgresParams params = {});

    const detail::SecretBox* box() const noexcept { return box_ ? &*box_ : nullptr; }

    /// Records the key's check value on its first use, refuses another key's, and seals the
    /// credentials still stored in clear, in one transaction.
    void check_master_key();

    /// Turns a credential as stored into what to store instead (nullopt: leave it), setting
    /// `unreadable` when it cannot be opened. Arguments: field, hook id, stored text.
    using Convert =
        std::function<std::optional<std::string>(const std::string&, std::int64_t, const std::string&, bool&)>;
    /// Applies `convert` to every credential of every hook, in `session`'s open transaction;
    /// a hook with an unreadable credential is left as it is and reported.
    RekeyResult reseal(detail::PostgresSession& session, const Convert& convert);

    /// The active hooks of `event_type`, from the cache when the hook generation has not moved.
    std::vector<detail::Subscriber> subscribers(const std::string& event_type);

    std::string conninfo_; ///< With its password: for the store's own connections only.
    std::string redacted_;
    std::string schema_;
    std::string quoted_schema_;
    PostgresOptions options_;
    std::optional<detail::SecretBox> box_;
    detail::PostgresPool pool_;

    std::mutex cache_mutex_;
    std::int64_t cached_generation_ = -1;
    std::map<std::string, std::vector<detail::Subscriber>, std::less<>> cache_;
};

/// True when `error` is PostgreSQL's unique violation of the index or constraint `name`.
bool is_unique_violation(const StoreError& error, std::string_view name);

} // namespace whisperer

#endif
