// The dispatcher's counters, kept by its parts and read by `Dispatcher::counters`.
#ifndef WHISPERER_SRC_DISPATCH_COUNTERS_HPP
#define WHISPERER_SRC_DISPATCH_COUNTERS_HPP

#include <atomic>
#include <cstdint>

namespace whisperer::dispatch {

/// See `DispatcherCounters`. Thread-safe.
struct Counters {
    std::atomic<std::uint64_t> queued{0}, in_flight{0}, delivered{0}, failed{0}, retried{0}, handed_off{0};
};

} // namespace whisperer::dispatch

#endif
