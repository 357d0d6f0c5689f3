// How a part of the dispatcher keeps the dispatcher's state alive while its handlers wait.
#ifndef WHISPERER_SRC_DISPATCH_KEEP_ALIVE_HPP
#define WHISPERER_SRC_DISPATCH_KEEP_ALIVE_HPP

#include <functional>
#include <memory>

namespace whisperer::dispatch {

/// Returns a shared reference to the state that owns a part; a handler the part queues on the
/// host's executor holds one, so that the part outlives it.
using KeepAlive = std::function<std::shared_ptr<const void>()>;

} // namespace whisperer::dispatch

#endif
