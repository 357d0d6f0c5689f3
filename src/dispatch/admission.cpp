#include "dispatch/admission.hpp"

#include "detail/json_depth.hpp"

#include <whisperer/envelope.hpp>

#include <boost/asio/steady_timer.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <iterator>

namespace whisperer::dispatch {

namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

/// The hooks of `hook_ids` that no delivery of `handed_off` is for: of an event's hooks, those
/// a claim must send; of its reserved slots, those the store did not use.
std::vector<std::int64_t> hooks_not_handed_off(std::vector<std::int64_t> hook_ids,
                                               const std::vector<ClaimedDelivery>& handed_off)
{
    std::vector<std::int64_t> taken;
    taken.reserve(handed_off.size());
    for (const ClaimedDelivery& d : handed_off)
        taken.push_back(d.hook.id);
    std::sort(hook_ids.begin(), hook_ids.end());
    std::sort(taken.begin(), taken.end());
    std::vector<std::int64_t> left;
    std::set_difference(hook_ids.begin(), hook_ids.end(), taken.begin(), taken.end(), std::back_inserter(left));
    return left;
}

} // namespace

Admission::Admission(SubscriptionStore& store, StoreRunner& runner, boost::asio::any_io_executor host,
                     const Registry& registry, const DispatcherOptions& options, detail::DeliverySlots& slots,
                     Counters& count, std::string worker, Logger log, KeepAlive keep_alive, AdmissionSinks sinks)
    : store_(store), host_(std::move(host)), registry_(registry), options_(options), slots_(slots), count_(count),
      worker_(std::move(worker)), log_(std::move(log)), keep_alive_(std::move(keep_alive)), sinks_(std::move(sinks)),
      commits_(store, [&runner](std::function<void()> job) { runner.post(std::move(job)); }),
      journal_prefix_(store.journal_prefix())
{
    if (options_.journal && !journal_prefix_.empty())
        journal_ = std::make_unique<detail::EventJournal>(journal_prefix_, worker_);
}

NewEvent Admission::make_event(json::value data, std::string_view event_type, const DeliverOptions& opts,
                               TimePoint now) const
{
    const EventBase& event = registry_.get(event_type);
    if (detail::nested_deeper_than(data, options_.max_data_depth))
        throw ValidationError("data", "data may nest arrays and objects at most " +
                                          std::to_string(options_.max_data_depth) + " levels deep.");
    NewEvent ev;
    ev.uuid = new_event_uuid();
    ev.event_type = std::string(event_type);
    json::object envelope = make_envelope(event_type, ev.uuid, std::move(data), options_.data_key);
    event.customize_payload(envelope);
    ev.body = json::serialize(envelope);
    if (ev.body.size() > options_.max_payload_bytes)
        throw Error(errc::payload_too_large, "The event's payload is " + std::to_string(ev.body.size()) +
                                                 " bytes; the limit is " +
                                                 std::to_string(options_.max_payload_bytes) + ".");
    ev.object_ref = opts.object_ref;
    if (!opts.idempotency_key.empty())
        ev.idempotency_key = opts.idempotency_key;
    ev.config_filter = opts.config_filter;
    ev.owners = opts.owners;
    ev.created = now;
    ev.due = now;
    return ev;
}

bool Admission::may_journal(const NewEvent& event, const DeliverOptions& opts) const
{
    return journal_ && !opts.sync && !opts.wait_stored && !event.idempotency_key &&
           unstored_.load(std::memory_order_relaxed) < options_.max_unstored_events;
}

DeliverResult Admission::accept(NewEvent event)
{
    event.hook_ids = store_.subscriber_ids(event.event_type, event.config_filter, event.owners);
    DeliverResult result;
    result.event_uuid = event.uuid;
    result.hook_count = event.hook_ids->size();
    // Deliveries that fit in this dispatcher's slots are written leased to it and sent as soon
    // as they are stored, without a claim.
    if (handing_off_ && !event.hook_ids->empty()) {
        event.handoff_hook_ids = slots_.reserve(*event.hook_ids);
        if (!event.handoff_hook_ids.empty()) {
            event.handoff_worker = worker_;
            event.handoff_lease = options_.lease;
        }
    }
    detail::EventJournal::Ticket ticket;
    try {
        ticket = journal_->append(event);
    } catch (...) {
        slots_.unreserve(event.handoff_hook_ids);
        throw;
    }
    count_.queued += result.hook_count;
    ++unstored_;
    store_accepted(std::move(event), std::move(ticket));
    return result;
}

