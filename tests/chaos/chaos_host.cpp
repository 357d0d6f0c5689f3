// The host of the crash test: a process that publishes events through a Dispatcher on a SQLite
// file and is killed with SIGKILL at random moments by scripts/chaos, then started again on the
// same file.
//
// Each run makes sure the 4 hooks exist, resumes publishing where the acknowledged log ends, and
// after every `deliver_event` (or `async_deliver_event`) that completed appends the event's uuid
// and sequence number to that log ("<uuid> <seq, 10 digits>", one write() per 44-byte line,
// O_APPEND; the page cache keeps it when the process is killed). An event's data is {"seq": N},
// so the body of its deliveries follows from its uuid and N: chaos_receiver.cpp checks the body
// against them and scripts/chaos checks N against this log. Once it has published its share and
// the outbox is empty, it stops the dispatcher and exits 0.
//
// Usage: whisperer_chaos_host --db FILE --acked FILE --url http://127.0.0.1:PORT --events N
//                             [--publishers P] [--lease-ms MS]
//        whisperer_chaos_host --postgres URI --acked PREFIX --url URL --events N
//                             --hosts H --host-index I [--publishers P] [--lease-ms MS]
//        whisperer_chaos_host --postgres URI --url URL --setup-only
//        whisperer_chaos_host --supports-postgres     exits 0 when built with whisperer::postgres
// Prints "phase publishing", "phase draining" and "phase done" lines on stdout as it goes.
//
// With --postgres, H such processes share one PostgresStore (scripts/chaos --store postgres).
// `--setup-only` creates the hooks once, before the hosts start. Host I publishes the sequence
// numbers N with N % H == I, each with the idempotency key "chaos-N", and logs them in
// PREFIX.I. There is no journal: an event is accepted when deliver_event returns, and a call
// that throws (the server restarting) is made again with the same key until it returns, so that
// an event committed before the error is not made twice. A restarted host reads its log and
// publishes again every number of its share that the log lacks, with the same key: an event
// committed by a killed run just before its line was written comes back as a duplicate with its
// first uuid. Every number thus ends up in the logs exactly once, with the uuid of the one event
// the store holds for it. A host drains until the logs of all H hosts hold every event and the
// shared outbox is empty.

#include <whisperer/whisperer.hpp>
#ifdef WHISPERER_CHAOS_POSTGRES
#include <whisperer/postgres_store.hpp>
#endif

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view event_type = "chaos.event";
constexpr int hook_count = 4;
constexpr std::size_t acked_line_size = 44; // 32 hex digits, a space, 10 digits and a newline.

struct Settings {
    std::string db;
    std::string postgres; // A PostgreSQL URI instead of the SQLite file --db.
    unsigned hosts = 1;
    unsigned host_index = 0;
    bool setup_only = false;
    std::string acked;
    std::string url;
    std::uint64_t events = 100000;
    unsigned publishers = 8;
    std::chrono::milliseconds lease{1500};
};

Settings parse_arguments(int argc, char** argv)
{
    Settings s;
    for (int i = 1; i < argc; i += 2) {
        std::string_view name = argv[i];
        if (name == "--setup-only") {
            s.setup_only = true;
            --i;
            continue;
        }
        if (i + 1 >= argc)
            throw std::invalid_argument(std::string(name) + " needs a value");
        std::string value = argv[i + 1];
        if (name == "--db")
            s.db = value;
        else if (name == "--postgres") {
            // "@FILE": the URI is read from FILE, so that its password stays out of `ps`.
            s.postgres = value;
            if (value.starts_with('@')) {
                std::ifstream in{value.substr(1)};
                if (!std::getline(in, s.postgres) || s.postgres.empty())
                    throw std::runtime_error("no PostgreSQL URI in " + value.substr(1));
            }
        }
        else if (name == "--hosts")
            s.hosts = static_cast<unsigned>(std::stoul(value));
        else if (name == "--host-index")
            s.host_index = static_cast<unsigned>(std::stoul(value));
        else if (name == "--acked")
            s.acked = value;
        else if (name == "--url")
            s.url = value;
        else if (name == "--events")
            s.events = std::stoull(value);
        else if (name == "--publishers")
            s.publishers = static_cast<unsigned>(std::stoul(value));
        else if (name == "--lease-ms")
            s.lease = std::chrono::milliseconds(std::stoll(value));
        else
            throw std::invalid_argument("unknown option " + std::string(name));
    }
    if (s.db.empty() == s.postgres.empty())
        throw std::invalid_argument("one of --db and --postgres is required");
    if (s.url.empty() || (s.acked.empty() && !s.setup_only))
        throw std::invalid_argument("--acked and --url are required");
    if (s.hosts == 0 || s.host_index >= s.hosts)
        throw std::invalid_argument("--host-index must be below --hosts");
    if (s.hosts > 1 && s.postgres.empty())
        throw std::invalid_argument("--hosts needs --postgres");
    if (s.publishers == 0)
        throw std::invalid_argument("--publishers must be at least 1");
    return s;
}

