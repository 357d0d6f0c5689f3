#include "postgres/postgres_pool.hpp"

#include "postgres/postgres_connection.hpp"

#include <whisperer/error.hpp>

namespace whisperer::detail {

PostgresPool::PostgresPool(std::string conninfo, std::size_t size, std::function<void(PGconn*)> prepare)
    : conninfo_(std::move(conninfo)), size_(size == 0 ? 1 : size), prepare_(std::move(prepare))
{
}

PostgresPool::~PostgresPool()
{
    for (PGconn* conn : idle_)
        PQfinish(conn);
}

PostgresPool::Lease::~Lease()
{
    if (conn_)
        pool_.give_back(conn_);
}

void PostgresPool::Lease::discard() noexcept
{
    if (!conn_)
        return;
    PQfinish(conn_);
    conn_ = nullptr;
    std::lock_guard lock(pool_.mutex_);
    --pool_.open_;
    pool_.freed_.notify_one();
}

PostgresPool::Lease PostgresPool::acquire(std::chrono::milliseconds wait)
{
    std::unique_lock lock(mutex_);
    if (!freed_.wait_for(lock, wait, [&] { return !idle_.empty() || open_ < size_; }))
        throw StoreError("PostgreSQL store: no connection of the pool's " + std::to_string(size_) + " was free within " +
                         std::to_string(wait.count()) + " ms");
    if (!idle_.empty()) {
        PGconn* conn = idle_.back();
        idle_.pop_back();
        return Lease{*this, conn};
    }
    ++open_;
    lock.unlock();
    // Connecting waits on the network: never under the lock.
    try {
        PostgresConnection opened{conninfo_};
        if (prepare_)
            prepare_(opened.get());
        return Lease{*this, opened.release()};
    } catch (...) {
        lock.lock();
        --open_;
        freed_.notify_one();
        throw;
    }
}

void PostgresPool::give_back(PGconn* conn) noexcept
{
    const bool healthy = PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) == PQTRANS_IDLE &&
                         PQpipelineStatus(conn) == PQ_PIPELINE_OFF;
    if (!healthy)
        PQfinish(conn);
    std::lock_guard lock(mutex_);
    if (healthy)
        idle_.push_back(conn);
    else
        --open_;
    freed_.notify_one();
}

std::size_t PostgresPool::open_connections() const
{
    std::lock_guard lock(mutex_);
    return open_;
}

} // namespace whisperer::detail
