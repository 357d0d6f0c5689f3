// whisperer_bench: runs one benchmark scenario per invocation (so each has the process to itself,
// and peak memory and CPU time are its own), appends its figures as one JSON line to --out, and
// prints the table of a whole run with `report`. scripts/bench runs them all against nginx.
// Exits 1 when a scenario fails, 3 when its result is written but not every event arrived.

#include "report.hpp"
#include "scenarios.hpp"

#include <boost/json/serialize.hpp>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <string_view>

namespace {

using namespace whisperer::bench;
namespace json = boost::json;

constexpr const char* usage = R"(usage: whisperer_bench <scenario> [--option value]...

scenarios (each appends one JSON line to --out):
  throughput   --events 200000 --producers 4 [--durability normal|full] [--async-window N]
  host_cost    --calls 100000            (1 thread, then 4 threads)
  latency      --rate 1000 --seconds 30  (to an in-process receiver)
  fanout       --hooks 1000 --fanout-events 200 --producers 4
  backlog      --backlog 1000000 --drain-limit 600
  isolation    --rate 1000 --seconds 30  (plus one hook whose receiver stalls)
  idle         --idle-deliveries 100000 --idle-seconds 10
  wrk_script   --wrk-script FILE         (writes the request as a wrk Lua script)
  pg_throughput, pg_host_cost, pg_latency, pg_fanout, pg_isolation
               the scenario of that name on a PostgresStore (--pg-uri-file FILE, required;
               --pg-connections 8, --store-threads 4)
  pg_processes --pg-events 20000 --pg-processes 1,2,4
               a backlog drained by that many dispatcher processes, one run each
  pg_worker    --pg-schema NAME          (one dispatcher process of pg_processes)
  report       --results FILE --raw-rps N [--raw-detail TEXT] [--json FILE]

common options:
  --url URL        the nginx receiver (http://127.0.0.1:PORT); every scenario but latency,
                   isolation and wrk_script sends to it
  --dir DIR        where the SQLite files go (default /tmp)
  --threads N      threads running the dispatcher's executor (default: one per core)
  --page-size N    page size of the new SQLite file (default: SqliteOptions' 1024)
  --out FILE       JSON lines file the result is appended to
  --async-calls N  host_cost: async_deliver_event initiations timed (default: --calls)
)";

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2 || std::string_view(argv[1]) == "--help") {
        std::cout << usage;
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    std::map<std::string, std::string, std::less<>> args;
    for (int i = 2; i < argc; ++i) {
        std::string_view key = argv[i];
        if (key.substr(0, 2) != "--" || i + 1 >= argc) {
            std::cerr << "whisperer_bench: expected --option value, got " << key << "\n" << usage;
            return 2;
        }
        args[std::string(key.substr(2))] = argv[++i];
    }
    auto take = [&](const char* key, auto& into) {
        auto it = args.find(key);
        if (it == args.end())
            return;
        using T = std::decay_t<decltype(into)>;
        if constexpr (std::is_same_v<T, std::string>)
            into = it->second;
        else if constexpr (std::is_same_v<T, double>)
            into = std::stod(it->second);
        else
            into = static_cast<T>(std::stoull(it->second));
        args.erase(it);
    };

    try {
        if (command == "report") {
            ReportInput input;
            take("results", input.results);
            take("json", input.output);
            take("raw-rps", input.raw_rps);
            take("raw-detail", input.raw_detail);
            report(input);
            return 0;
        }

        Options options;
        std::string out, durability;
        take("url", options.url);
        take("dir", options.dir);
        take("threads", options.threads);
        take("producers", options.producers);
        take("async-window", options.async_window);
        take("durability", durability);
        take("page-size", options.page_size);
        take("events", options.events);
        take("calls", options.calls);
        take("rate", options.rate);
        take("seconds", options.seconds);
        take("hooks", options.hooks);
        take("fanout-events", options.fanout_events);
        take("backlog", options.backlog);
        take("drain-limit", options.drain_limit);
        take("idle-deliveries", options.idle_deliveries);
        take("idle-seconds", options.idle_seconds);
        take("wrk-script", options.wrk_script);
        take("pg-uri-file", options.pg_uri_file);
        take("pg-schema", options.pg_schema);
        take("pg-connections", options.pg_connections);
        take("store-threads", options.store_threads);
        take("pg-events", options.pg_events);
        take("pg-processes", options.pg_processes);
        take("async-calls", options.async_calls);
        take("out", out);
        if (!args.empty()) {
            std::cerr << "whisperer_bench: unknown option --" << args.begin()->first << "\n";
            return 2;
        }
        if (durability == "full")
            options.durability = whisperer::SqliteDurability::full;
        else if (!durability.empty() && durability != "normal")
            throw std::invalid_argument("--durability is normal or full");

        if (!options.pg_uri_file.empty()) {
            std::ifstream uri(options.pg_uri_file);
            if (!std::getline(uri, options.pg_uri) || options.pg_uri.empty())
                throw std::runtime_error("cannot read a URI from " + options.pg_uri_file);
        }

        std::map<std::string, std::function<json::object(const Options&)>, std::less<>> scenarios{
            {"throughput", run_throughput}, {"host_cost", run_host_cost}, {"latency", run_latency},
            {"fanout", run_fanout},         {"backlog", run_backlog},     {"isolation", run_isolation},
            {"idle", run_idle},             {"wrk_script", write_wrk_script},
        };
#ifdef WHISPERER_BENCH_POSTGRES
        // pg_<scenario>: the same scenario on a PostgresStore.
        for (const char* name : {"throughput", "host_cost", "latency", "fanout", "isolation"})
            scenarios.emplace(std::string("pg_") + name, scenarios.at(name));
        scenarios.emplace("pg_processes", run_pg_processes);
        scenarios.emplace("pg_worker", run_pg_worker);
#endif
        if (command.rfind("pg_", 0) == 0)
            options.postgres = true;
        auto scenario = scenarios.find(command);
        if (scenario == scenarios.end()) {
            std::cerr << "whisperer_bench: unknown scenario " << command << "\n" << usage;
            return 2;
        }
        const bool needs_nginx = command != "latency" && command != "isolation" && command != "wrk_script" &&
                                 command != "pg_latency" && command != "pg_isolation" &&
                                 command != "pg_processes" && command != "pg_worker";
        if (needs_nginx && options.url.empty())
            throw std::invalid_argument("--url is required for " + command);

        const json::object result = scenario->second(options);
        const std::string line = json::serialize(result);
        std::cout << line << std::endl;
        if (!out.empty()) {
            std::ofstream file(out, std::ios::app);
            file << line << "\n";
            if (!file)
                throw std::runtime_error("cannot append to " + out);
        }
        if (const json::value* complete = result.if_contains("complete"); complete && complete->is_bool() &&
                                                                          !complete->as_bool()) {
            std::cerr << "whisperer_bench " << command << ": not every event arrived\n";
            return 3;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "whisperer_bench " << command << ": " << e.what() << "\n";
        return 1;
    }
}
