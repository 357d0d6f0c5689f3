#include <whisperer/dispatcher.hpp>

#include "dispatch/pipeline.hpp"

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <atomic>
#include <future>

namespace whisperer {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

std::string_view to_string(LogLevel level) noexcept
{
    switch (level) {
    case LogLevel::debug: return "debug";
    case LogLevel::info: return "info";
    case LogLevel::warning: return "warning";
    case LogLevel::error: return "error";
    }
    return "info";
}

Dispatcher::Dispatcher(asio::any_io_executor executor, const Registry& registry, SubscriptionStore& store,
                       DispatcherOptions options)
    : impl_(std::make_shared<Impl>(executor, registry, store, std::move(options))), executor_(executor)
{
}

Dispatcher::~Dispatcher()
{
    try {
        stop();
    } catch (...) {
    }
    // The store runner's threads end here, not in a handler of theirs that drops the last reference.
    impl_->runner.join();
}

void Dispatcher::start()
{
    impl_->admission.replay_journals();
    impl_->running_for_callers = true;
    impl_->admission.set_handing_off(true);
    asio::post(impl_->strand, [self = impl_] {
        if (self->running)
            return;
        self->running = true;
        self->stopping = false;
        self->shutting_down = false;
        self->log(LogLevel::info, "dispatcher " + self->worker + " started");
        self->outbox_unseen = true;
        self->maintenance.start();
        self->pump();
    });
}

void Dispatcher::stop(std::chrono::milliseconds deadline)
{
    if (impl_->running_for_callers.exchange(false)) {
        impl_->admission.set_handing_off(false);
        stop_workers(deadline);
    }
    // Started or not: what was accepted goes to the store before the dispatcher goes.
    impl_->admission.close(deadline);
    // Store calls the stages queued (lease releases and renewals, housekeeping, health checks):
    // the store must outlive them.
    if (!impl_->runner.wait_idle(deadline))
        impl_->log(LogLevel::warning, "stop: store calls still running after the deadline");
}

void Dispatcher::stop_workers(std::chrono::milliseconds deadline)
{
    auto done = std::make_shared<std::promise<void>>();
    auto future = done->get_future();
    asio::post(impl_->strand, [self = impl_, deadline, done] {
        if (!self->running) {
            done->set_value();
            return;
        }
        self->begin_stop(deadline, done);
    });
    // If the executor no longer runs, nothing more happens anyway: leases run out and the next
    // dispatcher takes over.
    if (future.wait_for(deadline + 5s) != std::future_status::ready)
        impl_->log(LogLevel::warning, "stop: the executor did not finish in time");
}

bool Dispatcher::wait_stored(std::chrono::milliseconds timeout)
{
    return impl_->admission.wait_stored(timeout);
}

void Dispatcher::wake()
{
    impl_->wake();
}

void Dispatcher::register_callback(std::string name, HookCallback callback)
{
    impl_->callbacks.add(std::move(name), std::move(callback));
}

const std::set<std::string, std::less<>>& Dispatcher::callback_names() const noexcept
{
    return impl_->callbacks.names();
}

DispatcherCounters Dispatcher::counters() const noexcept
{
    const auto& c = impl_->count;
    return {c.queued.load(),  c.in_flight.load(), c.delivered.load(),
            c.failed.load(),  c.retried.load(),   c.handed_off.load()};
}

const Registry& Dispatcher::registry() const noexcept { return impl_->registry; }
SubscriptionStore& Dispatcher::store() noexcept { return impl_->store; }
const DispatcherOptions& Dispatcher::options() const noexcept { return impl_->options; }

namespace {

/// Checks that `delivery` may be sent again now.
void check_resendable(const Delivery& delivery, bool force)
{
    if (force)
        return;
    if (delivery.state == DeliveryState::delivered)
        throw EventAlreadyDelivered("Event " + delivery.event_uuid + " is already delivered to hook " +
                                    std::to_string(delivery.hook_id) + ".");
    if (delivery.state == DeliveryState::pending && delivery.attempt_count > 0)
        throw EventStillRetrying("Event " + delivery.event_uuid + " is still in retry process for hook " +
                                 std::to_string(delivery.hook_id) + ".");
}

} // namespace

DeliverResult Dispatcher::deliver_data(json::value data, std::string_view event_type, const DeliverOptions& options)
{
    Impl& impl = *impl_;
    DeliverResult result;
    TimePoint now = Clock::now();

    if (!options.event_uuid.empty()) {
        auto deliveries = impl.store.deliveries_of_event(options.event_uuid);
        if (deliveries.empty())
            throw WebhookEventDoesNotExist("Event " + options.event_uuid + " does not exist.");
        for (const Delivery& d : deliveries)
            check_resendable(d, options.force);
        result.event_uuid = options.event_uuid;
        result.hook_count = deliveries.size();
        TimePoint due = options.sync ? now + impl.sync.hold() : now;
        for (const Delivery& d : deliveries)
            impl.store.requeue(d.id, due);
        if (options.sync) {
            std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
            for (const Delivery& d : deliveries)
                loaded.push_back(impl.sync.load(d.id));
            result.results = impl.sync.attempt_now(loaded, AttemptTrigger::manual);
        }
        impl.wake();
        return result;
    }

    NewEvent ev = impl.admission.make_event(std::move(data), event_type, options, now);
    if (impl.admission.may_journal(ev, options))
        return impl.admission.accept(std::move(ev));
    if (options.sync)
        ev.due = now + impl.sync.hold();

    EnqueuedEvent written = impl.admission.commits().commit(std::move(ev));
    result.event_uuid = written.uuid;
    result.duplicate = written.duplicate;
    result.hook_count = written.delivery_ids.size();
    impl.count.queued += written.delivery_ids.size();
    if (written.delivery_ids.empty())
        return result;
    if (options.sync) {
        std::vector<std::shared_ptr<const ClaimedDelivery>> loaded;
        for (std::int64_t id : written.delivery_ids)
            loaded.push_back(impl.sync.load(id));
        result.results = impl.sync.attempt_now(loaded, AttemptTrigger::scheduled);
        impl.wake(); // Failed ones are due again by their countdown.
        return result;
    }
    impl.wake();
    return result;
}

void Dispatcher::async_deliver_data(json::value data, std::string_view event_type, DeliverOptions options,
                                    std::function<void(boost::system::error_code, DeliverResult)> handler)
{
    auto complete_with_error = [&](const Error& e) {
        asio::post(impl_->executor, [handler, ec = boost::system::error_code(e.error_code())] {
            handler(ec, DeliverResult{});
        });
    };
    if (options.sync || !options.event_uuid.empty()) {
        // Re-sends and sync attempts touch the store and the network: run them on the executor.
        asio::post(impl_->executor, [this, data = std::move(data), type = std::string(event_type),
                                     options = std::move(options), handler = std::move(handler)]() mutable {
            options.sync = false;
            try {
                handler({}, deliver_data(std::move(data), type, options));
            } catch (const Error& e) {
                handler(boost::system::error_code(e.error_code()), DeliverResult{});
            }
        });
        return;
    }
    NewEvent ev;
    try {
        ev = impl_->admission.make_event(std::move(data), event_type, options, Clock::now());
        if (impl_->admission.may_journal(ev, options)) {
            asio::post(impl_->executor, [handler = std::move(handler), result = impl_->admission.accept(std::move(ev))]() mutable {
                handler({}, std::move(result));
            });
            return;
        }
    } catch (const Error& e) {
        complete_with_error(e);
        return;
    }
    // The commit runs on the store's threads: until it completes, the executor counts it as
    // outstanding work, so that its run() does not return before the handler ran.
    auto work = asio::prefer(impl_->executor, asio::execution::outstanding_work.tracked);
    impl_->admission.commits().commit_async(std::move(ev), [self = impl_, handler = std::move(handler),
                                                            work = std::move(work)](
                                                   std::exception_ptr error, EnqueuedEvent written, NewEvent) {
        boost::system::error_code ec;
        DeliverResult result;
        if (error) {
            try {
                std::rethrow_exception(error);
            } catch (const Error& e) {
                ec = e.error_code();
            } catch (...) {
                ec = std::error_code(make_error_code(errc::store_failure));
            }
        } else {
            result.event_uuid = written.uuid;
            result.duplicate = written.duplicate;
            result.hook_count = written.delivery_ids.size();
            self->count.queued += written.delivery_ids.size();
            if (!written.delivery_ids.empty())
                self->wake();
        }
        asio::post(work, [handler, ec, result = std::move(result)]() mutable { handler(ec, std::move(result)); });
    });
}

HookResult Dispatcher::retry_delivery(std::int64_t delivery_id, bool force)
{
    auto delivery = impl_->store.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    check_resendable(*delivery, force);
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync.hold());
    auto results = impl_->sync.attempt_now({impl_->sync.load(delivery_id)}, AttemptTrigger::manual);
    impl_->wake();
    return results.front();
}

