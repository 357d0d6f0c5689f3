// whisperer-server: serves the hooks REST API and the publish route on a SQLite file or a
// PostgreSQL database and delivers what is published. See `whisperer-server --help`.

#include "options.hpp"
#include "token_commands.hpp"

#include <whisperer/dispatcher.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/http/server.hpp>
#include <whisperer/http/server_tls.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/sqlite_store.hpp>
#ifdef WHISPERER_SERVER_POSTGRES
#include <whisperer/postgres_store.hpp>
#endif

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <exception>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace {

namespace asio = boost::asio;
using namespace whisperer;

/// Writes timestamped log lines to stderr, one at a time from any thread.
LogHandler stderr_log()
{
    auto mutex = std::make_shared<std::mutex>();
    return [mutex](LogLevel level, std::string_view message) {
        std::time_t now = std::time(nullptr);
        std::tm utc{};
        gmtime_r(&now, &utc);
        char stamp[32];
        std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
        std::lock_guard lock(*mutex);
        std::fprintf(stderr, "%s %-7s %.*s\n", stamp, std::string(to_string(level)).c_str(),
                     static_cast<int>(message.size()), message.data());
        std::fflush(stderr);
    };
}

/// The store's options: the master key from `secret_key_file` when one is given.
SqliteOptions store_options(const std::string& secret_key_file)
{
    SqliteOptions options;
    if (!secret_key_file.empty())
        options.master_key = MasterKey::from_file(secret_key_file);
    return options;
}

/// True when `db` names a PostgreSQL database (a `postgresql://` or `postgres://` URI).
bool is_postgres(const std::string& db)
{
    return db.starts_with("postgresql://") || db.starts_with("postgres://");
}

/// Connections to PostgreSQL: the dispatcher's store threads, and the API's and the publish
/// route's calls from the server's threads.
constexpr std::size_t postgres_store_threads = 4;

/// The store `db` names: a PostgreSQL database for a URI, else a SQLite file. `described` is
/// set to what log lines may show of it (no password).
std::unique_ptr<SubscriptionStore> open_store(const std::string& db, const std::string& secret_key_file,
                                              const std::string& schema, unsigned threads, std::string& described)
{
    if (is_postgres(db)) {
#ifdef WHISPERER_SERVER_POSTGRES
        PostgresOptions options;
        if (!secret_key_file.empty())
            options.master_key = MasterKey::from_file(secret_key_file);
        options.connections = postgres_store_threads + threads;
        options.schema = schema;
        auto store = std::make_unique<PostgresStore>(db, std::move(options));
        described = store->redacted_conninfo();
        return store;
#else
        (void)threads;
        (void)schema;
        throw std::runtime_error("this whisperer-server was built without PostgreSQL (WHISPERER_WITH_POSTGRES)");
#endif
    }
    described = db;
    return std::make_unique<SqliteStore>(db, store_options(secret_key_file));
}

int rekey(const server::RekeyOptions& options)
{
    // Opening creates what is missing: a database or a current key that is not there is a typo.
    for (const std::string* path : {&options.db, &options.secret_key_file})
        if ((path != &options.db || !is_postgres(options.db)) && !std::filesystem::exists(*path))
            throw std::runtime_error("rekey: " + *path + " does not exist");
    const MasterKey new_key = MasterKey::from_file(options.new_key_file);
    RekeyResult result;
    std::string database;
    std::unique_ptr<SubscriptionStore> store = open_store(options.db, options.secret_key_file, options.schema, 1, database);
    if (auto* sqlite = dynamic_cast<SqliteStore*>(store.get()))
        result = sqlite->rekey(new_key);
#ifdef WHISPERER_SERVER_POSTGRES
    else if (auto* postgres = dynamic_cast<PostgresStore*>(store.get()))
        result = postgres->rekey(new_key);
#endif
    std::cerr << "Sealed " << result.values << " secrets and credentials of " << result.hooks << " webhooks under "
              << options.new_key_file << "; " << options.secret_key_file << " no longer opens " << database << ".\n";
    if (!result.unreadable_hooks.empty()) {
        std::cerr << "Left as they were (a credential the old key could not open):";
        for (std::int64_t id : result.unreadable_hooks)
            std::cerr << " webhook " << id;
        std::cerr << '\n';
    }
    return 0;
}

/// The listener's connection limits: as given, or a quarter of the process's descriptor limit
/// (at most 1024; deliveries and the database need the rest) and an eighth of that per client.
void connection_limits(const server::ServeOptions& options, http::ServerOptions& server_options)
{
    std::size_t total = options.max_connections;
    if (total == 0) {
        rlimit files{};
        std::size_t descriptors = 1024;
        if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY)
            descriptors = static_cast<std::size_t>(files.rlim_cur);
        total = std::clamp<std::size_t>(descriptors / 4, 1, 1024);
    }
    server_options.max_connections = total;
    server_options.max_connections_per_client =
        options.max_connections_per_client != 0 ? options.max_connections_per_client : std::max<std::size_t>(total / 8, 1);
}

