#pragma once
// Waiting for something asynchronous to happen, without sleeps as assertions.

#include <chrono>
#include <thread>

namespace whisperer::test {

/// Polls `condition` every 10 ms until it holds (true) or `timeout` passes (false).
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout = std::chrono::seconds(10))
{
    auto until = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > until)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
}

} // namespace whisperer::test
