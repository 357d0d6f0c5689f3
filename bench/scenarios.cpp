#include "scenarios.hpp"

#include "measure.hpp"
#include "receiver.hpp"
#include "timed_store.hpp"

#include <whisperer/whisperer.hpp>

#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>

#ifdef WHISPERER_BENCH_POSTGRES
#include <whisperer/postgres_store.hpp>
#endif

#include <boost/json/parse.hpp>

#include <sqlite3.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <semaphore>
#include <stdexcept>
#include <thread>
#include <unordered_map>

extern char** environ;

namespace whisperer::bench {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr std::string_view event_type = "bench.event";

/// The instance every scenario delivers: a small host record, numbered so arrivals can be matched.
json::object event_data(std::size_t seq)
{
    return json::object{{"seq", seq},
                        {"id", 1000 + seq},
                        {"transfer_id", 49},
                        {"order_number", "248398923123"},
                        {"status", "created"}};
}

std::string_view to_string(SqliteDurability d)
{
    return d == SqliteDurability::full ? "full" : "normal";
}

/// One store, a registry and a dispatcher on a thread pool of its own. The store is a SQLite
/// file, removed when the bench ends, or with `options.postgres` a schema of its own in the
/// PostgreSQL database at `options.pg_uri` (left for the cluster's removal) with
/// `options.pg_connections` connections, and the dispatcher makes its store calls on
/// `options.store_threads` threads.
class Bench {
public:
    Bench(const Options& options, const std::string& name, SqliteDurability durability = SqliteDurability::normal,
          DispatcherOptions dispatcher_options = {})
        : path_(options.postgres ? std::string() : remove_files(options.dir + "/whisperer-bench-" + name + ".db")),
          store_(open_store(options, name, durability)),
          sqlite_(dynamic_cast<SqliteStore*>(store_.get())),
          timed_(*store_),
          pool_(options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency())),
          dispatcher_(make_dispatcher(options, dispatcher_options))
    {
    }

    ~Bench()
    {
        dispatcher_.reset();
        pool_.join();
        store_.reset();
        if (!path_.empty())
            remove_files(path_);
    }

    /// The schema a PostgreSQL bench named `name` uses: its own, so that every run starts empty.
    static std::string schema_of(const Options& options, const std::string& name)
    {
        if (!options.pg_schema.empty())
            return options.pg_schema;
        std::string schema = "bench_" + name + "_" + std::to_string(::getpid());
        std::replace(schema.begin(), schema.end(), '-', '_');
        return schema;
    }

    Dispatcher& dispatcher() { return *dispatcher_; }
    SubscriptionStore& store() { return *store_; }

    /// Rows in the outbox, counted through a connection of its own (SQLite only).
    std::int64_t outbox_rows() const
    {
        if (sqlite_ == nullptr)
            throw std::logic_error("outbox_rows counts the rows of a SQLite file");
        sqlite3* db = nullptr;
        std::int64_t rows = -1;
        if (sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
            sqlite3_stmt* count = nullptr;
            if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM outbox", -1, &count, nullptr) == SQLITE_OK &&
                sqlite3_step(count) == SQLITE_ROW)
                rows = sqlite3_column_int64(count, 0);
            sqlite3_finalize(count);
        }
        sqlite3_close(db);
        if (rows < 0)
            throw std::runtime_error("cannot count the outbox of " + path_);
        return rows;
    }

    Hook add_hook(const std::string& url, std::string_view type = event_type)
    {
        Hook hook;
        hook.owner = "bench";
        hook.target_url = url;
        hook.event_type = std::string(type);
        hook.secret_key = "bench-secret-0123456789abcdef";
        hook.retry_countdown_config = json::object{{"choice", "linear"}, {"kwargs", {{"base", 60}, {"limit", 600}}}};
        validate_hook(hook, {.registry = &registry_});
        return store_->create_hook(hook);
    }

    /// Stops the dispatcher, cutting requests still in flight after `deadline`.
    void stop(std::chrono::milliseconds deadline) { dispatcher_->stop(deadline); }

    /// Waits until `expected` deliveries were answered 2xx and every outcome is in the store
    /// (the outbox is empty). Throws after `timeout`.
    void wait_delivered(std::uint64_t expected, std::chrono::seconds timeout)
    {
        if (!try_wait_delivered(expected, timeout))
            throw std::runtime_error("timed out: " + std::to_string(dispatcher_->counters().delivered) + " of " +
                                     std::to_string(expected) + " delivered");
    }

    /// `wait_delivered` that returns false after `timeout` instead of throwing.
    bool try_wait_delivered(std::uint64_t expected, std::chrono::duration<double> timeout)
    {
        const auto deadline = SteadyClock::now() + std::chrono::duration_cast<SteadyClock::duration>(timeout);
        while (dispatcher_->counters().delivered < expected) {
            if (SteadyClock::now() > deadline)
                return false;
            std::this_thread::sleep_for(200us);
        }
        while (store_->next_due()) {
            if (SteadyClock::now() > deadline)
                return false;
            std::this_thread::sleep_for(200us);
        }
        return true;
    }

    /// The dispatcher's counters, with the timings of its store calls.
    json::object counters() const
    {
        auto c = dispatcher_->counters();
        return {{"queued", c.queued},   {"delivered", c.delivered}, {"retried", c.retried},
                {"failed", c.failed},   {"handed_off", c.handed_off}, {"store", timed_.stats()}};
    }

