// The host's named callbacks, told of every attempt of the hooks that name them.
#ifndef WHISPERER_SRC_DISPATCH_HOOK_CALLBACKS_HPP
#define WHISPERER_SRC_DISPATCH_HOOK_CALLBACKS_HPP

#include "dispatch/keep_alive.hpp"
#include "dispatch/log_lines.hpp"

#include <whisperer/envelope.hpp>
#include <whisperer/hook_callback.hpp>
#include <whisperer/subscription_store.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>

namespace whisperer::dispatch {

/// The callbacks hooks may name (`Hook::callback`). Register them before the dispatcher starts:
/// `add` is not thread-safe against `run`; `run` is thread-safe.
class HookCallbacks {
public:
    HookCallbacks(boost::asio::any_io_executor host, DataKey data_key, Logger log, KeepAlive keep_alive);

    void add(std::string name, HookCallback callback);
    const std::set<std::string, std::less<>>& names() const noexcept { return names_; }

    /// Runs the callback `delivery`'s hook names, if any, with `attempt`, on the host's executor;
    /// one that throws is only logged.
    void run(std::shared_ptr<const ClaimedDelivery> delivery, const Attempt& attempt) const;

private:
    boost::asio::any_io_executor host_;
    DataKey data_key_;
    Logger log_;
    KeepAlive keep_alive_;
    std::map<std::string, HookCallback, std::less<>> callbacks_;
    std::set<std::string, std::less<>> names_;
};

} // namespace whisperer::dispatch

#endif
