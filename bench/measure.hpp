// What the scenarios measure with: percentiles, process CPU time and memory, the machine.
#ifndef WHISPERER_BENCH_MEASURE_HPP
#define WHISPERER_BENCH_MEASURE_HPP

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace whisperer::bench {

/// Order statistics of a sample, in the sample's unit.
struct Summary {
    std::size_t count = 0;
    double mean = 0;
    double p50 = 0;
    double p99 = 0;
    double max = 0;
};

/// Summarises `sample` (sorted in place). Percentiles are nearest-rank.
Summary summarize(std::vector<double>& sample);

/// User plus system CPU time of the whole process so far (getrusage).
std::chrono::microseconds process_cpu_time();

/// A field of /proc/self/status in kB (`VmHWM`, `VmRSS`), or -1.
long proc_status_kb(const char* field);

/// Resets the process's peak RSS (VmHWM) to its current RSS; false when the kernel refused.
bool reset_peak_rss();

/// The machine as results state it.
struct Machine {
    unsigned cores = 0;       ///< Online CPUs.
    std::string cpu_model;    ///< /proc/cpuinfo "model name".
    std::string kernel;       ///< uname -r.
};

Machine this_machine();

/// Seconds since `start` on the steady clock.
inline double seconds_since(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace whisperer::bench

#endif
