// The defaults of DispatcherOptions and SqliteOptions, as the docs state them (RELIABILITY.md's
// durability settings and isolation, SECURITY.md's limits, ARCHITECTURE.md's claims): a changed
// default fails here until the docs are changed with it.

#include "catch.hpp"

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/sqlite_store.hpp>

using namespace whisperer;
using namespace std::chrono_literals;

TEST_CASE("DispatcherOptions has the defaults the docs state", "[options]")
{
    const DispatcherOptions o;
    // docs/SECURITY.md, limits
    CHECK(o.connect_timeout == 10s);
    CHECK(o.request_timeout == 10s);
    CHECK(o.response_body_limit == 20 * 1024);
    CHECK(o.max_payload_bytes == 256 * 1024);
    CHECK(o.max_data_depth == 64);
    // docs/RELIABILITY.md, durability settings, retries, isolation and endpoint health
    CHECK(o.journal);
    CHECK(o.max_unstored_events == 16384);
    CHECK(o.lease == 10s);
    CHECK(o.max_in_flight == 1024);
    CHECK(o.record_window == 2ms);
    CHECK(o.record_batch == 128);
    CHECK(o.retention == std::chrono::hours(12 * 7 * 24));
    CHECK(o.max_attempts == 18);
    CHECK(o.max_connections_per_origin == 8);
    CHECK(o.disable_after == std::chrono::hours(5 * 24));
    CHECK(o.disable_after_failures == 10);
    // docs/ARCHITECTURE.md, claims and the store threads; docs/PERFORMANCE.md, claim batches
    CHECK(o.claim_min_share == 4);
    CHECK(o.claim_batch == 1024);
    CHECK(o.store_threads == 1);
    CHECK(o.batch_window == 1ms);
    CHECK(o.idle_poll == 5s);
    CHECK(o.max_retry_after == 24h);
    CHECK(o.max_in_flight_per_owner == 0); // Zero: half of max_in_flight.
    CHECK(o.max_in_flight_per_origin == 0);
    // README.md: the seed page's "data" key
    CHECK(o.data_key == DataKey::data);
    // An empty filter means AddressPolicy{}: public unicast addresses only (docs/SECURITY.md).
    CHECK_FALSE(o.address_filter);
}

TEST_CASE("SqliteOptions has the defaults the docs state", "[options]")
{
    const SqliteOptions o;
    // docs/RELIABILITY.md, durability settings
    CHECK(o.durability == SqliteDurability::normal);
    CHECK(o.page_size == 1024);
    CHECK(o.busy_timeout == 5s);
    // docs/SECURITY.md, limits
    CHECK(o.response_body_limit == 20 * 1024);
    CHECK(o.max_hooks_per_owner == 1000);
}
