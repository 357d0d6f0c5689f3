#include <whisperer/http/hooks_router.hpp>

#include <whisperer/dispatcher.hpp>
#include <whisperer/error.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/subscription_store.hpp>

#include "detail/http_error.hpp"
#include "detail/query.hpp"
#include "detail/request_body.hpp"
#include "detail/resource_json.hpp"
#include "detail/retry_limiter.hpp"
#include "detail/tokens_routes.hpp"

#include <boost/beast/http/verb.hpp>
#include <boost/url/parse.hpp>

#include <algorithm>
#include <cctype>
#include <future>
#include <limits>
#include <stdexcept>
#include <vector>

namespace whisperer::http {

namespace json = boost::json;
using namespace detail;
using boost::beast::http::verb;

namespace {

constexpr std::int64_t max_id = std::numeric_limits<std::int64_t>::max();
constexpr std::size_t max_idempotency_key = 255;
/// Failed deliveries that one call of the recover route queues again, at most.
constexpr std::size_t max_recovered = 10000;
/// Owners that one publish may name in `owners`, at most.
constexpr std::size_t max_owners = 100;

/// One request on its way through the router. Lives on `handle`'s stack; asynchronous routes
/// copy what they need (`reply_to`, `done`).
struct Call {
    const Request& request;
    ReplyTo reply_to;
    const HooksRouter::Completion& done;
    Principal principal;
    boost::urls::params_view params;
    std::int64_t id = 0; ///< The `{id}` segment of the route, when it has one.
};

/// Runs `build` and answers with its response, or with the error it throws.
template <class Build>
void answer(ReplyTo to, const HooksRouter::Completion& done, Build&& build)
{
    std::optional<Response> response;
    try {
        response.emplace(build());
    } catch (...) {
        response.emplace(error_response(to, from_current_exception()));
    }
    done(std::move(*response));
}

/// The decimal id of a path segment, or 0 when it is not one.
std::int64_t parse_id(std::string_view segment) noexcept
{
    if (segment.empty() || segment.size() > 18 ||
        !std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return 0;
    return std::stoll(std::string(segment));
}

std::vector<std::string_view> split_path(std::string_view path)
{
    // "hooks/" and "hooks" are one route; "hooks//" has an empty segment and matches nothing.
    std::vector<std::string_view> segments;
    if (path.ends_with('/'))
        path.remove_suffix(1);
    if (path.empty())
        return segments;
    while (true) {
        auto slash = path.find('/');
        segments.push_back(path.substr(0, slash));
        if (slash == std::string_view::npos)
            return segments;
        path.remove_prefix(slash + 1);
    }
}

/// The original API shows event uuids with dashes and in any case; ours are 32 lowercase hex.
std::string normalize_uuid(std::string uuid)
{
    std::erase(uuid, '-');
    std::transform(uuid.begin(), uuid.end(), uuid.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return uuid;
}

/// The `grace_period` of a rotation: whole seconds from 0 to `max_grace_period`.
std::chrono::seconds grace_period_of(const json::value& v)
{
    const std::string range = "from 0 to " + std::to_string(max_grace_period.count()) + " (30 days)";
    if (v.is_uint64() || (v.is_int64() && v.as_int64() > max_grace_period.count()))
        throw invalid_field("grace_period", "grace_period may be at most " + std::to_string(max_grace_period.count()) +
                                                " seconds (30 days).");
    if (!v.is_int64())
        throw invalid_field("grace_period", "grace_period must be a whole number of seconds " + range + ".");
    if (v.as_int64() < 0)
        throw invalid_field("grace_period", "grace_period may not be negative.");
    return std::chrono::seconds(v.as_int64());
}

/// The `owners` of a publish: a non-empty array of at most `max_owners` non-empty strings.
std::vector<std::string> owners_of(const json::value& v)
{
    const std::string rule = "owners must be a non-empty array of at most " + std::to_string(max_owners) +
                             " owner names.";
    if (!v.is_array() || v.as_array().empty() || v.as_array().size() > max_owners)
        throw invalid_field("owners", rule);
    std::vector<std::string> owners;
    for (const json::value& owner : v.as_array()) {
        if (!owner.is_string() || owner.as_string().empty())
            throw invalid_field("owners", rule);
        owners.emplace_back(owner.as_string());
    }
    return owners;
}

HttpError not_choice(const std::string& event_type)
{
    return invalid_field("event_type", "\"" + event_type + "\" is not a valid choice.");
}

/// The answer to a publish the dispatcher refused. Its completion carries only the code, so the
/// limits are named here.
HttpError publish_error(std::error_code ec, const DispatcherOptions& limits)
{
    if (ec == errc::payload_too_large)
        return from_error_code(ec, "The event's envelope exceeds " + std::to_string(limits.max_payload_bytes) +
                                       " bytes.");
    // The only input the dispatcher validates when it makes an event is the depth of its data.
    if (ec == errc::invalid_argument)
        return invalid_field("data", "data may nest arrays and objects at most " +
                                         std::to_string(limits.max_data_depth) + " levels deep.");
    return from_error_code(ec);
}

template <class T, class ToJson>
json::object page_of(const Page<T>& page, ToJson&& to_json)
{
    json::array results;
    results.reserve(page.items.size());
    for (const T& item : page.items)
        results.push_back(to_json(item));
    return page_json(std::move(results), page.next);
}

} // namespace

struct HooksRouter::Impl {
    using Handler = std::optional<Response> (Impl::*)(Call&);

    struct Method {
        verb method;
        Handler handler;
    };

    /// A path under the prefix, its segments literal or "{id}".
    struct Route {
        std::vector<std::string_view> pattern;
        std::vector<Method> methods;
        std::string allow;
        bool admin_only = false; ///< Anyone else gets 404, as if the route did not exist.
    };

    const Registry& registry;
    SubscriptionStore& store;
    Dispatcher& dispatcher;
    Authenticator& authenticator;
    RouterOptions options;
    RetryLimiter retry_limiter;
    std::vector<Route> routes;

    Impl(const Registry& reg, SubscriptionStore& st, Dispatcher& disp, Authenticator& auth, RouterOptions opts)
        : registry(reg), store(st), dispatcher(disp), authenticator(auth), options(std::move(opts)),
          retry_limiter(options.retry_interval, options.retries_per_owner, options.retry_window)
    {
        add({"hooks"}, {{verb::get, &Impl::list_hooks}, {verb::post, &Impl::create_hook}});
        add({"hooks", "registry"}, {{verb::get, &Impl::event_types}});
        add({"hooks", "{id}"}, {{verb::get, &Impl::get_hook},
                                {verb::put, &Impl::replace_hook},
                                {verb::patch, &Impl::patch_hook},
                                {verb::delete_, &Impl::delete_hook}});
        add({"hooks", "{id}", "recover"}, {{verb::post, &Impl::recover_hook}});
        add({"hooks", "{id}", "rotate_secret"}, {{verb::post, &Impl::rotate_secret}});
        add({"hook_events"}, {{verb::get, &Impl::list_deliveries}});
        add({"hook_events", "{id}"}, {{verb::get, &Impl::get_delivery}});
        add({"hook_events", "{id}", "retry"}, {{verb::post, &Impl::retry_delivery}});
        add({"event_queues"}, {{verb::get, &Impl::list_outbox}});
        add({"events"}, {{verb::post, &Impl::publish}});
        add({"tokens"}, {{verb::get, &Impl::list_tokens}, {verb::post, &Impl::create_token}}, true);
        add({"tokens", "{id}"}, {{verb::delete_, &Impl::revoke_token}}, true);
    }

    void add(std::vector<std::string_view> pattern, std::vector<Method> methods, bool admin_only = false)
    {
        std::string allow;
        for (const Method& m : methods)
            allow += (allow.empty() ? "" : ", ") + std::string(boost::beast::http::to_string(m.method));
        routes.push_back({std::move(pattern), std::move(methods), std::move(allow), admin_only});
    }

    // --- routing ----------------------------------------------------------------------------------

    void handle(const Request& request, const Completion& done)
    {
        ReplyTo to = ReplyTo::of(request);
        std::optional<Response> response;
        try {
            response = route(request, to, done);
        } catch (...) {
            response = error_response(to, from_current_exception());
        }
        if (response)
            done(std::move(*response));
    }

    /// The response, or nullopt when an asynchronous route answers through `done` later.
    std::optional<Response> route(const Request& request, ReplyTo to, const Completion& done)
    {
        auto url = boost::urls::parse_origin_form(request.target());
        if (!url)
            throw HttpError(status::bad_request, "bad_request", "Malformed request target.");
        std::string_view path = url->encoded_path();
        if (!path.starts_with(options.prefix))
            throw HttpError(status::not_found, "not_found", "Not found.");
        Call call{request, to, done, {}, url->params(), 0};
        const Route* matched = match(split_path(path.substr(options.prefix.size())), call.id);
        if (matched == nullptr)
            throw HttpError(status::not_found, "not_found", "Not found.");
        if (request.body().size() > options.max_body_size)
            throw HttpError(status::payload_too_large, "payload_too_large",
                            "The request body exceeds " + std::to_string(options.max_body_size) + " bytes.");
        auto principal = authenticator.authenticate(request);
        if (!principal)
            throw HttpError(status::unauthorized, "not_authenticated",
                            "Authentication credentials were not provided or are invalid.");
        call.principal = std::move(*principal);
        // An empty owner would scope listings to every owner: only an admin may see them all.
        if (!call.principal.admin && call.principal.owner.empty())
            throw HttpError(status::forbidden, "permission_denied",
                            "This principal has no owner; only an admin acts for every owner.");
        if (matched->admin_only && !call.principal.admin)
            throw HttpError(status::not_found, "not_found", "Not found.");
        for (const Method& m : matched->methods)
            if (m.method == request.method())
                return (this->*m.handler)(call);
        throw HttpError(status::method_not_allowed, "method_not_allowed",
                        "Method \"" + std::string(request.method_string()) + "\" not allowed.")
            .with_allow(matched->allow);
    }

    const Route* match(const std::vector<std::string_view>& segments, std::int64_t& id) const
    {
        for (const Route& r : routes) {
            if (r.pattern.size() != segments.size())
                continue;
            std::int64_t found = 0;
            bool ok = true;
            for (std::size_t i = 0; ok && i < segments.size(); ++i) {
                if (r.pattern[i] == "{id}")
                    ok = (found = parse_id(segments[i])) > 0;
                else
                    ok = r.pattern[i] == segments[i];
            }
            if (ok) {
                id = found;
                return &r;
            }
        }
        return nullptr;
    }

    // --- scoping ------------------------------------------------------------------------------------

    /// The owner a listing is limited to: the caller's, or for an admin the `owner` filter if any.
    static std::optional<std::string> owner_scope(const Call& call, const Query& query)
    {
        if (!call.principal.admin)
            return call.principal.owner;
        return query.text("owner");
    }

    static bool may_see(const Principal& principal, const std::string& owner) noexcept
    {
        return principal.admin || principal.owner == owner;
    }

    /// The route's hook; another owner's hook is as absent as a missing one.
    Hook visible_hook(const Call& call)
    {
        auto hook = store.find_hook(call.id);
        if (!hook || !may_see(call.principal, hook->owner))
            throw from_error_code(errc::hook_not_found, "Webhook does not exist.");
        return std::move(*hook);
    }

    Delivery visible_delivery(const Call& call, bool with_attempts)
    {
        auto delivery = store.find_delivery(call.id, with_attempts);
        if (!delivery || !may_see(call.principal, delivery->owner))
            throw from_error_code(errc::delivery_not_found, "Webhook event does not exist.");
        return std::move(*delivery);
    }

    // --- hooks ----------------------------------------------------------------------------------------

    std::optional<Response> list_hooks(Call& call)
    {
        Query query(call.params);
        HookQuery q;
        q.owner = owner_scope(call, query);
        q.target_url = query.text("target_url");
        q.event_type = query.text("event_type");
        q.is_active = query.boolean("is_active");
        auto page = query.page(options);
        q.after = page.after;
        q.limit = page.limit;
        return json_response(call.reply_to, status::ok, page_of(store.list_hooks(q), hook_json));
    }

    std::optional<Response> create_hook(Call& call) { return write_hook(call, HookWrite::create); }
    std::optional<Response> replace_hook(Call& call) { return write_hook(call, HookWrite::replace); }
    std::optional<Response> patch_hook(Call& call) { return write_hook(call, HookWrite::partial); }

    std::optional<Response> write_hook(Call& call, HookWrite mode)
    {
        Hook hook;
        if (mode == HookWrite::create)
            hook.owner = call.principal.owner;
        else
            hook = visible_hook(call);
        apply_hook_fields(hook, read_json_object(call.request, options.max_json_depth), mode);
        if (!registry.contains(hook.event_type))
            throw not_choice(hook.event_type);
        HookRules rules = options.hook_rules;
        rules.registry = &registry;
        rules.countdowns = dispatcher.options().countdowns;
        rules.callbacks = &dispatcher.callback_names();
        if (!rules.address_filter)
            rules.address_filter = address_filter_or_default(dispatcher.options().address_filter);
        validate_hook(hook, rules);
        if (mode == HookWrite::create) {
            // Every hook signs: one created without a secret gets a generated one, shown in
            // clear in this response only; every later read masks it.
            const bool generated = hook.secret_key.empty();
            if (generated)
                hook.secret_key = generate_secret();
            Hook created = store.create_hook(hook);
            json::object body = hook_json(created);
            if (generated)
                body["secret_key"] = created.secret_key;
            return json_response(call.reply_to, status::created, std::move(body));
        }
        Hook updated = store.update_hook(hook);
        if (updated.is_active)
            dispatcher.wake(); // A re-activated hook's pending deliveries go out now.
        return json_response(call.reply_to, status::ok, hook_json(updated));
    }

    std::optional<Response> get_hook(Call& call)
    {
        return json_response(call.reply_to, status::ok, hook_json(visible_hook(call)));
    }

    std::optional<Response> delete_hook(Call& call)
    {
        visible_hook(call);
        if (!store.deactivate_hook(call.id))
            throw from_error_code(errc::hook_not_found, "Webhook does not exist.");
        return empty_response(call.reply_to, status::no_content);
    }

    /// Queues again every failed delivery of the hook created in [since, until] (until defaults
    /// to now), at most `max_recovered` per call; answers how many.
    std::optional<Response> recover_hook(Call& call)
    {
        visible_hook(call);
        json::object body = read_json_object(call.request, options.max_json_depth);
        auto time_field = [&](std::string_view field) -> std::optional<TimePoint> {
            const json::value* v = body.if_contains(field);
            if (v == nullptr || v->is_null())
                return std::nullopt;
            std::optional<TimePoint> t;
            if (v->is_string())
                t = parse_time(std::string_view(v->as_string()));
            if (!t)
                throw invalid_field(std::string(field), std::string(field) + " must be an ISO 8601 date or date-time.");
            return t;
        };
        const auto since = time_field("since");
        if (!since)
            throw invalid_field("since", "since is required.");
        const TimePoint now = Clock::now();
        const TimePoint until = time_field("until").value_or(now);
        if (until < *since)
            throw invalid_field("until", "until must not be before since.");
        const std::size_t recovered = store.requeue_failed(call.id, *since, until, now, max_recovered);
        if (recovered > 0)
            dispatcher.wake();
        return json_response(call.reply_to, status::ok, json::object{{"recovered", recovered}});
    }

    /// Replaces the hook's secret; the old one keeps signing for `grace_period` seconds (default
    /// one day). Answers the hook with the new secret in clear, this once.
    std::optional<Response> rotate_secret(Call& call)
    {
        visible_hook(call);
        json::object body = read_json_object(call.request, options.max_json_depth);
        SecretRotation rotation;
        if (const json::value* v = body.if_contains("grace_period"); v != nullptr && !v->is_null())
            rotation.grace_period = grace_period_of(*v);
        if (const json::value* v = body.if_contains("secret_key"); v != nullptr && !v->is_null()) {
            if (!v->is_string())
                throw invalid_field("secret_key", "secret_key must be a string.");
            rotation.new_secret = std::string(v->as_string());
        }
        validate_rotation(rotation, options.hook_rules);
        Hook rotated = store.rotate_secret(call.id, rotation);
        json::object out = hook_json(rotated);
        out["secret_key"] = rotated.secret_key;
        return json_response(call.reply_to, status::ok, std::move(out));
    }

    std::optional<Response> event_types(Call& call)
    {
        json::array types;
        for (const std::string& type : registry.event_types())
            types.emplace_back(type);
        return json_response(call.reply_to, status::ok, json::object{{"event_types", std::move(types)}});
    }

    // --- deliveries and the outbox --------------------------------------------------------------------

    std::optional<Response> list_deliveries(Call& call)
    {
        Query query(call.params);
        DeliveryQuery q;
        q.owner = owner_scope(call, query);
        q.event_type = query.text("event_type");
        if (auto uuid = query.text("uuid"))
            q.event_uuid = normalize_uuid(std::move(*uuid));
        if (auto s = query.integer("response_http_status", 0, 999))
            q.response_status = static_cast<int>(*s);
        q.delivered = query.boolean("delivered");
        q.created_from = query.time("created_date__gte");
        q.created_until = query.time("created_date__lte");
        q.hook_id = query.integer("webhook", 1, max_id);
        auto page = query.page(options);
        q.after = page.after;
        q.limit = page.limit;
        return json_response(call.reply_to, status::ok, page_of(store.list_deliveries(q), [](const Delivery& d) {
                                 return delivery_json(d, false);
                             }));
    }

    /// The delivery with one page of its attempts, newest first (`attempts_limit`,
    /// `attempts_before`): a delivery may hold many, each with a response body.
    std::optional<Response> get_delivery(Call& call)
    {
        Query query(call.params);
        AttemptQuery q;
        q.limit = static_cast<std::size_t>(
            query.integer("attempts_limit", 1, max_id)
                .value_or(static_cast<std::int64_t>(options.default_attempts_page)));
        q.limit = std::min(q.limit, options.max_page_size);
        q.before = query.integer("attempts_before", 1, max_id).value_or(0);
        json::object out = delivery_json(visible_delivery(call, false), false);
        const AttemptPage page = store.list_attempts(call.id, q);
        json::array attempts;
        attempts.reserve(page.items.size());
        for (const Attempt& attempt : page.items)
            attempts.push_back(attempt_json(attempt));
        out["attempts"] = std::move(attempts);
        out["attempts_stored"] = page.stored;
        out["attempts_next"] = page.next ? json::value(*page.next) : json::value(nullptr);
        return json_response(call.reply_to, status::ok, out);
    }

    std::optional<Response> retry_delivery(Call& call)
    {
        const Delivery delivery = visible_delivery(call, false);
        json::object body = read_json_object(call.request, options.max_json_depth);
        bool force = false;
        if (const json::value* v = body.if_contains("force")) {
            if (!v->is_bool())
                throw invalid_field("force", "force must be true or false.");
            force = v->as_bool();
        }
        // Counted against the delivery's owner, whose storage each attempt grows.
        if (const auto wait = retry_limiter.admit(call.id, delivery.owner); wait.count() > 0)
            throw HttpError(status::too_many_requests, "throttled",
                            "Too many manual retries; try again in " + std::to_string(wait.count()) + " seconds.")
                .with_retry_after(wait.count());
        try {
            start_retry(call, force);
        } catch (...) {
            retry_limiter.give_back(call.id, delivery.owner); // Refused before anything was sent.
            throw;
        }
        return std::nullopt;
    }

    void start_retry(const Call& call, bool force)
    {
        dispatcher.async_retry_delivery(call.id, force, [to = call.reply_to, done = call.done](HookResult result) {
            answer(to, done, [&] {
                json::object out{{"id", result.delivery_id},
                                 {"webhook", result.hook_id},
                                 {"delivered", result.attempt.succeeded()},
                                 {"attempt", attempt_json(result.attempt)}};
                return json_response(to, status::ok, out);
            });
        });
    }

    std::optional<Response> list_outbox(Call& call)
    {
        Query query(call.params);
        OutboxQuery q;
        q.owner = owner_scope(call, query);
        auto page = query.page(options);
        q.after = page.after;
        q.limit = page.limit;
        return json_response(call.reply_to, status::ok, page_of(store.list_outbox(q), outbox_json));
    }

    // --- API tokens (admins only) -------------------------------------------------------------------

    std::optional<Response> list_tokens(Call& call) { return detail::list_tokens(store, call.reply_to); }

    std::optional<Response> create_token(Call& call)
    {
        return detail::create_token(store, call.request, call.reply_to, options.max_json_depth);
    }

    std::optional<Response> revoke_token(Call& call) { return detail::revoke_token(store, call.id, call.reply_to); }

    // --- publishing -------------------------------------------------------------------------------------

    std::optional<Response> publish(Call& call)
    {
        if (!call.principal.publisher && !call.principal.admin)
            throw HttpError(status::forbidden, "permission_denied",
                            "Publishing events needs a token with the publisher or admin right.");
        json::object body = read_json_object(call.request, options.max_json_depth);
        const json::value* type = body.if_contains("event_type");
        if (type == nullptr || type->is_null())
            throw invalid_field("event_type", "event_type is required.");
        if (!type->is_string())
            throw invalid_field("event_type", "event_type must be a string.");
        std::string event_type(type->as_string());
        if (!registry.contains(event_type))
            throw not_choice(event_type);
        json::value* data = body.if_contains("data");
        if (data == nullptr)
            throw invalid_field("data", "data is required.");

        DeliverOptions deliver;
        if (const json::value* filter = body.if_contains("config_filter"); filter && !filter->is_null()) {
            if (!filter->is_object())
                throw invalid_field("config_filter", "config_filter must be a JSON object.");
            deliver.config_filter = filter->as_object();
        }
        if (const json::value* owners = body.if_contains("owners"); owners && !owners->is_null())
            deliver.owners = owners_of(*owners);
        if (const json::value* key = body.if_contains("idempotency_key"); key && !key->is_null()) {
            if (!key->is_string() || key->as_string().empty() || key->as_string().size() > max_idempotency_key ||
                std::any_of(key->as_string().begin(), key->as_string().end(),
                            [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
                throw invalid_field("idempotency_key", "idempotency_key must be a string of 1 to " +
                                                           std::to_string(max_idempotency_key) +
                                                           " characters without control characters.");
            deliver.idempotency_key = std::string(key->as_string());
        }
        // A client that lists the event's deliveries right after this answer finds them.
        deliver.wait_stored = true;
        dispatcher.async_deliver_data(std::move(*data), event_type, std::move(deliver),
                                      [to = call.reply_to, done = call.done,
                                       &limits = dispatcher.options()](std::error_code ec, DeliverResult result) {
                                          answer(to, done, [&] {
                                              if (ec)
                                                  throw publish_error(ec, limits);
                                              json::object out{{"uuid", result.event_uuid},
                                                               {"hooks", result.hook_count},
                                                               {"duplicate", result.duplicate}};
                                              return json_response(to, status::accepted, out);
                                          });
                                      });
        return std::nullopt;
    }
};

HooksRouter::HooksRouter(const Registry& registry, SubscriptionStore& store, Dispatcher& dispatcher,
                         Authenticator& authenticator, RouterOptions options)
{
    if (options.prefix.empty() || options.prefix.front() != '/' || options.prefix.back() != '/')
        throw std::invalid_argument("whisperer::http::HooksRouter: the prefix must start and end with '/'");
    if (options.default_page_size == 0 || options.max_page_size < options.default_page_size)
        throw std::invalid_argument("whisperer::http::HooksRouter: need 0 < default_page_size <= max_page_size");
    if (options.default_attempts_page == 0 || options.retry_interval.count() < 0 || options.retry_window.count() <= 0)
        throw std::invalid_argument("whisperer::http::HooksRouter: need default_attempts_page > 0, "
                                    "retry_interval >= 0 and retry_window > 0");
    impl_ = std::make_unique<Impl>(registry, store, dispatcher, authenticator, std::move(options));
}

HooksRouter::~HooksRouter() = default;

bool HooksRouter::matches(std::string_view target) const noexcept
{
    return target.substr(0, target.find('?')).starts_with(impl_->options.prefix);
}

void HooksRouter::handle(Request request, Completion done)
{
    impl_->handle(request, done);
}

Response HooksRouter::handle(Request request)
{
    auto promise = std::make_shared<std::promise<Response>>();
    auto future = promise->get_future();
    handle(std::move(request), [promise](Response response) { promise->set_value(std::move(response)); });
    return future.get();
}

const RouterOptions& HooksRouter::options() const noexcept
{
    return impl_->options;
}

} // namespace whisperer::http
