#ifndef WHISPERER_HTTP_HOOKS_ROUTER_HPP
#define WHISPERER_HTTP_HOOKS_ROUTER_HPP

#include <whisperer/http/authenticator.hpp>
#include <whisperer/http/message.hpp>
#include <whisperer/hook.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace whisperer {
class Dispatcher;
class Registry;
class SubscriptionStore;
} // namespace whisperer

namespace whisperer::http {

/// Options of `HooksRouter`.
struct RouterOptions {
    /// Where the API is mounted; must start and end with '/'.
    std::string prefix = "/whisperer/";
    /// Page size of listings when the request gives no `limit`.
    std::size_t default_page_size = 50;
    /// The largest `limit` honoured; larger ones are cut to it.
    std::size_t max_page_size = 250;
    /// Larger request bodies are answered 413 without being parsed.
    std::size_t max_body_size = 1024 * 1024;
    /// Request bodies whose arrays and objects nest deeper than this are answered 400 (the body's
    /// own object is level 1).
    std::size_t max_json_depth = 64;
    /// The limits hooks written through the API must keep (URL, secret, headers, config,
    /// names). The router always uses its own registry and the dispatcher's countdowns and
    /// callbacks; a null `address_filter` means the dispatcher's.
    HookRules hook_rules;
    /// Manual retries (`hook_events/{id}/retry/`) of one delivery run at most once per this
    /// interval; one sooner is answered 429 with `Retry-After`. Each stores an attempt.
    std::chrono::seconds retry_interval{10};
    /// Manual retries of one owner's deliveries run at most this many times per
    /// `retry_window`, all deliveries together; more are answered 429 with `Retry-After`.
    std::size_t retries_per_owner = 60;
    std::chrono::seconds retry_window{60};
    /// Attempts `hook_events/{id}/` shows (newest first) when the request gives no
    /// `attempts_limit`; the largest honoured is `max_page_size`.
    std::size_t default_attempts_page = 20;
};

/// The hooks REST API as a plain request -> response handler on Beast messages, so that a host
/// mounts it in its own server (or uses `whisperer::http::Server`).
///
/// Routes, relative to the prefix (JSON in and out, `Authorization: Token <key>` by default):
/// `hooks/` (GET list, POST create), `hooks/registry/` (GET), `hooks/{id}/` (GET, PUT, PATCH,
/// DELETE = soft delete), `hooks/{id}/recover/` (POST, queue failed deliveries again),
/// `hooks/{id}/rotate_secret/` (POST `{"grace_period": seconds, "secret_key": ...}`, both
/// optional; answers the new secret once),
/// `hook_events/` (GET), `hook_events/{id}/` (GET, with a page of its attempts, newest first:
/// `attempts_limit`, and `attempts_before` from the answer's `attempts_next`; `attempts_stored`
/// says how many are kept), `hook_events/{id}/retry/` (POST, rate-limited per delivery and per
/// owner), `event_queues/` (GET), `events/` (POST, publish, with optional `config_filter` and
/// `owners`; publisher or admin tokens only), and for admins only `tokens/` (GET list, POST
/// create: answers the new key once) and `tokens/{id}/` (DELETE revoke), which answer 404 to
/// anyone else. Everything is scoped to the caller's owner unless the caller is an admin;
/// another owner's resources answer 404, and a principal that is neither an admin nor has an
/// owner gets 403 on every route. Errors are JSON `{"code", "en", "field"?}`.
///
/// Thread safety: `handle` may be called from any number of threads at once. The registry, the
/// store, the dispatcher and the authenticator must outlive the router and every request in
/// progress. Store calls run in the calling thread; network I/O (the retry route) runs on the
/// dispatcher's executor.
class HooksRouter {
public:
    /// Receives the response of one request, exactly once.
    using Completion = std::function<void(Response)>;

    /// Throws `std::invalid_argument` when `options.prefix` does not start and end with '/'.
    HooksRouter(const Registry& registry, SubscriptionStore& store, Dispatcher& dispatcher,
                Authenticator& authenticator, RouterOptions options = {});
    ~HooksRouter();
    HooksRouter(const HooksRouter&) = delete;
    HooksRouter& operator=(const HooksRouter&) = delete;

    /// True when `target` (a request target, query included) lies under the prefix.
    bool matches(std::string_view target) const noexcept;

    /// Answers `request` through `done`, which runs either before `handle` returns or later on
    /// the dispatcher's executor (publish and retry). Never throws: every failure becomes a JSON
    /// error response. A request outside the prefix gets a 404.
    void handle(Request request, Completion done);

    /// Answers `request` and waits for the response. Blocks on the retry route's network
    /// attempt: never call it on the dispatcher's executor threads (use the async form there).
    Response handle(Request request);

    const RouterOptions& options() const noexcept;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace whisperer::http

#endif
