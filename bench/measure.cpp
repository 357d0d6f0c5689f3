#include "measure.hpp"

#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

namespace whisperer::bench {

Summary summarize(std::vector<double>& sample)
{
    Summary s;
    s.count = sample.size();
    if (sample.empty())
        return s;
    std::sort(sample.begin(), sample.end());
    auto rank = [&](double p) {
        auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sample.size())));
        return sample[std::clamp<std::size_t>(i, 1, sample.size()) - 1];
    };
    s.mean = std::accumulate(sample.begin(), sample.end(), 0.0) / static_cast<double>(sample.size());
    s.p50 = rank(0.50);
    s.p99 = rank(0.99);
    s.max = sample.back();
    return s;
}

std::chrono::microseconds process_cpu_time()
{
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    auto micros = [](const timeval& t) { return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; };
    return std::chrono::microseconds{micros(usage.ru_utime) + micros(usage.ru_stime)};
}

long proc_status_kb(const char* field)
{
    std::ifstream status("/proc/self/status");
    const std::string prefix = std::string(field) + ":";
    for (std::string line; std::getline(status, line);)
        if (line.rfind(prefix, 0) == 0)
            return std::stol(line.substr(prefix.size()));
    return -1;
}

bool reset_peak_rss()
{
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    clear.flush();
    return static_cast<bool>(clear);
}

Machine this_machine()
{
    Machine m;
    m.cores = static_cast<unsigned>(sysconf(_SC_NPROCESSORS_ONLN));
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);) {
        if (line.rfind("model name", 0) == 0) {
            auto colon = line.find(':');
            if (colon != std::string::npos)
                m.cpu_model = line.substr(line.find_first_not_of(' ', colon + 1));
            break;
        }
    }
    utsname name{};
    if (uname(&name) == 0)
        m.kernel = name.release;
    return m;
}

} // namespace whisperer::bench
