#ifndef WHISPERER_SRC_DETAIL_TARGET_AUTH_HPP
#define WHISPERER_SRC_DETAIL_TARGET_AUTH_HPP

#include <whisperer/hook.hpp>
#include <whisperer/http_client.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace whisperer::detail {

/// The Authorization header a hook's `config.auth` asks for.
///
/// `basic` is computed on the spot. `token` POSTs the credentials as a form to the login URL,
/// reads the token from the JSON answer under `token_key` and formats it with `header_format`;
/// the token is cached per hook and credentials (keyed by their SHA-256) until `invalidate`
/// (after a 401), for at most `lifetime`, and for at most `capacity` hooks: a new token past
/// that drops the expired ones, then the oldest. Thread-safe.
class TargetAuth {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr std::size_t default_capacity = 1024;
    static constexpr Clock::duration default_lifetime = std::chrono::hours{1};

    /// A `capacity` of 0 is taken as 1; a `lifetime` of zero logs in for every attempt.
    explicit TargetAuth(std::size_t capacity = default_capacity, Clock::duration lifetime = default_lifetime);

    /// `done(authorization, error)`: authorization is empty when the hook needs none; error is
    /// set when the login failed (the attempt then fails without being sent).
    using Done = std::function<void(std::string authorization, std::string error)>;

    void async_authorization(const Hook& hook, HttpClient& client, Done done);

    /// Forgets the cached token of `hook` so that the next attempt logs in again.
    void invalidate(const Hook& hook);

    /// True when `hook` uses token authentication.
    static bool uses_token(const Hook& hook);

    /// How many tokens are cached now.
    std::size_t cached() const;

private:
    struct Cached {
        std::string authorization;
        Clock::time_point stored;
    };

    static std::string cache_key(const Hook& hook);
    /// Caches `authorization` under `key`, making room first. Expects the mutex held.
    void remember(const std::string& key, const std::string& authorization, Clock::time_point now);

    const std::size_t capacity_;
    const Clock::duration lifetime_;
    mutable std::mutex mutex_;
    std::map<std::string, Cached> tokens_; // cache key -> Authorization value
};

} // namespace whisperer::detail

#endif
