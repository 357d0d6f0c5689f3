#ifndef WHISPERER_SRC_DETAIL_TARGET_AUTH_HPP
#define WHISPERER_SRC_DETAIL_TARGET_AUTH_HPP

#include <whisperer/hook.hpp>
#include <whisperer/http_client.hpp>

#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace whisperer::detail {

/// The Authorization header a hook's `config.auth` asks for.
///
/// `basic` is computed on the spot. `token` POSTs the credentials as a form to the login URL,
/// reads the token from the JSON answer under `token_key` and formats it with `header_format`;
/// the token is cached per hook and credentials until `invalidate` (after a 401). Thread-safe.
class TargetAuth {
public:
    /// `done(authorization, error)`: authorization is empty when the hook needs none; error is
    /// set when the login failed (the attempt then fails without being sent).
    using Done = std::function<void(std::string authorization, std::string error)>;

    void async_authorization(const Hook& hook, HttpClient& client, Done done);

    /// Forgets the cached token of `hook` so that the next attempt logs in again.
    void invalidate(const Hook& hook);

    /// True when `hook` uses token authentication.
    static bool uses_token(const Hook& hook);

private:
    static std::string cache_key(const Hook& hook);

    std::mutex mutex_;
    std::map<std::string, std::string> tokens_; // cache key -> Authorization value
};

} // namespace whisperer::detail

#endif
