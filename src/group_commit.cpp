#include "detail/group_commit.hpp"

#include <whisperer/error.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

namespace whisperer::detail {

GroupCommit::GroupCommit(SubscriptionStore& store, Spawn spawn, std::size_t max_batch,
                         std::size_t max_batch_deliveries)
    : store_(store), spawn_(std::move(spawn)), max_batch_(max_batch), max_batch_deliveries_(max_batch_deliveries)
{
}

std::vector<GroupCommit::Request*> GroupCommit::next_batch()
{
    // An event whose hooks are chosen at the write counts as one delivery: its count is unknown.
    auto deliveries_of = [](const Request* r) {
        return r->event.hook_ids ? std::max<std::size_t>(1, r->event.hook_ids->size()) : std::size_t{1};
    };
    std::size_t taken = 0;
    std::size_t deliveries = 0;
    while (taken < queue_.size() && taken < max_batch_) {
        const std::size_t more = deliveries_of(queue_[taken]);
        if (taken > 0 && deliveries + more > max_batch_deliveries_)
            break;
        deliveries += more;
        ++taken;
    }
    std::vector<Request*> batch;
    if (taken == queue_.size()) {
        batch.swap(queue_);
    } else {
        batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(taken));
    }
    return batch;
}

EnqueuedEvent GroupCommit::commit(NewEvent event)
{
    Request request{std::move(event), {}, false, nullptr, {}};
    std::unique_lock lock(mutex_);
    queue_.push_back(&request);
    if (!leading_)
        lead(lock);
    committed_.wait(lock, [&] { return request.finished; });
    if (request.error)
        std::rethrow_exception(request.error);
    return std::move(request.result);
}

void GroupCommit::commit_async(NewEvent event, Completion done)
{
    auto* request = new Request{std::move(event), std::move(done), false, nullptr, {}};
    std::unique_lock lock(mutex_);
    queue_.push_back(request);
    if (leading_ || spawn_pending_)
        return; // A leader is at work or on its way and will take this request too.
    spawn_pending_ = true;
    lock.unlock();
    spawn_([this] {
        std::unique_lock inner(mutex_);
        spawn_pending_ = false;
        if (!leading_)
            lead(inner);
    });
}

void GroupCommit::lead(std::unique_lock<std::mutex>& lock)
{
    leading_ = true;
    while (!queue_.empty()) {
        std::vector<Request*> batch = next_batch();
        lock.unlock();

        std::vector<NewEvent> events;
        events.reserve(batch.size());
        for (Request* r : batch)
            events.push_back(std::move(r->event));
        // A store failure reaches each caller as an exception of its own, made from its own copy
        // of the message: callers on several threads never share an exception object, nor the
        // message buffer that copies of one `std::runtime_error` share.
        std::optional<std::string> store_error;
        std::exception_ptr other_error;
        std::vector<EnqueuedEvent> results;
        try {
            results = store_.enqueue_events(events);
        } catch (const StoreError& e) {
            store_error.emplace(e.what());
        } catch (...) {
            other_error = std::current_exception();
        }
        const bool failed = store_error || other_error;
        auto error_for_one = [&] {
            return store_error ? std::make_exception_ptr(StoreError(*store_error)) : other_error;
        };
        // Waiting callers are handed their results under the lock; async ones are completed
        // (and freed) outside it, since their completions may take time.
        std::vector<std::unique_ptr<Request>> finished_async;
        std::vector<EnqueuedEvent> async_results;
        std::vector<NewEvent> async_events;
        lock.lock();
        for (std::size_t i = 0; i < batch.size(); ++i) {
            Request* r = batch[i];
            EnqueuedEvent result = failed ? EnqueuedEvent{} : std::move(results[i]);
            if (r->done) {
                finished_async.emplace_back(r);
                async_results.push_back(std::move(result));
                async_events.push_back(std::move(events[i]));
                continue;
            }
            r->error = error_for_one();
            r->result = std::move(result);
            r->finished = true;
        }
        committed_.notify_all();
        lock.unlock();
        for (std::size_t i = 0; i < finished_async.size(); ++i)
            finished_async[i]->done(error_for_one(), std::move(async_results[i]), std::move(async_events[i]));
        lock.lock();
    }
    leading_ = false;
}

} // namespace whisperer::detail