private:
    static std::string remove_files(const std::string& path)
    {
        for (const char* suffix : {"", "-wal", "-shm", "-journal"})
            std::filesystem::remove(path + suffix);
        return path;
    }

    static std::unique_ptr<SubscriptionStore> open_store(const Options& options, const std::string& name,
                                                         SqliteDurability durability)
    {
        if (options.postgres) {
#ifdef WHISPERER_BENCH_POSTGRES
            if (options.pg_uri.empty())
                throw std::invalid_argument("--pg-uri is required for the PostgreSQL scenarios");
            // All hooks belong to one owner, as many as --hooks asks for.
            return std::make_unique<PostgresStore>(options.pg_uri,
                                                   PostgresOptions{.schema = schema_of(options, name),
                                                                   .connections = options.pg_connections,
                                                                   .max_hooks_per_owner = 100000});
#else
            throw std::runtime_error("this whisperer_bench was built without PostgreSQL");
#endif
        }
        // All hooks belong to one owner, as many as --hooks asks for.
        return std::make_unique<SqliteStore>(
            options.dir + "/whisperer-bench-" + name + ".db",
            SqliteOptions{.durability = durability, .max_hooks_per_owner = 0, .page_size = options.page_size});
    }

    std::unique_ptr<Dispatcher> make_dispatcher(const Options& bench_options, DispatcherOptions options)
    {
        if (bench_options.postgres)
            options.store_threads = bench_options.store_threads;
        registry_.register_json_event(std::string(event_type));
        registry_.register_json_event("bench.fanout");
        // The receivers run on loopback, which the SSRF guard refuses unless opened.
        if (!options.address_filter)
            options.address_filter = AddressPolicy{}.allow(Cidr::parse("127.0.0.0/8")).as_filter();
        return std::make_unique<Dispatcher>(pool_.get_executor(), registry_, timed_, std::move(options));
    }

    std::string path_;
    Registry registry_;
    std::unique_ptr<SubscriptionStore> store_;
    SqliteStore* sqlite_; // store_ when it is a SQLite file, else null.
    TimedStore timed_; // What the dispatcher uses: times its store calls.
    asio::thread_pool pool_;
    std::unique_ptr<Dispatcher> dispatcher_;
};

/// Runs `body(thread_index, first, last)` on `threads` threads over [0, count) split evenly.
template <class Body>
void in_parallel(unsigned threads, std::size_t count, Body body)
{
    std::vector<std::thread> running;
    for (unsigned t = 0; t < threads; ++t) {
        const std::size_t first = count * t / threads, last = count * (t + 1) / threads;
        running.emplace_back([&body, t, first, last] { body(t, first, last); });
    }
    for (auto& thread : running)
        thread.join();
}

json::object summary_json(const Summary& s, double scale, const char* unit)
{
    return {{"unit", unit},          {"count", s.count},    {"mean", s.mean * scale},
            {"p50", s.p50 * scale},  {"p99", s.p99 * scale}, {"max", s.max * scale}};
}

