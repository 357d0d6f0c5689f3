// The results table and the results file.
#ifndef WHISPERER_BENCH_REPORT_HPP
#define WHISPERER_BENCH_REPORT_HPP

#include <boost/json/object.hpp>

#include <string>

namespace whisperer::bench {

/// What `report` is given besides the scenarios' results.
struct ReportInput {
    std::string results;     ///< JSON lines, one scenario result each.
    std::string output;      ///< The results file to write.
    double raw_rps = 0;      ///< wrk's requests per second against the same nginx.
    std::string raw_detail;  ///< How the raw limit was measured.
};

/// Prints the machine, the build, and every figure with its ratio to the raw limit and its
/// target; writes everything to `input.output`. Returns the results file's content.
boost::json::object report(const ReportInput& input);

} // namespace whisperer::bench

#endif
