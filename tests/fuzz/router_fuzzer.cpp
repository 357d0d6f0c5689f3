// Fuzzes HooksRouter with whole HTTP/1.1 requests (method, target, headers, body), the head read
// by Beast's request parser as whisperer::http::Server reads it. Each input runs against a fresh
// in-memory SQLite store holding tokens for two owners, an admin and a publisher, three hooks and
// two deliveries (one failed, with its attempt), so that authentication, routing, query and JSON
// parsing, hook validation, store writes, publishing and retries all run. The hooks point at
// loopback and private addresses, which the default SSRF guard refuses: a retry never reaches
// the network.
//
// Besides sanitizer reports, an input fails when the router answers it other than exactly once
// with a well-formed response, or with a 5xx: nothing a client sends may become a server error.

#include <whisperer/api_token.hpp>
#include <whisperer/store_decorator.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/hooks_router.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace {

using namespace whisperer;
namespace bhttp = boost::beast::http;
namespace json = boost::json;

// Fixed keys, so that inputs (and the dictionary) can name them: `Authorization: Token alice-key`.
constexpr std::string_view alice_key = "alice-key";
constexpr std::string_view bob_key = "bob-key";
constexpr std::string_view admin_key = "admin-key";
constexpr std::string_view publisher_key = "publisher-key";

// The server's default limits (http/server.hpp).
constexpr std::uint32_t header_limit = 16 * 1024;
constexpr std::uint64_t body_limit = 1024 * 1024;

const Registry& event_registry()
{
    static const Registry registry = [] {
        Registry r;
        r.register_json_event("package-created");
        r.register_json_event("order-shipped");
        return r;
    }();
    return registry;
}

Hook seed_hook(std::string owner, std::string target_url, std::string event_type)
{
    Hook hook;
    hook.owner = std::move(owner);
    hook.target_url = std::move(target_url);
    hook.event_type = std::move(event_type);
    hook.retry_countdown_config = {{"choice", "linear"}, {"kwargs", {{"base", 60}, {"limit", 600}}}};
    return hook;
}

/// The store of one input, made afresh for each.
struct FreshStore {
    std::unique_ptr<SqliteStore> store = std::make_unique<SqliteStore>(":memory:");
};

/// Forwards to a store made afresh for each input, so that no input depends on another
/// (libFuzzer replays a crash from its input alone), while the dispatcher, whose HTTP client
/// loads the system's CA certificates (too slow to repeat for every input), lives as long as the
/// process.
class InputStore final : private FreshStore, public StoreDecorator {
public:
    InputStore() : StoreDecorator(*store) {}

    void reset()
    {
        store = std::make_unique<SqliteStore>(":memory:");
        wrap(*store);
    }

    // No journal, so that events are in the store when a call returns.
    std::string journal_prefix() const override { return {}; }
};

/// The router and what it needs, made once; `reset` gives it a fresh store for each input.
struct Service {
    boost::asio::io_context io;
    InputStore store;
    Dispatcher dispatcher{io.get_executor(), event_registry(), store};
    http::TokenAuthenticator authenticator{store};
    http::HooksRouter router{event_registry(), store, dispatcher, authenticator};

    Service() { dispatcher.register_callback("audit", [](const AttemptReport&) {}); }

    void reset()
    {
        store.reset();
        store.add_token(sha256_hex(alice_key), ApiToken{"alice"});
        store.add_token(sha256_hex(bob_key), ApiToken{"bob"});
        store.add_token(sha256_hex(admin_key), ApiToken{"admin", true});
        store.add_token(sha256_hex(publisher_key), ApiToken{"publisher", false, true});

        Hook alice = seed_hook("alice", "http://127.0.0.1:9/hooks", "package-created");
        alice.secret_key = "whsec_c2VlZC1zZWNyZXQtb2YtdGhlLWZ1enplcg==";
        alice.additional_headers = {{"X-Tenant", "acme"}};
        alice.config = {{"region", "eu"}};
        store.create_hook(alice); // 1
        Hook bob = seed_hook("bob", "https://[::1]:8443/in", "order-shipped");
        bob.config = {{"auth", {{"auth_type", "basic"}, {"username", "bob"}, {"password", "pw"}}}};
        store.create_hook(bob); // 2
        store.deactivate_hook(store.create_hook(seed_hook("alice", "http://10.1.2.3/old", "order-shipped")).id);

        dispatcher.deliver_data(json::object{{"package", "whisperer"}}, "package-created", {}); // delivery 1
        dispatcher.deliver_data(json::object{{"order", 7}}, "order-shipped", {});               // delivery 2
        fail_first_attempt(2);
    }