/// The sequence number of a delivered envelope (`"seq":N` is the first key of its data).
std::optional<std::size_t> sequence_of(std::string_view body)
{
    constexpr std::string_view key = "\"seq\":";
    const auto at = body.find(key);
    if (at == std::string_view::npos)
        return std::nullopt;
    std::size_t seq = 0;
    const char* first = body.data() + at + key.size();
    if (std::from_chars(first, body.data() + body.size(), seq).ec != std::errc{})
        return std::nullopt;
    return seq;
}

/// Delivers events at a steady rate and records, per event, its scheduled slot and its arrival at
/// an in-process receiver. Latency runs from the slot, not from the call: a call that started late
/// because an earlier one was slow counts its wait too (no coordinated omission).
class LatencyProbe {
public:
    explicit LatencyProbe(std::size_t events) : scheduled_(events), arrived_(events) {}

    void on_arrival(const ReceivedRequest& request, SteadyClock::time_point at)
    {
        auto seq = sequence_of(request.body);
        if (!seq || *seq >= arrived_.size())
            return;
        std::int64_t expected = 0;
        if (arrived_[*seq].compare_exchange_strong(expected, at.time_since_epoch().count()))
            ++arrivals_;
    }

    /// Calls `deliver_event` `rate` times a second on a fixed schedule (not delayed by slow calls).
    double run(Dispatcher& dispatcher, double rate)
    {
        const auto period = std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(1.0 / rate));
        const auto start = SteadyClock::now() + 10ms;
        for (std::size_t i = 0; i < scheduled_.size(); ++i) {
            const auto slot = start + period * static_cast<long>(i);
            std::this_thread::sleep_until(slot);
            scheduled_[i] = slot.time_since_epoch().count();
            dispatcher.deliver_event(event_data(i), event_type);
        }
        return static_cast<double>(scheduled_.size()) / seconds_since(start);
    }

    /// Waits until every event arrived, or `timeout` passed; returns how many arrived.
    std::size_t wait(std::chrono::seconds timeout)
    {
        const auto deadline = SteadyClock::now() + timeout;
        while (arrivals_ < scheduled_.size() && SteadyClock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        return arrivals_;
    }

    /// Slot-to-arrival latencies in milliseconds of the events that arrived; "missing" counts
    /// the others, which a percentile cannot include: a run with any is incomplete.
    json::object latencies()
    {
        std::vector<double> ms;
        ms.reserve(scheduled_.size());
        for (std::size_t i = 0; i < scheduled_.size(); ++i)
            if (const std::int64_t at = arrived_[i].load(); at != 0)
                ms.push_back(static_cast<double>(at - scheduled_[i]) / 1e6);
        const std::size_t missing = scheduled_.size() - ms.size();
        Summary s = summarize(ms);
        json::object o = summary_json(s, 1.0, "ms");
        o["from"] = "scheduled slot";
        o["missing"] = missing;
        return o;
    }

private:
    std::vector<std::int64_t> scheduled_;
    std::vector<std::atomic<std::int64_t>> arrived_;
    std::atomic<std::size_t> arrivals_{0};
};

/// Queues `count` events with `async_deliver_event`, at most `window` unconfirmed at once, and
/// waits until all are durable. Throws on the first failure.
void queue_events(Dispatcher& dispatcher, std::size_t count, std::size_t window = 8192)
{
    std::counting_semaphore<> slots(static_cast<std::ptrdiff_t>(window));
    std::atomic<std::size_t> done{0}, failed{0};
    for (std::size_t i = 0; i < count; ++i) {
        slots.acquire();
        dispatcher.async_deliver_event(json::value(event_data(i)), event_type, {},
                                       [&](boost::system::error_code ec, DeliverResult) {
                                           if (ec)
                                               ++failed;
                                           ++done;
                                           slots.release();
                                       });
    }
    while (done < count)
        std::this_thread::sleep_for(1ms);
    if (failed != 0)
        throw std::runtime_error(std::to_string(failed.load()) + " events could not be queued");
}

/// A result's first fields: the scenario's name (with `pg_` in front on PostgreSQL) and the
/// store it ran on.
json::object scenario(const Options& options, std::string_view name)
{
    if (!options.postgres)
        return {{"scenario", name}, {"store", "sqlite"}};
    return {{"scenario", "pg_" + std::string(name)},
            {"store", "postgres"},
            {"connections", options.pg_connections},
            {"store_threads", options.store_threads}};
}

} // namespace

