// The benchmark scenarios: each runs in its own process and returns its figures as JSON.
#ifndef WHISPERER_BENCH_SCENARIOS_HPP
#define WHISPERER_BENCH_SCENARIOS_HPP

#include <whisperer/sqlite_store.hpp>

#include <boost/json/object.hpp>

#include <cstddef>
#include <string>

namespace whisperer::bench {

/// Every knob of every scenario, with the sizes the performance targets are stated for.
struct Options {
    std::string url;                   ///< The nginx receiver, e.g. `http://127.0.0.1:8080`.
    std::string dir = "/tmp";          ///< Where the SQLite files go (removed afterwards).
    unsigned threads = 0;              ///< Threads running the dispatcher's executor; 0: one per core.
    unsigned producers = 4;            ///< Threads calling `deliver_event` in throughput and fan-out.
    /// Throughput: each producer calls `async_deliver_event` with at most this many events not
    /// yet committed, instead of `deliver_event` (0). A host that cannot wait for each commit
    /// (PostgreSQL keeps no journal) publishes this way.
    std::size_t async_window = 0;
    SqliteDurability durability = SqliteDurability::normal;
    std::size_t page_size = SqliteOptions{}.page_size; ///< Of the benchmark's new SQLite files.
    std::size_t events = 200'000;      ///< throughput
    std::size_t calls = 100'000;       ///< host_cost, per thread count
    double rate = 1000;                ///< latency and isolation: events per second
    double seconds = 30;               ///< latency and isolation: how long
    std::size_t hooks = 1000;          ///< fan-out
    std::size_t fanout_events = 200;   ///< fan-out
    std::size_t backlog = 1'000'000;   ///< backlog: deliveries queued before the receiver is up
    double drain_limit = 600;          ///< backlog: seconds the drain may take before it is cut short
    std::size_t idle_deliveries = 100'000;
    double idle_seconds = 10;
    std::string wrk_script;            ///< wrk_script: where to write the Lua script

    // PostgreSQL: the pg_ scenarios run the scenario of the same name on a PostgresStore.
    bool postgres = false;             ///< Set for the pg_ scenarios.
    std::string pg_uri;                ///< The database, read from `pg_uri_file`.
    std::string pg_uri_file;           ///< scripts/postgres's DIR/uri (the URI holds a password).
    std::string pg_schema;             ///< The store's schema; empty: one of the run's own.
    std::size_t pg_connections = 8;    ///< PostgresOptions::connections
    std::size_t store_threads = 4;     ///< DispatcherOptions::store_threads on PostgreSQL
    std::size_t pg_events = 20'000;    ///< pg_processes: the backlog drained
    std::string pg_processes = "1,2,4"; ///< pg_processes: dispatcher processes, one run each
    std::size_t async_calls = 0;       ///< host_cost: async_deliver_event initiations; 0: --calls
};

boost::json::object run_throughput(const Options& options);
boost::json::object run_host_cost(const Options& options);
boost::json::object run_latency(const Options& options);
boost::json::object run_fanout(const Options& options);
boost::json::object run_backlog(const Options& options);
boost::json::object run_isolation(const Options& options);
boost::json::object run_idle(const Options& options);

/// pg_processes: a backlog of `pg_events` events to one hook on a receiver in this process,
/// drained by 1, 2 and 4 dispatcher processes (`pg_worker`) sharing the database, each run on
/// a schema of its own; deliveries per second and requests the receiver saw twice.
boost::json::object run_pg_processes(const Options& options);

/// pg_worker: one dispatcher on the PostgresStore at `pg_uri` / `pg_schema` that delivers until
/// the outbox is empty, then exits. Started by pg_processes.
boost::json::object run_pg_worker(const Options& options);

/// Captures one real delivery at an in-process receiver and writes a wrk Lua script that POSTs
/// the same body with the same headers.
boost::json::object write_wrk_script(const Options& options);

} // namespace whisperer::bench

#endif
