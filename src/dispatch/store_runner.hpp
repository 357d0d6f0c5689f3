// The dispatcher's own threads for store calls.
#ifndef WHISPERER_SRC_DISPATCH_STORE_RUNNER_HPP
#define WHISPERER_SRC_DISPATCH_STORE_RUNNER_HPP

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>

namespace whisperer::dispatch {

/// Runs the dispatcher's store calls on a pool of its own (one thread, or a few for a store
/// across the network), so that the host's executor never waits on the store. Counts the jobs
/// queued or running, so that a stopping dispatcher can wait until none is left. A job should
/// catch its own errors (one that escapes is dropped). Thread-safe.
class StoreRunner {
public:
    explicit StoreRunner(std::size_t threads);
    ~StoreRunner();
    StoreRunner(const StoreRunner&) = delete;
    StoreRunner& operator=(const StoreRunner&) = delete;

    /// Queues `job`.
    template <class Job>
    void post(Job job)
    {
        {
            std::lock_guard lock{mutex_};
            ++pending_;
        }
        boost::asio::post(pool_, [this, job = std::move(job)]() mutable {
            try {
                job();
            } catch (...) {
            }
            done();
        });
    }

    /// Waits until no job is queued or running, or `timeout` passed; true when none is.
    bool wait_idle(std::chrono::milliseconds timeout);

    /// Lets the queued jobs finish and ends the threads. Must not run on one of them.
    void join();

private:
    void done();

    boost::asio::thread_pool pool_;
    std::mutex mutex_;
    std::condition_variable idle_;
    std::size_t pending_ = 0;
};

} // namespace whisperer::dispatch

#endif