json::object run_throughput(const Options& options)
{
    Bench bench(options, "throughput", options.durability);
    bench.add_hook(options.url + "/");
    bench.dispatcher().start();

    const auto start = SteadyClock::now();
    std::atomic<std::size_t> failed{0};
    in_parallel(options.producers, options.events, [&](unsigned, std::size_t first, std::size_t last) {
        if (options.async_window == 0) {
            for (std::size_t i = first; i < last; ++i)
                bench.dispatcher().deliver_event(event_data(i), event_type);
            return;
        }
        std::counting_semaphore<> window(static_cast<std::ptrdiff_t>(options.async_window));
        std::atomic<std::size_t> done{0};
        for (std::size_t i = first; i < last; ++i) {
            window.acquire();
            bench.dispatcher().async_deliver_event(json::value(event_data(i)), event_type, {},
                                                   [&](boost::system::error_code ec, DeliverResult) {
                                                       if (ec)
                                                           ++failed;
                                                       ++done;
                                                       window.release();
                                                   });
        }
        while (done < last - first)
            std::this_thread::sleep_for(1ms);
    });
    if (failed != 0)
        throw std::runtime_error(std::to_string(failed.load()) + " async_deliver_event calls failed");
    const double enqueue_s = seconds_since(start);
    bench.wait_delivered(options.events, 600s);
    const double total_s = seconds_since(start);

    json::object r = scenario(options, "throughput");
    if (!options.postgres) {
        r["durability"] = to_string(options.durability);
        r["page_size"] = options.page_size;
    }
    r["events"] = options.events;
    r["producers"] = options.producers;
    r["async_window"] = options.async_window;
    r["seconds"] = total_s;
    r["deliveries_per_s"] = static_cast<double>(options.events) / total_s;
    r["enqueue_per_s"] = static_cast<double>(options.events) / enqueue_s;
    r["counters"] = bench.counters();
    return r;
}

json::object run_host_cost(const Options& options)
{
    Bench bench(options, "host-cost");
    bench.add_hook(options.url + "/");
    bench.dispatcher().start();

    json::object r = scenario(options, "host_cost");
    r["calls"] = options.calls;
    std::size_t delivered = 0;
    for (unsigned threads : {1u, 4u}) {
        std::vector<std::vector<double>> per_thread(threads);
        in_parallel(threads, options.calls, [&](unsigned t, std::size_t first, std::size_t last) {
            auto& sample = per_thread[t];
            sample.reserve(last - first);
            for (std::size_t i = first; i < last; ++i) {
                const auto before = SteadyClock::now();
                bench.dispatcher().deliver_event(event_data(i), event_type);
                sample.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - before).count());
            }
        });
        std::vector<double> all;
        for (auto& sample : per_thread)
            all.insert(all.end(), sample.begin(), sample.end());
        Summary s = summarize(all);
        r["threads_" + std::to_string(threads)] = summary_json(s, 1.0, "us");
        delivered += options.calls;
        // The next run starts with an empty outbox, like the first.
        bench.wait_delivered(delivered, 600s);
    }

    // async_deliver_event from 1 thread: the time its initiation takes in the caller (the
    // handler runs later, once the event is durable), at most 8,192 unconfirmed at once; a
    // caller waiting for a free place in that window is not timed.
    const std::size_t async_calls = options.async_calls != 0 ? options.async_calls : options.calls;
    {
        std::vector<double> sample;
        sample.reserve(async_calls);
        std::counting_semaphore<> slots(8192);
        std::atomic<std::size_t> done{0}, failed{0};
        for (std::size_t i = 0; i < async_calls; ++i) {
            slots.acquire();
            json::value data(event_data(i));
            const auto before = SteadyClock::now();
            bench.dispatcher().async_deliver_event(std::move(data), event_type, {},
                                                   [&](boost::system::error_code ec, DeliverResult) {
                                                       if (ec)
                                                           ++failed;
                                                       ++done;
                                                       slots.release();
                                                   });
            sample.push_back(std::chrono::duration<double, std::micro>(SteadyClock::now() - before).count());
        }
        while (done < async_calls)
            std::this_thread::sleep_for(1ms);
        if (failed != 0)
            throw std::runtime_error(std::to_string(failed.load()) + " async_deliver_event calls failed");
        Summary s = summarize(sample);
        r["async_initiation"] = summary_json(s, 1.0, "us");
        delivered += async_calls;
        bench.wait_delivered(delivered, 600s);
    }
    r["counters"] = bench.counters();
    return r;
}

