#ifndef WHISPERER_DISPATCHER_HPP
#define WHISPERER_DISPATCHER_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/dispatcher_options.hpp>
#include <whisperer/error.hpp>
#include <whisperer/hook_callback.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace whisperer {

/// Options of one `deliver_event` call.
struct DeliverOptions {
    /// Only hooks whose `config[k] == v` for every key receive the event. Subscribers write their
    /// hook's `config`, so this is no boundary between tenants: use `owners` for that.
    boost::json::object config_filter;
    /// Only hooks of these owners receive the event; empty: hooks of every owner. The owner is
    /// set by the host's authentication, never by a subscriber, so this keeps tenants apart.
    std::vector<std::string> owners;
    /// Re-send the stored deliveries of this event instead of making a new one (the instance is
    /// ignored). Fails with `EventAlreadyDelivered` or `EventStillRetrying` unless `force`.
    std::string event_uuid;
    bool force = false;
    /// A second event with the same key is not created; its first uuid is returned.
    std::string idempotency_key;
    /// Deliver now, in the calling thread, and return each hook's attempt (the original's
    /// `async_=False`). Failed attempts are retried later as usual. Never call this on the
    /// dispatcher's own executor thread.
    bool sync = false;
    /// What the event is about (host-defined, e.g. "package:61"), kept with the deliveries.
    std::string object_ref;
    /// Return only once the event is in the store, so that reads through the store show it at
    /// once; otherwise an event accepted into the journal shows there a moment later.
    bool wait_stored = false;
};

/// One hook's attempt in a synchronous delivery.
struct HookResult {
    std::int64_t hook_id = 0;
    std::int64_t delivery_id = 0;
    Attempt attempt;
};

/// What `deliver_event` did.
struct DeliverResult {
    std::string event_uuid;        ///< The event's uuid (the first one's for a duplicate key).
    std::size_t hook_count = 0;    ///< Deliveries created or re-sent.
    bool duplicate = false;        ///< The idempotency key had been used: nothing new was created.
    std::vector<HookResult> results; ///< Filled in sync mode.
};

/// Delivers events to the hooks that subscribe to them: durably, signed, retried, logged.
///
/// `deliver_event` chooses the matching hooks, makes the event durable and returns; it never waits
/// on the network. Durable means appended to the dispatcher's journal (see
/// `DispatcherOptions::journal`), from where the event with one delivery and one outbox row per
/// hook reaches the store moments later, or, without a journal, committed to the store
/// (concurrent callers share transactions). Workers on the given executor claim due outbox rows in batches
/// under a short lease, POST them over pooled keep-alive connections, record the outcomes in
/// batches and schedule retries by each hook's countdown. After a crash, rows whose lease ran out
/// are delivered again by the next dispatcher on the same store: delivery is at least once.
///
/// Thread safety: every member function may be called from any thread. `start` must be called
/// for workers to run; `stop` (also run by the destructor) must not be called on the executor's
/// own threads. The registry, the store and the executor's context must outlive the dispatcher.
class Dispatcher {
public:
    Dispatcher(boost::asio::any_io_executor executor, const Registry& registry, SubscriptionStore& store,
               DispatcherOptions options = {});
    ~Dispatcher();
    Dispatcher(const Dispatcher&) = delete;
    Dispatcher& operator=(const Dispatcher&) = delete;

    /// Starts the workers: deliveries already due (and those whose lease ran out) go out at once.
    void start();

    /// Stops claiming, lets requests in flight finish until `deadline` has passed, records their
    /// outcomes and releases every other lease; everything not delivered stays in the store for
    /// the next start. Blocks the calling thread; idempotent.
    void stop(std::chrono::milliseconds deadline = std::chrono::seconds(10));

    /// Delivers `instance` as an event of `event_type` to every matching active hook.
    ///
    /// `instance` is a `boost::json::value` or `boost::json::object` (delivered unchanged), or an
    /// object of the type the event class was registered with (serialised by it). Throws
    /// `UnknownEventType`, `ImproperlyConfigured` (wrong instance type), `Error` with
    /// `errc::payload_too_large` (envelope over `max_payload_bytes`), `ValidationError` (data
    /// nested deeper than `max_data_depth`), `StoreError` (nothing was written), and for re-sends
    /// `WebhookEventDoesNotExist`, `EventAlreadyDelivered`, `EventStillRetrying`.
    template <class T>
    DeliverResult deliver_event(const T& instance, std::string_view event_type, const DeliverOptions& options = {})
    {
        if (!options.event_uuid.empty())
            return deliver_data(boost::json::value(), event_type, options);
        return deliver_data(serialize(instance, event_type), event_type, options);
    }