void Dispatcher::async_retry_delivery(std::int64_t delivery_id, bool force, std::function<void(HookResult)> handler)
{
    auto delivery = impl_->store.find_delivery(delivery_id);
    if (!delivery)
        throw WebhookEventDoesNotExist("Webhook event " + std::to_string(delivery_id) + " does not exist.");
    check_resendable(*delivery, force);
    impl_->store.requeue(delivery_id, Clock::now() + impl_->sync.hold());
    auto claimed = impl_->sync.load(delivery_id);
    impl_->sender.send(claimed, impl_->client, AttemptTrigger::manual,
                       [self = impl_, claimed, handler = std::move(handler)](Attempt attempt, HttpResult result) {
                           HookResult hook_result{claimed->hook.id, claimed->delivery_id, attempt};
                           asio::post(self->strand, [self, claimed, attempt = std::move(attempt),
                                                     result = std::move(result)]() mutable {
                               self->record(claimed, std::move(attempt), result, false);
                               self->recorder.flush_soon(self->in_flight.empty() || self->stopping);
                           });
                           handler(std::move(hook_result));
                       });
}

// --- the default dispatcher -------------------------------------------------------------------------

namespace {
std::atomic<Dispatcher*> default_instance{nullptr};
}

void set_default_dispatcher(Dispatcher* dispatcher) noexcept
{
    default_instance.store(dispatcher);
}

Dispatcher& default_dispatcher()
{
    Dispatcher* d = default_instance.load();
    if (d == nullptr)
        throw Error(errc::no_default_dispatcher,
                    "whisperer::deliver_event needs a default dispatcher: call whisperer::set_default_dispatcher first.");
    return *d;
}

} // namespace whisperer
