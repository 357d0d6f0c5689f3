// The dispatcher's log lines: a logger that never throws, and how lines name hooks and outcomes.
#ifndef WHISPERER_SRC_DISPATCH_LOG_LINES_HPP
#define WHISPERER_SRC_DISPATCH_LOG_LINES_HPP

#include <whisperer/dispatcher_options.hpp>
#include <whisperer/subscription_store.hpp>

#include <string>
#include <string_view>

namespace whisperer::dispatch {

/// The host's log handler, called so that nothing it throws escapes. Thread-safe when the
/// handler is.
class Logger {
public:
    explicit Logger(LogHandler handler) : handler_(std::move(handler)) {}
    bool enabled() const noexcept { return static_cast<bool>(handler_); }
    void operator()(LogLevel level, const std::string& message) const;

private:
    LogHandler handler_;
};

/// How log lines name where a hook sends: its origin only, since Slack, Discord and Teams URLs
/// carry their secret in the path, and others in the query.
std::string origin_for_log(std::string_view url);

/// One line per attempt: what was sent to which hook and origin, and what came of it (never the
/// whole URL).
std::string describe_outcome(const ClaimedDelivery& delivery, const Attempt& attempt, const AttemptRecord& record,
                             TimePoint now);

} // namespace whisperer::dispatch

#endif