    /// Like `deliver_event`, but returns at once and completes `token` with
    /// `void(boost::system::error_code, DeliverResult)` once the event is durable. Sync mode is not
    /// available here. Serialisation happens in the caller.
    template <class T, class CompletionToken>
    auto async_deliver_event(const T& instance, std::string_view event_type, DeliverOptions options,
                             CompletionToken&& token);

    /// Re-sends one delivery now and reports the attempt (the router's retry route).
    /// Throws `WebhookEventDoesNotExist`, `EventAlreadyDelivered` (unless `force`),
    /// `EventStillRetrying` (pending with attempts made, unless `force`). Blocks the calling
    /// thread on the request: never call it on the executor's threads; use `async_retry_delivery`.
    HookResult retry_delivery(std::int64_t delivery_id, bool force = false);

    /// `retry_delivery` without blocking: checks run at once (and throw), the attempt runs on the
    /// executor and `handler` receives it.
    void async_retry_delivery(std::int64_t delivery_id, bool force, std::function<void(HookResult)> handler);

    /// Waits until every event that `deliver_event` accepted into the journal is in the store
    /// (at once when there is no journal); false when `timeout` passed first.
    bool wait_stored(std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Tells the workers that deliveries became due outside `deliver_event` (a hook was
    /// re-activated, failed deliveries were queued again), so they look now rather than at the
    /// next idle poll. Cheap; any thread.
    void wake();

    /// Registers a callback that hooks may name. Register before creating hooks that use it.
    void register_callback(std::string name, HookCallback callback);

    /// The names of the registered callbacks (for `HookRules::callbacks`).
    const std::set<std::string, std::less<>>& callback_names() const noexcept;

    DispatcherCounters counters() const noexcept;
    const Registry& registry() const noexcept;
    SubscriptionStore& store() noexcept;
    const DispatcherOptions& options() const noexcept;

    /// Serialises `instance` as the data of an event of `event_type` (see `deliver_event`).
    template <class T>
    boost::json::value serialize(const T& instance, std::string_view event_type) const
    {
        if constexpr (std::is_same_v<T, boost::json::value> || std::is_same_v<T, boost::json::object>) {
            registry().get(event_type);
            return boost::json::value(instance);
        } else {
            const EventBase& event = registry().get(event_type);
            if (event.instance_type() != typeid(T))
                throw ImproperlyConfigured("The event class of \"" + std::string(event_type) +
                                           "\" does not serialise instances of this type.");
            return event.serialize_erased(&instance);
        }
    }

    /// `deliver_event` for data already serialised.
    DeliverResult deliver_data(boost::json::value data, std::string_view event_type, const DeliverOptions& options);

    /// `async_deliver_event` for data already serialised; `handler` runs on the executor.
    void async_deliver_data(boost::json::value data, std::string_view event_type, DeliverOptions options,
                            std::function<void(boost::system::error_code, DeliverResult)> handler);

private:
    /// The part of `stop` that ends the workers.
    void stop_workers(std::chrono::milliseconds deadline);

    struct Impl;
    std::shared_ptr<Impl> impl_;
    boost::asio::any_io_executor executor_;
};

/// Makes `dispatcher` the one that `whisperer::deliver_event` uses (nullptr uninstalls it).
/// The host keeps it alive while installed.
void set_default_dispatcher(Dispatcher* dispatcher) noexcept;

/// The installed default dispatcher; throws `Error(errc::no_default_dispatcher)` when none is.
Dispatcher& default_dispatcher();

/// The seed page's `deliver_event(instance, event_type)`: forwards to the default dispatcher.
template <class T>
DeliverResult deliver_event(const T& instance, std::string_view event_type, const DeliverOptions& options = {})
{
    return default_dispatcher().deliver_event(instance, event_type, options);
}

} // namespace whisperer

#include <whisperer/impl/dispatcher.hpp>

#endif