void Admission::store_accepted(NewEvent accepted, detail::EventJournal::Ticket ticket)
{
    commits_.commit_async(std::move(accepted), [this, life = keep_alive_(), ticket = std::move(ticket)](
                                                   std::exception_ptr error, EnqueuedEvent written,
                                                   NewEvent event) mutable {
        if (!error) {
            --unstored_;
            const bool all_handed_off = written.handed_off.size() == written.delivery_ids.size();
            std::vector<std::int64_t> claim_hooks;
            if (!all_handed_off && event.hook_ids)
                claim_hooks = hooks_not_handed_off(*event.hook_ids, written.handed_off);
            take_handoff(event.handoff_hook_ids, std::move(written.handed_off), std::move(ticket));
            if (written.delivery_ids.empty() || all_handed_off)
                return;
            if (event.hook_ids)
                sinks_.new_rows(std::move(claim_hooks));
            else
                sinks_.new_rows(std::nullopt);
            return;
        }
        slots_.unreserve(std::exchange(event.handoff_hook_ids, {}));
        if (journal_closed_)
            return; // Stopped: the journal file keeps the event for the next start.
        warn_store_failure(error, event.uuid);
        // It may have been stored after all (a failure reported after the commit).
        event.replayed = true;
        auto timer = std::make_shared<boost::asio::steady_timer>(host_, 250ms);
        timer->async_wait([this, life, timer, event = std::move(event), ticket = std::move(ticket)](
                              boost::system::error_code) mutable {
            store_accepted(std::move(event), std::move(ticket));
        });
    });
}

void Admission::take_handoff(const std::vector<std::int64_t>& reserved, std::vector<ClaimedDelivery> handed_off,
                             detail::EventJournal::Ticket ticket)
{
    if (reserved.empty()) {
        journal_->settle(ticket);
        return;
    }
    slots_.unreserve(hooks_not_handed_off(reserved, handed_off));
    if (handed_off.empty()) {
        journal_->settle(ticket);
        return;
    }
    sinks_.hand_off(std::move(handed_off), [this, ticket = std::move(ticket)] { journal_->settle(ticket); });
}

void Admission::warn_store_failure(const std::exception_ptr& error, const std::string& uuid)
{
    const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
    std::int64_t last = journal_warned_at_.load();
    if (last == now || !journal_warned_at_.compare_exchange_strong(last, now))
        return;
    std::string reason = "unknown error";
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        reason = e.what();
    } catch (...) {
    }
    log_(LogLevel::warning, "journaled events cannot be stored yet (event " + uuid + "): " + reason +
                                "; trying again every 250 ms");
}

void Admission::replay_journals()
{
    if (journal_prefix_.empty())
        return;
    try {
        const std::size_t replayed =
            detail::EventJournal::replay(journal_prefix_, [this](std::span<const NewEvent> events) {
                for (const EnqueuedEvent& written : store_.enqueue_events(events))
                    count_.queued += written.delivery_ids.size();
            });
        if (replayed > 0)
            log_(LogLevel::info, "read " + std::to_string(replayed) +
                                     " events from the journal of an earlier run into the store"
                                     " (those it had stored already were skipped)");
    } catch (const std::exception& e) {
        log_(LogLevel::error, std::string("cannot store the events of an earlier run's journal yet: ") + e.what());
    }
}

bool Admission::wait_stored(std::chrono::milliseconds timeout)
{
    return !journal_ || journal_->wait_settled(timeout);
}

void Admission::close(std::chrono::milliseconds deadline)
{
    if (!journal_)
        return;
    if (journal_->wait_settled(deadline)) {
        journal_->close_settled();
        return;
    }
    journal_closed_ = true;
    log_(LogLevel::warning, "stop: some accepted events are not in the store yet; "
                            "they stay in the journal for the next start");
}

} // namespace whisperer::dispatch