json::object run_latency(const Options& options)
{
    const auto events = static_cast<std::size_t>(options.rate * options.seconds);
    LatencyProbe probe(events);
    Receiver receiver(Receiver::Mode::answer,
                      [&](const ReceivedRequest& request, SteadyClock::time_point at) { probe.on_arrival(request, at); });
    Bench bench(options, "latency");
    bench.add_hook(receiver.url("/"));
    bench.dispatcher().start();

    const double achieved = probe.run(bench.dispatcher(), options.rate);
    const std::size_t arrived = probe.wait(60s);

    json::object r = scenario(options, "latency");
    r["rate"] = options.rate;
    r["achieved_rate"] = achieved;
    r["events"] = events;
    r["arrived"] = arrived;
    r["complete"] = arrived == events;
    r["latency"] = probe.latencies();
    r["counters"] = bench.counters();
    return r;
}

json::object run_isolation(const Options& options)
{
    const auto events = static_cast<std::size_t>(options.rate * options.seconds);
    LatencyProbe probe(events);
    Receiver receiver(Receiver::Mode::answer,
                      [&](const ReceivedRequest& request, SteadyClock::time_point at) { probe.on_arrival(request, at); });
    Receiver stalled(Receiver::Mode::stall);
    Bench bench(options, "isolation");
    bench.add_hook(receiver.url("/"));
    bench.add_hook(stalled.url("/"));
    bench.dispatcher().start();

    const double achieved = probe.run(bench.dispatcher(), options.rate);
    const std::size_t arrived = probe.wait(60s);

    json::object r = scenario(options, "isolation");
    r["rate"] = options.rate;
    r["achieved_rate"] = achieved;
    r["events"] = events;
    r["arrived"] = arrived;
    r["complete"] = arrived == events;
    r["latency"] = probe.latencies();
    r["counters"] = bench.counters();
    bench.stop(100ms);
    return r;
}

json::object run_fanout(const Options& options)
{
    Bench bench(options, "fanout");
    for (std::size_t i = 0; i < options.hooks; ++i)
        bench.add_hook(options.url + "/hook/" + std::to_string(i), "bench.fanout");
    bench.dispatcher().start();

    const std::size_t deliveries = options.hooks * options.fanout_events;
    const auto start = SteadyClock::now();
    in_parallel(options.producers, options.fanout_events, [&](unsigned, std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i)
            bench.dispatcher().deliver_event(event_data(i), "bench.fanout");
    });
    const double enqueue_s = seconds_since(start);
    bench.wait_delivered(deliveries, 600s);
    const double total_s = seconds_since(start);

    json::object r = scenario(options, "fanout");
    r["hooks"] = options.hooks;
    r["events"] = options.fanout_events;
    r["deliveries"] = deliveries;
    r["seconds"] = total_s;
    r["deliveries_per_s"] = static_cast<double>(deliveries) / total_s;
    r["enqueue_seconds"] = enqueue_s;
    r["counters"] = bench.counters();
    return r;
}