void say(const std::string& line)
{
    static std::mutex mutex;
    std::lock_guard lock(mutex);
    std::cout << line << std::endl;
}

/// Creates the hooks /h0 ... /h3 that are missing: a previous run may have been killed between
/// two of them.
void ensure_hooks(whisperer::SubscriptionStore& store, const whisperer::Registry& registry, const std::string& url)
{
    std::set<std::string> existing;
    for (const whisperer::Hook& hook : store.list_hooks({.is_active = true, .limit = 100}).items)
        existing.insert(hook.target_url);
    for (int i = 0; i < hook_count; ++i) {
        whisperer::Hook hook;
        hook.owner = "chaos";
        hook.target_url = url + "/h" + std::to_string(i);
        if (existing.contains(hook.target_url))
            continue;
        hook.event_type = std::string(event_type);
        hook.secret_key = "chaos-secret";
        hook.retry_countdown_config = json::parse(R"({"choice": "fixed", "kwargs": {"seconds": 1}})").as_object();
        whisperer::validate_hook(hook, {.registry = &registry});
        store.create_hook(hook);
    }
}

/// Events acknowledged by earlier runs: whole lines of the acked log.
std::uint64_t acked_so_far(const std::string& path)
{
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0)
        return 0;
    return static_cast<std::uint64_t>(info.st_size) / acked_line_size;
}

bool outbox_empty(whisperer::SubscriptionStore& store)
{
    return store.list_outbox({.limit = 1}).items.empty();
}

whisperer::DispatcherOptions dispatcher_options(const Settings& settings)
{
    whisperer::DispatcherOptions options;
    options.lease = settings.lease;
    options.idle_poll = 500ms;
    options.max_connections_per_origin = 32;
    options.address_filter = whisperer::AddressPolicy{}.allow(whisperer::Cidr::parse("127.0.0.0/8")).as_filter();
    options.log = [](whisperer::LogLevel level, std::string_view message) {
        // Also the line saying how many events a killed run left in its journal.
        if (level >= whisperer::LogLevel::warning || message.find("journal") != std::string_view::npos)
            say("log " + std::string(to_string(level)) + ": " + std::string(message));
    };
    return options;
}

std::string acked_line(const std::string& uuid, std::uint64_t seq)
{
    std::string seq_digits = std::to_string(seq);
    seq_digits.insert(0, 10 - std::min<std::size_t>(10, seq_digits.size()), '0');
    return uuid + " " + seq_digits + "\n";
}

