// A bounded pool of PostgreSQL connections for the store's own threads.
#ifndef WHISPERER_POSTGRES_POSTGRES_POOL_HPP
#define WHISPERER_POSTGRES_POSTGRES_POOL_HPP

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace whisperer::detail {

/// Up to `size` connections to one database, opened when first needed and reused.
///
/// `acquire` waits (on the calling thread: a store thread, never the host's) until a connection
/// is free or `wait` has passed. A connection that comes back broken, or in a transaction, is
/// closed and replaced by a new one on a later `acquire`, so a server restart costs each
/// connection one failed call, not the pool. Thread-safe.
class PostgresPool {
public:
    /// `prepare` runs on each new connection before first use (e.g. to set `search_path`); a
    /// throw from it fails that `acquire`.
    PostgresPool(std::string conninfo, std::size_t size, std::function<void(PGconn*)> prepare = {});
    ~PostgresPool();
    PostgresPool(const PostgresPool&) = delete;
    PostgresPool& operator=(const PostgresPool&) = delete;

    /// A connection taken from the pool, given back when destroyed.
    class Lease {
    public:
        Lease(Lease&& other) noexcept : pool_(other.pool_), conn_(other.conn_) { other.conn_ = nullptr; }
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        PGconn* get() const noexcept { return conn_; }
        /// Closes the connection instead of giving it back (after a timeout mid-statement).
        void discard() noexcept;

    private:
        friend class PostgresPool;
        Lease(PostgresPool& pool, PGconn* conn) noexcept : pool_(pool), conn_(conn) {}
        PostgresPool& pool_;
        PGconn* conn_;
    };

    /// A connection; throws `StoreError` (connection string redacted) when none is free within
    /// `wait` or a new one cannot be opened.
    Lease acquire(std::chrono::milliseconds wait);

    /// Connections open now (idle and leased).
    std::size_t open_connections() const;

private:
    void give_back(PGconn* conn) noexcept;

    const std::string conninfo_;
    const std::size_t size_;
    const std::function<void(PGconn*)> prepare_;
    mutable std::mutex mutex_;
    std::condition_variable freed_;
    std::vector<PGconn*> idle_;
    std::size_t open_ = 0; // idle and leased, and those being opened
};

} // namespace whisperer::detail

#endif