json::object run_backlog(const Options& options)
{
    Bench bench(options, "backlog");
    bench.add_hook(options.url + "/");

    // Queued with no worker running, as while the receiver was down: the outbox holds them all
    // before the drain starts (accepted events reach the store from the journal moments later).
    const auto fill_start = SteadyClock::now();
    queue_events(bench.dispatcher(), options.backlog);
    if (!bench.dispatcher().wait_stored(600s))
        throw std::runtime_error("the backlog did not reach the store within 600 s");
    const double fill_s = seconds_since(fill_start);
    const std::int64_t stored = bench.outbox_rows();
    if (stored != static_cast<std::int64_t>(options.backlog))
        throw std::runtime_error("the outbox holds " + std::to_string(stored) + " rows before the drain, not " +
                                 std::to_string(options.backlog));
    const long fill_peak_kb = proc_status_kb("VmHWM");
    const long rss_before_kb = proc_status_kb("VmRSS");
    const bool reset = reset_peak_rss();

    std::atomic<bool> sampling{true};
    std::atomic<long> sampled_peak_kb{0};
    std::thread sampler([&] {
        while (sampling) {
            sampled_peak_kb = std::max(sampled_peak_kb.load(), proc_status_kb("VmRSS"));
            std::this_thread::sleep_for(20ms);
        }
    });
    const auto start = SteadyClock::now();
    bench.dispatcher().start();
    // A drain slower than the limit is cut short: its rate is measured over what it delivered.
    const bool complete = bench.try_wait_delivered(options.backlog, std::chrono::duration<double>(options.drain_limit));
    const double drain_s = seconds_since(start);
    const auto drained = bench.dispatcher().counters().delivered;
    sampling = false;
    sampler.join();
    const long drain_peak_kb = reset ? proc_status_kb("VmHWM") : sampled_peak_kb.load();

    json::object r = scenario(options, "backlog");
    r["deliveries"] = options.backlog;
    r["stored_before_drain"] = stored;
    r["fill_seconds"] = fill_s;
    r["fill_per_s"] = static_cast<double>(options.backlog) / fill_s;
    r["drain_complete"] = complete;
    r["drained"] = drained;
    r["drain_seconds"] = drain_s;
    r["drain_per_s"] = static_cast<double>(drained) / drain_s;
    r["rss_before_drain_mb"] = static_cast<double>(rss_before_kb) / 1024;
    r["drain_peak_rss_mb"] = static_cast<double>(drain_peak_kb) / 1024;
    r["fill_peak_rss_mb"] = static_cast<double>(fill_peak_kb) / 1024;
    r["peak_rss_mb"] = static_cast<double>(std::max(fill_peak_kb, drain_peak_kb)) / 1024;
    r["counters"] = bench.counters();
    bench.stop(1s);
    return r;
}

json::object run_idle(const Options& options)
{
    Bench bench(options, "idle");
    const Hook hook = bench.add_hook(options.url + "/");

    // Each delivery gets one failed attempt and a retry due in an hour, as a dispatcher would
    // record it; then the dispatcher starts with nothing due.
    queue_events(bench.dispatcher(), options.idle_deliveries);
    const TimePoint retry_at = Clock::now() + 1h;
    for (;;) {
        ClaimRequest claim{.worker = "bench-filler", .now = Clock::now(), .lease = 60s, .limit = 2000};
        auto claimed = bench.store().claim_due(claim);
        if (claimed.empty())
            break;
        std::vector<AttemptRecord> records;
        records.reserve(claimed.size());
        for (const ClaimedDelivery& d : claimed) {
            AttemptRecord record{.delivery_id = d.delivery_id, .worker = claim.worker};
            record.attempt = {.number = 1, .started_at = Clock::now(), .response_status = 503,
                              .failure = FailureClass::http_status, .error = "HTTP 503"};
            record.verdict = AttemptVerdict::retry;
            record.next_attempt_at = retry_at;
            records.push_back(std::move(record));
        }
        bench.store().record_attempts(records);
    }

    bench.dispatcher().start();
    std::this_thread::sleep_for(1s);
    const auto cpu_before = process_cpu_time();
    const auto start = SteadyClock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(options.idle_seconds));
    const double wall_s = seconds_since(start);
    const auto cpu = process_cpu_time() - cpu_before;

    json::object r = scenario(options, "idle");
    r["waiting"] = options.idle_deliveries;
    r["seconds"] = wall_s;
    r["cpu_ms"] = static_cast<double>(cpu.count()) / 1000;
    r["cpu_percent"] = static_cast<double>(cpu.count()) / 1e6 / wall_s * 100;
    r["counters"] = bench.counters();
    return r;
}

