#include "report.hpp"

#include "measure.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value_to.hpp>
#include <boost/json/serialize.hpp>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>

#ifndef WHISPERER_BENCH_BUILD_TYPE
#define WHISPERER_BENCH_BUILD_TYPE "unknown"
#endif
#ifndef WHISPERER_BENCH_CXX_FLAGS
#define WHISPERER_BENCH_CXX_FLAGS ""
#endif

namespace whisperer::bench {

namespace json = boost::json;

namespace {

/// The number at `path` (keys separated by '/') in `o`, or nullopt.
std::optional<double> number_at(const json::object* o, std::string_view path)
{
    const json::value* v = nullptr;
    while (o != nullptr) {
        const auto slash = path.find('/');
        v = o->if_contains(path.substr(0, slash));
        if (v == nullptr)
            return std::nullopt;
        if (slash == std::string_view::npos)
            break;
        path.remove_prefix(slash + 1);
        o = v->if_object();
    }
    if (v == nullptr || !v->is_number())
        return std::nullopt;
    return v->to_number<double>();
}

std::string format(double value, int decimals)
{
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
    return text;
}

/// One row of the table and of the results file's "figures".
struct Figure {
    std::string name;
    std::string value;       ///< As printed, with its unit.
    std::string ratio;       ///< To the raw limit, or empty.
    std::string target;      ///< Empty when there is none.
    std::optional<bool> met;
};

} // namespace

json::object report(const ReportInput& input)
{
    // Later lines win, so a scenario run again replaces its earlier result.
    std::map<std::string, json::object> by_key;
    json::array scenarios;
    std::ifstream lines(input.results);
    if (!lines)
        throw std::runtime_error("cannot read " + input.results);
    for (std::string line; std::getline(lines, line);) {
        if (line.empty())
            continue;
        json::object result = json::parse(line).as_object();
        std::string key = json::value_to<std::string>(result.at("scenario"));
        if (const auto* d = result.if_contains("durability"))
            key += ":" + json::value_to<std::string>(*d);
        else if (key == "pg_throughput") {
            key += ":" + std::to_string(result.at("producers").to_number<unsigned>());
            if (const auto* window = result.if_contains("async_window"); window && window->to_number<unsigned>() > 0)
                key += ":async";
        }
        by_key[key] = result;
    }
    for (const auto& [key, result] : by_key)
        scenarios.push_back(result);
    auto get = [&](const std::string& key) -> const json::object* {
        auto it = by_key.find(key);
        return it == by_key.end() ? nullptr : &it->second;
    };

    const double raw = input.raw_rps;
    auto ratio = [&](std::optional<double> rate) { return rate && raw > 0 ? format(*rate / raw, 3) + " x" : ""; };
    std::vector<Figure> figures;
    figures.push_back({"raw limit: wrk -> nginx", format(raw, 0) + " req/s", raw > 0 ? "1.000 x" : "", "", {}});

    const auto throughput = number_at(get("throughput:normal"), "deliveries_per_s");
    if (throughput)
        figures.push_back({"throughput (synchronous=NORMAL)", format(*throughput, 0) + " /s", ratio(throughput),
                           ">= 0.35 x raw", raw > 0 ? std::optional(*throughput / raw >= 0.35) : std::nullopt});
    if (auto v = number_at(get("throughput:normal"), "enqueue_per_s"))
        figures.push_back({"  deliver_event rate during it", format(*v, 0) + " /s", ratio(v), "", {}});
    if (auto v = number_at(get("throughput:full"), "deliveries_per_s"))
        figures.push_back({"throughput (synchronous=FULL)", format(*v, 0) + " /s", ratio(v), "(no target)", {}});
    if (auto v = number_at(get("throughput:full"), "enqueue_per_s"))
        figures.push_back({"  deliver_event rate during it", format(*v, 0) + " /s", ratio(v), "", {}});

    for (const char* threads : {"threads_1", "threads_4"}) {
        const auto p50 = number_at(get("host_cost"), std::string(threads) + "/p50");
        const auto p99 = number_at(get("host_cost"), std::string(threads) + "/p99");
        if (!p50 || !p99)
            continue;
        const bool one = std::string_view(threads) == "threads_1";
        figures.push_back({std::string("host cost, ") + (one ? "1 thread" : "4 threads") + ", p50 / p99",
                           format(*p50, 1) + " / " + format(*p99, 1) + " us", "",
                           one ? "p99 <= 50 us" : "", one ? std::optional(*p99 <= 50) : std::nullopt});
    }

    // A run in which events went missing has no honest percentile: its target is unmet.
    auto missing = [&](const char* key) { return number_at(get(key), "latency/missing").value_or(0); };
    auto missing_note = [&](const char* key) {
        return missing(key) > 0 ? ", " + format(missing(key), 0) + " missing" : std::string();
    };
    const auto latency_p99 = number_at(get("latency"), "latency/p99");
    if (latency_p99) {
        figures.push_back({"latency, p50 / p99 / max",
                           format(*number_at(get("latency"), "latency/p50"), 2) + " / " + format(*latency_p99, 2) +
                               " / " + format(*number_at(get("latency"), "latency/max"), 1) + " ms" +
                               missing_note("latency"),
                           "", "p99 <= 5 ms", *latency_p99 <= 5 && missing("latency") == 0});
    }

    if (auto v = number_at(get("fanout"), "deliveries_per_s"))
        figures.push_back({"fan-out (1,000 hooks)", format(*v, 0) + " /s", ratio(v), ">= throughput",
                           throughput ? std::optional(*v >= *throughput) : std::nullopt});

    if (auto rss = number_at(get("backlog"), "peak_rss_mb")) {
        std::string detail = format(*rss, 1) + " MB";
        if (auto drain_rss = number_at(get("backlog"), "drain_peak_rss_mb"))
            detail += " (drain " + format(*drain_rss, 1) + ")";
        figures.push_back({"backlog (1,000,000): peak RSS", detail, "", "<= 200 MB", *rss <= 200});
    }
    if (auto v = number_at(get("backlog"), "drain_per_s")) {
        const json::value* complete = get("backlog")->if_contains("drain_complete");
        const bool cut = complete != nullptr && complete->is_bool() && !complete->as_bool();
        figures.push_back({cut ? "backlog: drain rate (cut short)" : "backlog: drain rate", format(*v, 0) + " /s",
                           ratio(v), ">= 0.8 x throughput",
                           throughput ? std::optional(*v >= 0.8 * *throughput) : std::nullopt});
    }

    if (auto p99 = number_at(get("isolation"), "latency/p99")) {
        figures.push_back({"isolation, p50 / p99 / max",
                           format(*number_at(get("isolation"), "latency/p50"), 2) + " / " + format(*p99, 2) + " / " +
                               format(*number_at(get("isolation"), "latency/max"), 1) + " ms" +
                               missing_note("isolation"),
                           "", "p99 <= 2 x latency p99",
                           missing("isolation") > 0 ? std::optional(false)
                           : latency_p99           ? std::optional(*p99 <= 2 * *latency_p99)
                                                   : std::nullopt});
    }

    if (auto v = number_at(get("idle"), "cpu_percent"))
        figures.push_back({"idle (100,000 waiting): CPU", format(*v, 3) + " % of a core", "", "< 1 %", *v < 1});

    // PostgreSQL, beside the SQLite figures of the same run.
    auto claim_p99 = [&](const char* key) -> std::string {
        auto v = number_at(get(key), "counters/store/claim_due/p99_us");
        return v ? ", claim p99 " + format(*v / 1000, 1) + " ms" : std::string();
    };
    if (throughput && get("throughput:normal"))
        figures.push_back({"  claim_due p50 / p99 (SQLite)",
                           format(*number_at(get("throughput:normal"), "counters/store/claim_due/p50_us") / 1000, 2) +
                               " / " +
                               format(*number_at(get("throughput:normal"), "counters/store/claim_due/p99_us") / 1000,
                                      2) + " ms",
                           "", "", {}});
    for (const auto& [key, result] : by_key) {
        if (key.rfind("pg_throughput:", 0) != 0)
            continue;
        const auto v = number_at(&result, "deliveries_per_s");
        const auto producers = number_at(&result, "producers").value_or(0);
        const bool async = key.ends_with(":async");
        const bool same = producers == number_at(get("throughput:normal"), "producers").value_or(4);
        std::string value = format(*v, 0) + " /s";
        if (throughput)
            value += " = " + format(*v / *throughput, 3) + " x SQLite";
        figures.push_back({"PostgreSQL throughput, " + format(producers, 0) + " producers" +
                               (async ? " (async_deliver_event)" : ""),
                           value, ratio(v),
                           same ? ">= 0.5 x SQLite" : "",
                           same && throughput ? std::optional(*v / *throughput >= 0.5) : std::nullopt});
        const auto enqueue = number_at(&result, "counters/store/enqueue_events/calls").value_or(0);
        const auto events = number_at(&result, "events").value_or(0);
        figures.push_back({"  events per enqueue commit",
                           format(enqueue > 0 ? events / enqueue : 0, 1) + claim_p99(key.c_str()), "", "", {}});
    }
    for (const char* part : {"threads_1", "threads_4", "async_initiation"}) {
        const std::string name = std::string_view(part) == "threads_1"   ? "deliver_event, 1 thread"
                                 : std::string_view(part) == "threads_4" ? "deliver_event, 4 threads"
                                                                         : "async_deliver_event initiation";
        auto pair = [&](const char* key) -> std::string {
            const auto p50 = number_at(get(key), std::string(part) + "/p50");
            const auto p99 = number_at(get(key), std::string(part) + "/p99");
            return p50 && p99 ? format(*p50, 1) + " / " + format(*p99, 1) + " us" : "-";
        };
        if (get("pg_host_cost"))
            figures.push_back({"host cost " + name + ", p50 / p99", "SQLite " + pair("host_cost"), "", "", {}});
        if (get("pg_host_cost"))
            figures.push_back({"", "PostgreSQL " + pair("pg_host_cost"), "", "", {}});
    }
    if (const json::object* processes = get("pg_processes")) {
        for (const json::value& run : processes->at("runs").as_array()) {
            const json::object& o = run.as_object();
            figures.push_back({"PostgreSQL drain, " + format(*number_at(&o, "processes"), 0) + " process(es)",
                               format(*number_at(&o, "deliveries_per_s"), 0) + " /s, " +
                                   format(*number_at(&o, "duplicates"), 0) + " duplicates",
                               ratio(number_at(&o, "deliveries_per_s")), "0 duplicates",
                               *number_at(&o, "duplicates") == 0 && o.at("complete").as_bool()});
        }
    }
    if (auto p99 = number_at(get("pg_latency"), "latency/p99")) {
        figures.push_back({"PostgreSQL latency, p50 / p99 / max",
                           format(*number_at(get("pg_latency"), "latency/p50"), 2) + " / " + format(*p99, 2) + " / " +
                               format(*number_at(get("pg_latency"), "latency/max"), 1) + " ms" +
                               missing_note("pg_latency"),
                           "", format(*number_at(get("pg_latency"), "rate"), 0) + " events/s", {}});
    }

    const Machine machine = this_machine();
    std::cout << "\nwhisperer benchmarks on " << machine.cores << " cores, " << machine.cpu_model << " (Linux "
              << machine.kernel << ")\nbuild: " << WHISPERER_BENCH_BUILD_TYPE << " " << WHISPERER_BENCH_CXX_FLAGS
              << "; raw limit: " << input.raw_detail << "\n\n";
    std::printf("%-36s %-30s %-10s %-24s %s\n", "figure", "value", "vs raw", "target", "met");
    std::printf("%s\n", std::string(108, '-').c_str());
    json::array figures_json;
    for (const Figure& f : figures) {
        const char* met = !f.met ? "" : *f.met ? "yes" : "NO";
        std::printf("%-36s %-30s %-10s %-24s %s\n", f.name.c_str(), f.value.c_str(), f.ratio.c_str(),
                    f.target.c_str(), met);
        json::object row{{"figure", f.name}, {"value", f.value}, {"ratio_to_raw", f.ratio}, {"target", f.target}};
        row["met"] = f.met ? json::value(*f.met) : json::value(nullptr);
        figures_json.push_back(std::move(row));
    }

    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    json::object out;
    out["date"] = when;
    out["machine"] = {{"cores", machine.cores}, {"cpu_model", machine.cpu_model}, {"kernel", machine.kernel}};
    out["build"] = {{"type", WHISPERER_BENCH_BUILD_TYPE}, {"cxx_flags", WHISPERER_BENCH_CXX_FLAGS}};
    out["raw_limit"] = {{"requests_per_s", raw}, {"how", input.raw_detail}};
    out["figures"] = std::move(figures_json);
    out["scenarios"] = std::move(scenarios);
    if (!input.output.empty()) {
        std::ofstream file(input.output);
        file << json::serialize(out) << "\n";
        if (!file)
            throw std::runtime_error("cannot write " + input.output);
        std::cout << "\nresults written to " << input.output << "\n";
    }
    return out;
}

} // namespace whisperer::bench
