#ifndef WHISPERER_DISPATCHER_OPTIONS_HPP
#define WHISPERER_DISPATCHER_OPTIONS_HPP

#include <whisperer/address_policy.hpp>
#include <whisperer/envelope.hpp>
#include <whisperer/hook.hpp>

#include <boost/asio/ip/address.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace whisperer {

class CountdownRegistry;

/// Severity of a log line.
enum class LogLevel { debug, info, warning, error };

std::string_view to_string(LogLevel level) noexcept;

/// Receives whisperer's log lines; route it to the host's logger. Called from whisperer's
/// threads (the executor's, or the caller's); must be thread-safe and must not throw.
using LogHandler = std::function<void(LogLevel, std::string_view message)>;

/// Options of `Dispatcher`; every field has a working default.
struct DispatcherOptions {
    /// Resolving, connecting and the TLS handshake together (the original's connect timeout).
    std::chrono::milliseconds connect_timeout{10000};
    /// The whole request (the original's read timeout): waiting for a pooled connection,
    /// connecting, sending the request and reading the response. Connecting also stops at
    /// `connect_timeout`.
    std::chrono::milliseconds request_timeout{10000};
    /// Response bodies are stored up to this many bytes.
    std::size_t response_body_limit = 20 * 1024;
    /// Deliveries a dispatcher holds at once, over all receivers: requests in flight plus
    /// finished attempts whose outcome is not recorded yet. One hook may hold a quarter of them
    /// (at least 2 x `max_connections_per_origin`).
    std::size_t max_in_flight = 1024;
    /// Requests in flight at once for the hooks of one owner together; zero, the default, means
    /// half of `max_in_flight`. An owner whose receivers stall holds at most these, and leaves
    /// the rest of the slots to the other owners (its own other hooks wait with it).
    std::size_t max_in_flight_per_owner = 0;
    /// Requests in flight at once to one origin (scheme, host, port), whoever's hooks they are
    /// for; zero, the default, means half of `max_in_flight`. A stalled receiver that many
    /// owners send to holds at most these.
    std::size_t max_in_flight_per_origin = 0;
    /// Connections at once to one origin (scheme, host, port) for one owner: a slow receiver
    /// holds at most these per owner, and no connection carries two owners' requests. Requests
    /// that wait for one count against `request_timeout`.
    std::size_t max_connections_per_origin = 8;
    /// Attempts in all before a delivery ends as failed (the original makes 18).
    unsigned max_attempts = 18;
    /// A claimed delivery is leased for this long, renewed while its request is in flight; after a
    /// crash, another dispatcher takes it over once the lease has run out.
    std::chrono::milliseconds lease{10000};
    /// Outbox rows claimed per store round trip.
    std::size_t claim_batch = 1024;
    /// When more hooks have rows waiting than a claim has room for one row each, the hooks
    /// waiting longest take this many each (`ClaimRequest::min_share`) and the others go first
    /// in the next claim. Rows of one hook claimed together are written together: with 1,000
    /// hooks, 4 gave 8 % more deliveries per second than 1 (docs/PERFORMANCE.md).
    std::size_t claim_min_share = 4;
    /// While requests are in flight, new events wait this long to be claimed together with the
    /// ones that follow them; an idle dispatcher claims a new event at once.
    std::chrono::microseconds batch_window{1000};
    /// Finished attempts are recorded together: up to this many in one transaction...
    std::size_t record_batch = 128;
    /// ...or whatever finished within this long of the first, while requests are in flight.
    /// Zero records every completion at once.
    std::chrono::microseconds record_window{2000};
    /// While idle, the outbox is looked at again after this long even without a wake-up (rows
    /// added by other processes sharing the store).
    std::chrono::milliseconds idle_poll{5000};
    /// `Retry-After` on 429 and 503 is honoured up to this long.
    std::chrono::seconds max_retry_after{24 * 3600};
    /// Finished (delivered or failed) deliveries older than this are deleted, in batches, once
    /// an hour; zero keeps them forever. Pending deliveries are never deleted.
    std::chrono::hours retention{12 * 7 * 24};
    /// The serialised envelope may not exceed this many bytes; a larger event is refused with
    /// `errc::payload_too_large` and nothing is written.
    std::size_t max_payload_bytes = 256 * 1024;
    /// An event's data may nest arrays and objects at most this deep (`[]` is one level); deeper
    /// data is refused with `ValidationError` (field "data") and nothing is written.
    std::size_t max_data_depth = 64;
    /// Accept events into a journal file beside the store, when the store keeps one (see
    /// `SubscriptionStore::journal_prefix`; SQLite files with the default durability do):
    /// `deliver_event` then returns after one write() of a few microseconds, just as safe
    /// against a crash of the process as a commit, and the events reach the store moments later,
    /// many to a transaction. Until then the store does not show them; `Dispatcher::wait_stored`
    /// waits for that. A dispatcher's `start` stores what a crashed process left in its journal.
    /// Calls with an idempotency key, re-sends and sync calls always commit before returning.
    bool journal = true;
    /// Journaled events waiting for the store, at most; they are held in memory until stored.
    /// While this many wait, `deliver_event` commits before it returns (sharing the commit with
    /// the callers of the moment) and `async_deliver_event` completes after its commit: callers
    /// that outpace the store are slowed to its pace instead of filling memory.
    std::size_t max_unstored_events = 16384;
    /// Threads of the dispatcher's own that make its store calls (claims, records, lease
    /// renewals, housekeeping, hand-offs), so that the executor passed to the dispatcher never
    /// waits on the store. One suits a store with one connection (SQLite); a store across the
    /// network may use a few. Calls in the caller's thread (`deliver_event`'s journal write and
    /// choice of hooks, its commit without the journal, sync delivery) stay there.
    std::size_t store_threads = 1;
    /// The envelope's data key: "data" (the seed page) or "payload" (the original's code).
    DataKey data_key = DataKey::data;
    /// PEM file of trusted CAs for HTTPS receivers; empty uses the system's store.
    std::string ca_file;
    /// The SSRF guard: decides for each resolved address whether it may be connected to, and
    /// (through the router) which IP-literal target URLs a hook may have. Null, the default,
    /// means `AddressPolicy{}`: public unicast addresses only. Open trusted networks with
    /// `AddressPolicy{}.allow(Cidr::parse("10.1.0.0/16")).as_filter()`; turn the guard off with
    /// `AddressPolicy::unrestricted().as_filter()`.
    AddressFilter address_filter;
    /// Parses hooks' retry countdowns; null uses the built-in choices. Must outlive the dispatcher.
    const CountdownRegistry* countdowns = nullptr;
    /// Where log lines go; null discards them.
    LogHandler log;
    /// Endpoint health: a hook is disabled once none of its attempts has succeeded for this long
    /// and at least `disable_after_failures` attempts have failed since its last success (both
    /// must hold). Any successful attempt resets the clock.
    std::chrono::seconds disable_after{5 * 24 * 3600};
    /// Failed attempts in a row before endpoint health may disable a hook; zero never disables.
    unsigned disable_after_failures = 10;
    /// Called after whisperer disabled a hook (endpoint health, or a 410 Gone) with the hook as
    /// stored then and the recorded reason. Its pending deliveries stay pending; re-activating the
    /// hook resumes them. Runs on the executor; an exception from it is logged. May be null.
    std::function<void(const Hook&, std::string_view reason)> on_hook_disabled;
};

/// Counters of a dispatcher since it was made.
struct DispatcherCounters {
    std::uint64_t queued = 0;    ///< Deliveries written to the outbox by this dispatcher.
    std::uint64_t in_flight = 0; ///< Requests on the way now.
    std::uint64_t delivered = 0; ///< Attempts answered with 2xx.
    std::uint64_t failed = 0;    ///< Deliveries that ran out of attempts.
    std::uint64_t retried = 0;   ///< Failed attempts scheduled for another try.
    /// Deliveries of new events written leased to this dispatcher and sent without a claim.
    std::uint64_t handed_off = 0;
};

} // namespace whisperer

#endif