#ifdef WHISPERER_BENCH_POSTGRES
json::object run_pg_worker(const Options& options)
{
    if (options.pg_schema.empty())
        throw std::invalid_argument("pg_worker needs --pg-schema");
    Bench bench(options, "worker");
    bench.dispatcher().start();
    // The outbox is empty once every delivery's outcome is recorded, by this process or another.
    const auto deadline = SteadyClock::now() + 600s;
    while (bench.store().next_due()) {
        if (SteadyClock::now() > deadline)
            throw std::runtime_error("the outbox was not empty after 600 s");
        std::this_thread::sleep_for(5ms);
    }
    json::object r = scenario(options, "worker");
    r["counters"] = bench.counters();
    bench.stop(1s);
    return r;
}

namespace {

/// The numbers in a comma-separated list such as "1,2,4".
std::vector<unsigned> numbers_in(const std::string& list)
{
    std::vector<unsigned> numbers;
    std::size_t at = 0;
    while (at < list.size()) {
        const std::size_t comma = std::min(list.find(',', at), list.size());
        numbers.push_back(static_cast<unsigned>(std::stoul(list.substr(at, comma - at))));
        at = comma + 1;
    }
    return numbers;
}

/// Starts this program again as `pg_worker` on `schema`, its result going to `out`.
pid_t spawn_worker(const Options& options, const std::string& schema, const std::string& out)
{
    std::vector<std::string> args{"whisperer_bench",  "pg_worker",
                                  "--pg-uri-file",    options.pg_uri_file,
                                  "--pg-schema",      schema,
                                  "--pg-connections", std::to_string(options.pg_connections),
                                  "--store-threads",  std::to_string(options.store_threads),
                                  "--out",            out};
    if (options.threads != 0)
        args.insert(args.end(), {"--threads", std::to_string(options.threads)});
    std::vector<char*> argv;
    for (auto& arg : args)
        argv.push_back(arg.data());
    argv.push_back(nullptr);
    // Its result goes to `out`; what it prints is of no use here.
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid = 0;
    const int e = posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (e != 0)
        throw std::runtime_error("cannot start a pg_worker: " + std::string(std::strerror(e)));
    return pid;
}

} // namespace

json::object run_pg_processes(const Options& options)
{
    if (options.pg_uri_file.empty())
        throw std::invalid_argument("pg_processes needs --pg-uri-file (its workers read the URI from it)");
    // Every request, counted by its webhook-id (the event's uuid: one hook, so one delivery each).
    std::mutex mutex;
    std::unordered_map<std::string, unsigned> seen;
    std::size_t requests = 0;
    std::atomic<std::int64_t> first_arrival{0};
    Receiver receiver(Receiver::Mode::answer, [&](const ReceivedRequest& request, SteadyClock::time_point at) {
        std::int64_t none = 0;
        first_arrival.compare_exchange_strong(none, at.time_since_epoch().count());
        for (const auto& [name, value] : request.headers) {
            if (boost::beast::iequals(name, "webhook-id")) {
                std::lock_guard lock(mutex);
                ++requests;
                ++seen[value];
                break;
            }
        }
    });

    json::object r = scenario(options, "processes");
    r["events"] = options.pg_events;
    r["hooks"] = 1;
    json::array runs;
    for (unsigned processes : numbers_in(options.pg_processes)) {
        {
            std::lock_guard lock(mutex);
            seen.clear();
            requests = 0;
        }
        first_arrival = 0;
        Options run_options = options;
        run_options.pg_schema = "bench_processes_" + std::to_string(processes) + "_" + std::to_string(::getpid());

        // The backlog, queued by a dispatcher that never starts: every row waits unleased.
        {
            Bench filler(run_options, "processes");
            filler.add_hook(receiver.url("/"));
            queue_events(filler.dispatcher(), options.pg_events);
            if (!filler.dispatcher().wait_stored(600s))
                throw std::runtime_error("the backlog did not reach the store within 600 s");
        }
        PostgresStore watcher(options.pg_uri, PostgresOptions{.schema = run_options.pg_schema, .connections = 1});

        const auto spawned = SteadyClock::now();
        std::vector<pid_t> pids;
        std::vector<std::string> outs;
        for (unsigned i = 0; i < processes; ++i) {
            outs.push_back(options.dir + "/whisperer-bench-pg-worker-" + std::to_string(::getpid()) + "-" +
                           std::to_string(i) + ".jsonl");
            std::filesystem::remove(outs.back());
            pids.push_back(spawn_worker(run_options, run_options.pg_schema, outs.back()));
        }
        const auto deadline = SteadyClock::now() + 600s;
        bool drained = false;
        while (SteadyClock::now() < deadline) {
            if (!watcher.next_due()) {
                drained = true;
                break;
            }
            std::this_thread::sleep_for(2ms);
        }
        const auto drained_at = SteadyClock::now();
        bool workers_ok = true;
        for (pid_t pid : pids) {
            if (!drained)
                ::kill(pid, SIGTERM);
            int status = 0;
            ::waitpid(pid, &status, 0);
            workers_ok = workers_ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }

        json::object run;
        run["processes"] = processes;
        run["drained"] = drained;
        run["workers_ok"] = workers_ok;
        {
            std::lock_guard lock(mutex);
            std::size_t duplicates = 0;
            for (const auto& [id, count] : seen)
                duplicates += count - 1;
            run["requests"] = requests;
            run["distinct"] = seen.size();
            run["duplicates"] = duplicates;
            run["complete"] = seen.size() == options.pg_events;
        }
        const SteadyClock::time_point first{SteadyClock::duration{first_arrival.load()}};
        const double drain_s = std::chrono::duration<double>(drained_at - first).count();
        run["drain_seconds"] = drain_s;
        run["deliveries_per_s"] = static_cast<double>(options.pg_events) / drain_s;
        run["seconds_from_spawn"] = std::chrono::duration<double>(drained_at - spawned).count();
        json::array workers;
        for (const auto& out : outs) {
            std::ifstream in(out);
            std::string line;
            if (std::getline(in, line))
                workers.push_back(json::parse(line));
            std::filesystem::remove(out);
        }
        run["workers"] = std::move(workers);
        runs.push_back(std::move(run));
    }
    bool complete = true;
    for (const auto& run : runs)
        complete = complete && run.as_object().at("complete").as_bool() && run.as_object().at("drained").as_bool() &&
                   run.as_object().at("workers_ok").as_bool();
    r["runs"] = std::move(runs);
    r["complete"] = complete;
    return r;
}
#endif

