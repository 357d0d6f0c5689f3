#ifndef WHISPERER_HOOK_CALLBACK_HPP
#define WHISPERER_HOOK_CALLBACK_HPP

#include <whisperer/delivery.hpp>
#include <whisperer/hook.hpp>

#include <boost/json/value.hpp>

#include <functional>
#include <string_view>

namespace whisperer {

/// What a hook's callback learns after every attempt.
struct AttemptReport {
    const Hook& hook;
    std::int64_t delivery_id;
    std::string_view event_type;
    const Attempt& attempt;            ///< Status, body, duration, failure class and detail.
    const boost::json::value& instance; ///< The instance's JSON (the envelope's data).
    std::string_view payload;          ///< The exact body sent.
};

/// A host callback that a hook names in its `callback` field. Runs on whisperer's threads after
/// every attempt; an exception it throws is logged and does not affect the delivery.
using HookCallback = std::function<void(const AttemptReport&)>;

} // namespace whisperer

#endif