int serve(const server::ServeOptions& options)
{
    LogHandler log = stderr_log();
    http::ServerOptions server_options;
    server_options.log = log;
    // Before the database is touched: a refused key file changes nothing.
    if (!options.tls_cert_file.empty())
        server_options.tls = http::make_server_tls_context({options.tls_cert_file, options.tls_key_file});
    connection_limits(options, server_options);
    Registry registry;
    for (const std::string& type : options.event_types)
        registry.register_json_event(type);
    std::string database;
    std::unique_ptr<SubscriptionStore> opened = open_store(options.db, options.secret_key_file, options.schema, options.threads, database);
    SubscriptionStore& store = *opened;

    asio::io_context ioc;
    DispatcherOptions dispatcher_options;
    dispatcher_options.address_filter = options.address_policy.as_filter();
    dispatcher_options.log = log;
    if (is_postgres(options.db)) {
        dispatcher_options.store_threads = postgres_store_threads;
        if (!options.listen_notifications)
            dispatcher_options.idle_poll = std::chrono::milliseconds(250);
    }
    Dispatcher dispatcher(ioc.get_executor(), registry, store, dispatcher_options);
#ifdef WHISPERER_SERVER_POSTGRES
    // Other processes' commits wake this one's dispatcher at once; polling stays the fallback.
    std::unique_ptr<PostgresDueListener> due_listener;
    if (auto* postgres = dynamic_cast<PostgresStore*>(&store); postgres && options.listen_notifications)
        due_listener = std::make_unique<PostgresDueListener>(
            ioc.get_executor(), *postgres, [&dispatcher] { dispatcher.wake(); }, log);
#endif

    http::TokenAuthenticator authenticator(store);
    http::RouterOptions router_options;
    router_options.prefix = options.prefix;
    http::HooksRouter router(registry, store, dispatcher, authenticator, router_options);
    http::Server server(ioc.get_executor(), router, server_options);
    server.listen(options.listen);

    std::promise<int> stop_signal;
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&stop_signal](boost::system::error_code ec, int signal) {
        stop_signal.set_value(ec ? 0 : signal);
    });

    auto work = asio::make_work_guard(ioc);
    std::vector<std::thread> threads;
    for (unsigned i = 0; i < options.threads; ++i)
        threads.emplace_back([&ioc] { ioc.run(); });
    dispatcher.start();

    auto endpoint = server.local_endpoint();
    std::string host = endpoint.address().is_v6() ? "[" + endpoint.address().to_string() + "]"
                                                  : endpoint.address().to_string();
    std::string types;
    for (const std::string& type : registry.event_types())
        types += (types.empty() ? "" : ", ") + type;
    log(LogLevel::info, std::string("whisperer-server listening on ") + (server_options.tls ? "https" : "http") +
                            "://" + host + ":" + std::to_string(endpoint.port()) + options.prefix + " (database " +
                            database +
                            (options.secret_key_file.empty() ? "" : ", secrets encrypted") +
                            ", event types: " + (types.empty() ? "none" : types) + ", at most " +
                            std::to_string(server_options.max_connections) + " connections, " +
                            std::to_string(server_options.max_connections_per_client) + " per client address)");

    int signal = stop_signal.get_future().get();
    log(LogLevel::info, "signal " + std::to_string(signal) + " received, stopping");
    // The dispatcher's stop blocks until deliveries in flight are recorded, so it runs here and
    // not on the executor's threads.
    server.stop();
#ifdef WHISPERER_SERVER_POSTGRES
    due_listener.reset();
#endif
    dispatcher.stop();
    work.reset();
    ioc.stop();
    for (std::thread& t : threads)
        t.join();
    log(LogLevel::info, "stopped");
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    try {
        server::Command command = server::parse_command_line(argc, argv);
        switch (command.kind) {
        case server::Command::Kind::help: std::cout << server::usage(); return 0;
        case server::Command::Kind::token: {
            std::string database;
            auto store = open_store(command.token.db, command.token.secret_key_file, command.token.schema, 1, database);
            return server::run_token_command(command.token, *store, std::cout, std::cerr);
        }
        case server::Command::Kind::rekey: return rekey(command.rekey);
        case server::Command::Kind::serve: return serve(command.serve);
        }
    } catch (const server::UsageError& e) {
        std::cerr << "whisperer-server: " << e.what() << "\n\n" << server::usage();
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "whisperer-server: " << e.what() << '\n';
        return 1;
    }
    return 0;
}