/// Appends the acknowledged event's line to the acked log in one write; false when it failed.
bool append_acked(int acked_fd, const std::string& uuid, std::uint64_t seq)
{
    const std::string line = acked_line(uuid, seq);
    return ::write(acked_fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

#ifdef WHISPERER_CHAOS_POSTGRES

std::string acked_path(const Settings& settings, unsigned host)
{
    return settings.acked + "." + std::to_string(host);
}

/// Opens the shared store, trying again for a minute: the server may be restarting.
std::unique_ptr<whisperer::PostgresStore> open_postgres(const Settings& settings)
{
    whisperer::PostgresOptions options;
    options.connections = 6;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    for (;;) {
        try {
            return std::make_unique<whisperer::PostgresStore>(settings.postgres, options);
        } catch (const std::exception& e) {
            if (std::chrono::steady_clock::now() > give_up)
                throw;
            say(std::string("opening the store failed, trying again: ") + e.what());
            std::this_thread::sleep_for(500ms);
        }
    }
}

/// One of the --hosts processes on a PostgresStore: see the comment at the top.
int run_postgres(const Settings& settings)
{
    whisperer::Registry registry;
    registry.register_json_event(std::string(event_type));
    std::unique_ptr<whisperer::PostgresStore> store = open_postgres(settings);
    ensure_hooks(*store, registry, settings.url);
    if (settings.setup_only) {
        say("hooks ready");
        return 0;
    }

    // What earlier runs of this host acknowledged: their numbers are not published again.
    const std::string own_log = acked_path(settings, settings.host_index);
    const int acked_fd = ::open(own_log.c_str(), O_RDWR | O_CREAT | O_APPEND, 0644);
    if (acked_fd < 0)
        throw std::runtime_error("cannot open " + own_log);
    if (struct stat info {}; ::fstat(acked_fd, &info) == 0 && info.st_size % acked_line_size != 0) {
        say("dropping a partial line at the end of the acked log");
        if (::ftruncate(acked_fd, info.st_size - info.st_size % static_cast<off_t>(acked_line_size)) != 0)
            throw std::runtime_error("cannot truncate " + own_log);
    }
    std::vector<bool> logged(settings.events, false);
    {
        std::ifstream in(own_log);
        std::string uuid;
        std::uint64_t seq = 0;
        while (in >> uuid >> seq) {
            if (seq >= settings.events || seq % settings.hosts != settings.host_index)
                throw std::runtime_error("the acked log holds a number of another share: " + std::to_string(seq));
            logged[seq] = true;
        }
    }
    std::vector<std::uint64_t> todo;
    for (std::uint64_t seq = settings.host_index; seq < settings.events; seq += settings.hosts)
        if (!logged[seq])
            todo.push_back(seq);

    asio::thread_pool pool(2);
    whisperer::DispatcherOptions options = dispatcher_options(settings);
    options.store_threads = 4;
    whisperer::Dispatcher dispatcher(pool.get_executor(), registry, *store, options);
    // Declared after the dispatcher, so destroyed before it.
    auto listener = std::make_unique<whisperer::PostgresDueListener>(
        pool.get_executor(), *store, [&dispatcher] { dispatcher.wake(); }, options.log);
    dispatcher.start();

    say("phase publishing " + std::to_string(todo.size()) + " events");
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<std::uint64_t> duplicates{0};
    std::vector<std::thread> publishers;
    for (unsigned p = 0; p < settings.publishers; ++p) {
        const bool use_async = p % 2 == 1;
        publishers.emplace_back([&, use_async] {
            for (std::size_t i = next++; i < todo.size() && !failed; i = next++) {
                const std::uint64_t seq = todo[i];
                json::value data = {{"seq", seq}};
                whisperer::DeliverOptions deliver;
                deliver.idempotency_key = "chaos-" + std::to_string(seq);
                whisperer::DeliverResult result;
                // Not accepted until a call returns: the same key again until one does.
                auto backoff = 50ms;
                const auto give_up = std::chrono::steady_clock::now() + 120s;
                for (;;) {
                    try {
                        if (use_async)
                            result = dispatcher.async_deliver_event(data, event_type, deliver, asio::use_future).get();
                        else
                            result = dispatcher.deliver_event(data, event_type, deliver);
                        break;
                    } catch (const std::exception& e) {
                        // One line each (scripts/chaos counts them): they come only while the
                        // server is away.
                        ++errors;
                        say(std::string("deliver_event failed, trying again with the same key: ") + e.what());
                        if (std::chrono::steady_clock::now() > give_up) {
                            say("deliver_event kept failing for 120 s");
                            failed = true;
                            return;
                        }
                        std::this_thread::sleep_for(backoff);
                        backoff = std::min<std::chrono::milliseconds>(backoff * 2, 1s);
                    }
                }
                // A duplicate key creates nothing: the first call made the deliveries.
                if (result.duplicate ? result.hook_count != 0 : result.hook_count != hook_count) {
                    say("event " + result.event_uuid + " went to " + std::to_string(result.hook_count) +
                        " hooks instead of " + std::to_string(hook_count) + (result.duplicate ? " (a duplicate)" : ""));
                    failed = true;
                    return;
                }
                if (result.duplicate) {
                    ++duplicates;
                    say("duplicate key " + deliver.idempotency_key + ": already committed as " + result.event_uuid);
                }
                if (!append_acked(acked_fd, result.event_uuid, seq)) {
                    say("cannot append to the acked log");
                    failed = true;
                    return;
                }
            }
        });
    }
    for (std::thread& t : publishers)
        t.join();
    ::close(acked_fd);
    if (failed)
        return 1;

    say("phase draining");
    auto all_logged = [&] {
        std::uint64_t lines = 0;
        for (unsigned h = 0; h < settings.hosts; ++h)
            lines += acked_so_far(acked_path(settings, h));
        return lines >= settings.events;
    };
    auto last_report = std::chrono::steady_clock::now();
    for (;;) {
        try {
            if (all_logged() && outbox_empty(*store))
                break;
        } catch (const std::exception& e) {
            say(std::string("listing the outbox failed: ") + e.what());
        }
        std::this_thread::sleep_for(100ms);
        if (std::chrono::steady_clock::now() - last_report > 5s) {
            last_report = std::chrono::steady_clock::now();
            const auto c = dispatcher.counters();
            say("delivered " + std::to_string(c.delivered) + ", retried " + std::to_string(c.retried) +
                ", in flight " + std::to_string(c.in_flight));
        }
    }
    listener.reset();
    dispatcher.stop();
    const auto c = dispatcher.counters();
    say("phase done: delivered " + std::to_string(c.delivered) + ", retried " + std::to_string(c.retried) +
        ", failed " + std::to_string(c.failed) + "; deliver_event errors " + std::to_string(errors.load()) +
        ", duplicate keys " + std::to_string(duplicates.load()));
    return c.failed == 0 ? 0 : 1;
}

#endif

} // namespace

int main(int argc, char** argv)
{
    if (argc == 2 && std::string_view(argv[1]) == "--supports-postgres") {
#ifdef WHISPERER_CHAOS_POSTGRES
        return 0;
#else
        return 1;
#endif
    }
    try {
        const Settings settings = parse_arguments(argc, argv);
        if (!settings.postgres.empty()) {
#ifdef WHISPERER_CHAOS_POSTGRES
            return run_postgres(settings);
#else
            say("chaos host: built without PostgreSQL (whisperer::postgres, which needs libpq): --postgres "
                "is not available");
            return 2;
#endif
        }
        if (settings.setup_only)
            throw std::invalid_argument("--setup-only needs --postgres");

        whisperer::Registry registry;
        registry.register_json_event(std::string(event_type));
        whisperer::SqliteStore store(settings.db);
        ensure_hooks(store, registry, settings.url);

        const int acked_fd = ::open(settings.acked.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (acked_fd < 0)
            throw std::runtime_error("cannot open " + settings.acked);
        // A line cut short by a kill would shift every later one: drop it (that event is then
        // merely not checked).
        if (struct stat info {}; ::fstat(acked_fd, &info) == 0 && info.st_size % acked_line_size != 0) {
            say("dropping a partial line at the end of the acked log");
            if (::ftruncate(acked_fd, info.st_size - info.st_size % static_cast<off_t>(acked_line_size)) != 0)
                throw std::runtime_error("cannot truncate " + settings.acked);
        }

        asio::thread_pool pool(2);
        whisperer::Dispatcher dispatcher(pool.get_executor(), registry, store, dispatcher_options(settings));
        dispatcher.start();

        const std::uint64_t first = acked_so_far(settings.acked);
        say("phase publishing from " + std::to_string(first));
        std::atomic<std::uint64_t> next{first};
        std::atomic<bool> failed{false};
        std::vector<std::thread> publishers;
        for (unsigned p = 0; p < settings.publishers; ++p) {
            // Half the publishers wait in deliver_event, half on async_deliver_event's future: both
            // paths into the group commit are under test.
            const bool use_async = p % 2 == 1;
            publishers.emplace_back([&, use_async] {
                for (std::uint64_t seq = next++; seq < settings.events && !failed; seq = next++) {
                    json::value data = {{"seq", seq}};
                    whisperer::DeliverResult result;
                    try {
                        if (use_async)
                            result = dispatcher.async_deliver_event(data, event_type, {}, asio::use_future).get();
                        else
                            result = dispatcher.deliver_event(data, event_type);
                    } catch (const std::exception& e) {
                        say(std::string("deliver_event failed: ") + e.what());
                        failed = true;
                        return;
                    }
                    if (result.hook_count != hook_count) {
                        say("event " + result.event_uuid + " went to " + std::to_string(result.hook_count) +
                            " hooks instead of " + std::to_string(hook_count));
                        failed = true;
                        return;
                    }
                    if (!append_acked(acked_fd, result.event_uuid, seq)) {
                        say("cannot append to the acked log");
                        failed = true;
                        return;
                    }
                }
            });
        }
        for (std::thread& t : publishers)
            t.join();
        ::close(acked_fd);
        if (failed)
            return 1;

        say("phase draining");
        auto last_report = std::chrono::steady_clock::now();
        while (!outbox_empty(store)) {
            std::this_thread::sleep_for(100ms);
            if (std::chrono::steady_clock::now() - last_report > 5s) {
                last_report = std::chrono::steady_clock::now();
                const auto c = dispatcher.counters();
                say("delivered " + std::to_string(c.delivered) + ", retried " + std::to_string(c.retried) +
                    ", in flight " + std::to_string(c.in_flight));
            }
        }
        const auto before_stop = dispatcher.counters();
        if (before_stop.in_flight != 0)
            say("outbox empty with " + std::to_string(before_stop.in_flight) + " requests still in flight");
        const auto stop_started = std::chrono::steady_clock::now();
        dispatcher.stop();
        const auto stop_took = std::chrono::steady_clock::now() - stop_started;
        if (stop_took > 1s)
            say("stop took " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(stop_took).count()) +
                " ms");
        const auto c = dispatcher.counters();
        say("phase done: delivered " + std::to_string(c.delivered) + ", retried " + std::to_string(c.retried) +
            ", failed " + std::to_string(c.failed));
        return c.failed == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        say(std::string("chaos host: ") + e.what());
        return 2;
    }
}
