// Fuzzes the hook a request body describes: the router's reading of the JSON fields
// (`apply_hook_fields`) and `validate_hook` with the rules the router applies (registered event
// types and callbacks, the built-in countdowns, the default SSRF guard).
//
// Input: one byte that picks the write (0 create, 1 replace, 2 partial; the last two change an
// existing hook that has a secret), then the JSON body. Besides sanitizer reports, an input fails
// when reading or validating throws anything but `ValidationError` or names no field, or when an
// accepted hook breaks what the rest of whisperer relies on: the dispatcher can parse its URL, an
// IP-literal host is one the guard permits, and the hook as a read shows it, sent back as a PUT,
// is accepted and changes nothing.

#include <whisperer/error.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/registry.hpp>

#include "detail/http_target.hpp"
#include "http/detail/resource_json.hpp"

#include <boost/json/parse.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

namespace {

using namespace whisperer;
namespace json = boost::json;
using http::detail::HookWrite;

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

HookRules router_rules()
{
    static const std::set<std::string, std::less<>> callbacks{"audit"};
    HookRules rules;
    rules.registry = &event_registry();
    rules.callbacks = &callbacks;
    rules.address_filter = address_filter_or_default(nullptr);
    return rules;
}

Hook existing_hook()
{
    Hook hook;
    hook.id = 1;
    hook.owner = "alice";
    hook.target_url = "https://example.com/hooks";
    hook.event_type = "package-created";
    hook.secret_key = "whsec_c2VlZC1zZWNyZXQtb2YtdGhlLWZ1enplcg==";
    hook.retry_countdown_config = {{"choice", "linear"}, {"kwargs", {{"base", 60}, {"limit", 600}}}};
    hook.additional_headers = {{"X-Tenant", "acme"}};
    return hook;
}

[[noreturn]] void fail(const std::string& why)
{
    std::fprintf(stderr, "hook_json_fuzzer: %s\n", why.c_str());
    std::abort();
}

bool same_fields(const Hook& a, const Hook& b)
{
    return a.owner == b.owner && a.target_url == b.target_url && a.event_type == b.event_type &&
           a.is_active == b.is_active && a.secret_key == b.secret_key && a.callback == b.callback &&
           a.retry_countdown_config == b.retry_countdown_config && a.additional_headers == b.additional_headers &&
           a.config == b.config;
}

/// What the rest of whisperer relies on once a hook is accepted.
void check_accepted(const Hook& hook, const HookRules& rules)
{
    auto target = detail::HttpTarget::parse(hook.target_url);
    if (!target)
        fail("the dispatcher cannot parse an accepted target_url: " + hook.target_url);
    const UrlHost host = parse_url_host(target->host);
    if (host.kind == UrlHost::Kind::invalid)
        fail("the dispatcher reads an invalid host in an accepted target_url: " + hook.target_url);
    if (host.kind == UrlHost::Kind::address && !rules.address_filter(host.address))
        fail("an accepted target_url points to " + host.address.to_string() + ": " + hook.target_url);

    // A client that reads a hook and sends it back unchanged.
    Hook again = hook;
    try {
        http::detail::apply_hook_fields(again, http::detail::hook_json(hook), HookWrite::replace);
        validate_hook(again, rules);
    } catch (const ValidationError& e) {
        fail(std::string("a hook as read is refused when sent back: ") + e.field() + ": " + e.what());
    }
    if (!same_fields(hook, again))
        fail("sending a hook back as read changes it: " + hook.target_url);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0)
        return 0;
    const auto mode = static_cast<HookWrite>(data[0] % 3);
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

    // As the router reads a body (src/http/request_body.cpp).
    boost::system::error_code ec;
    json::parse_options options;
    options.max_depth = 64;
    json::value body = json::parse(text, ec, {}, options);
    if (ec || !body.is_object())
        return 0;

    static const HookRules rules = router_rules();
    Hook hook;
    if (mode == HookWrite::create)
        hook.owner = "alice";
    else
        hook = existing_hook();
    try {
        http::detail::apply_hook_fields(hook, body.as_object(), mode);
        validate_hook(hook, rules);
    } catch (const ValidationError& e) {
        if (e.field().empty())
            fail(std::string("a validation error without a field: ") + e.what());
        return 0;
    }
    check_accepted(hook, rules);
    return 0;
}