    /// Records a refused first attempt of the delivery as its last.
    void fail_first_attempt(std::int64_t delivery_id)
    {
        ClaimRequest claim;
        claim.worker = "seed";
        claim.now = Clock::now();
        std::vector<AttemptRecord> records;
        for (const ClaimedDelivery& d : store.claim_due(claim)) {
            AttemptRecord record;
            record.delivery_id = d.delivery_id;
            record.worker = claim.worker;
            record.attempt.number = 1;
            record.attempt.started_at = claim.now;
            if (d.delivery_id == delivery_id) {
                record.attempt.failure = FailureClass::blocked;
                record.attempt.error = "address ::1 of ::1 refused by the address filter";
                record.verdict = AttemptVerdict::failed;
            } else {
                // Not attempted: back to the outbox as it was.
                store.release_leases(claim.worker, std::span(&record.delivery_id, 1));
                continue;
            }
            records.push_back(std::move(record));
        }
        store.record_attempts(records);
    }
};

[[noreturn]] void fail(const http::Request& request, const std::string& why)
{
    std::fprintf(stderr, "router_fuzzer: %s\n  request: %s %s\n", why.c_str(),
                 std::string(request.method_string()).c_str(), std::string(request.target()).c_str());
    std::abort();
}

void check(const http::Request& request, const http::Response& response)
{
    const unsigned status = response.result_int();
    if (status < 200 || status >= 500)
        fail(request, "answered " + std::to_string(status) + ": " + response.body());
    if (status == 204) {
        if (!response.body().empty())
            fail(request, "a 204 with a body");
        return;
    }
    if (response[bhttp::field::content_type] != "application/json")
        fail(request, "a response that is not JSON");
    boost::system::error_code ec;
    const json::value body = json::parse(response.body(), ec);
    if (ec || !body.is_object())
        fail(request, "a body that is no JSON object: " + response.body());
    if (status >= 400 && !(body.as_object().contains("code") && body.as_object().contains("en")))
        fail(request, "an error without code and message: " + response.body());
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    // The head goes through Beast's parser; whatever follows it is the body, whatever
    // Content-Length says, so that mutations of the body are not lost to a length that no longer
    // matches (the server's parser would have read exactly that body).
    bhttp::request_parser<bhttp::empty_body> parser;
    parser.header_limit(header_limit);
    parser.body_limit(body_limit);
    boost::system::error_code ec;
    auto input = boost::asio::const_buffer(data, size);
    while (input.size() > 0 && !parser.is_header_done()) {
        const std::size_t used = parser.put(input, ec);
        if (ec || used == 0)
            break;
        input += used;
    }
    if (ec || !parser.is_header_done() || input.size() > body_limit)
        return 0;
    http::Request request{parser.release().base()};
    request.body().assign(static_cast<const char*>(input.data()), input.size());
    request.prepare_payload();

    static Service service;
    service.reset();
    std::optional<http::Response> response;
    int answers = 0;
    service.router.handle(request, [&](http::Response r) {
        ++answers;
        response = std::move(r);
    });
    service.io.restart();
    service.io.run(); // Publishing and retries answer on the dispatcher's executor.
    if (answers != 1)
        fail(request, "answered " + std::to_string(answers) + " times");
    check(request, *response);
    return 0;
}
