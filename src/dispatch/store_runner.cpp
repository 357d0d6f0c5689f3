#include "dispatch/store_runner.hpp"

#include <algorithm>

namespace whisperer::dispatch {

StoreRunner::StoreRunner(std::size_t threads) : pool_(std::max<std::size_t>(1, threads)) {}

StoreRunner::~StoreRunner()
{
    join();
}

bool StoreRunner::wait_idle(std::chrono::milliseconds timeout)
{
    std::unique_lock lock{mutex_};
    return idle_.wait_for(lock, timeout, [&] { return pending_ == 0; });
}

void StoreRunner::join()
{
    pool_.join();
}

void StoreRunner::done()
{
    {
        std::lock_guard lock{mutex_};
        --pending_;
    }
    idle_.notify_all();
}

} // namespace whisperer::dispatch