json::object write_wrk_script(const Options& options)
{
    std::mutex mutex;
    std::optional<ReceivedRequest> captured;
    Receiver receiver(Receiver::Mode::answer, [&](const ReceivedRequest& request, SteadyClock::time_point) {
        std::lock_guard lock(mutex);
        captured = request;
    });
    Bench bench(options, "wrk-script");
    bench.add_hook(receiver.url("/"));
    bench.dispatcher().start();
    bench.dispatcher().deliver_event(event_data(1), event_type);
    bench.wait_delivered(1, 30s);

    std::lock_guard lock(mutex);
    if (!captured)
        throw std::runtime_error("the receiver saw no request");
    auto quoted = [](std::string_view s) {
        std::string q = "\"";
        for (unsigned char c : s) {
            if (c == '"' || c == '\\') {
                q += '\\';
                q += static_cast<char>(c);
            } else if (c < 0x20 || c >= 0x7f) {
                char escaped[8];
                std::snprintf(escaped, sizeof escaped, "\\%03u", c);
                q += escaped;
            } else {
                q += static_cast<char>(c);
            }
        }
        return q + "\"";
    };
    std::ofstream lua(options.wrk_script);
    lua << "-- The request whisperer sent for one bench event, captured at a receiver.\n";
    lua << "wrk.method = " << quoted(captured->method) << "\n";
    lua << "wrk.body = " << quoted(captured->body) << "\n";
    json::array headers;
    for (const auto& [name, value] : captured->headers) {
        // wrk sets the framing and the host of its own target.
        if (boost::beast::iequals(name, "Host") || boost::beast::iequals(name, "Content-Length"))
            continue;
        lua << "wrk.headers[" << quoted(name) << "] = " << quoted(value) << "\n";
        headers.push_back(json::string(name));
    }
    if (!lua)
        throw std::runtime_error("cannot write " + options.wrk_script);

    json::object r = scenario(options, "wrk_script");
    r["body_bytes"] = captured->body.size();
    // The raw limit is measured with as many connections as the dispatcher opens to one origin.
    r["connections_per_origin"] = DispatcherOptions{}.max_connections_per_origin;
    r["headers"] = std::move(headers);
    return r;
}

} // namespace whisperer::bench
