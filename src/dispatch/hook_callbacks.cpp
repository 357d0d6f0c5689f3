#include "dispatch/hook_callbacks.hpp"

#include "detail/json_depth.hpp"

#include <boost/asio/post.hpp>

namespace whisperer::dispatch {

namespace json = boost::json;

HookCallbacks::HookCallbacks(boost::asio::any_io_executor host, DataKey data_key, Logger log, KeepAlive keep_alive)
    : host_(std::move(host)), data_key_(data_key), log_(std::move(log)), keep_alive_(std::move(keep_alive))
{
}

void HookCallbacks::add(std::string name, HookCallback callback)
{
    names_.insert(name);
    callbacks_[std::move(name)] = std::move(callback);
}

void HookCallbacks::run(std::shared_ptr<const ClaimedDelivery> delivery, const Attempt& attempt) const
{
    if (delivery->hook.callback.empty())
        return;
    auto it = callbacks_.find(delivery->hook.callback);
    if (it == callbacks_.end()) {
        log_(LogLevel::warning, "hook " + std::to_string(delivery->hook.id) + " names unknown callback \"" +
                                    delivery->hook.callback + "\"");
        return;
    }
    boost::asio::post(host_, [this, life = keep_alive_(), delivery, attempt, &callback = it->second] {
        boost::system::error_code ec;
        json::value envelope = detail::parse_stored_json(delivery->body, ec);
        json::value instance;
        if (!ec && envelope.is_object())
            if (const json::value* data = envelope.as_object().if_contains(to_string(data_key_)))
                instance = *data;
        try {
            callback(AttemptReport{delivery->hook, delivery->delivery_id, delivery->event_type, attempt, instance,
                                   delivery->body});
        } catch (const std::exception& e) {
            log_(LogLevel::error, "callback \"" + delivery->hook.callback + "\" threw: " + e.what());
        } catch (...) {
            log_(LogLevel::error, "callback \"" + delivery->hook.callback + "\" threw");
        }
    });
}

} // namespace whisperer::dispatch
