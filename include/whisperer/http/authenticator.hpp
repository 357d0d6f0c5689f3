#ifndef WHISPERER_HTTP_AUTHENTICATOR_HPP
#define WHISPERER_HTTP_AUTHENTICATOR_HPP

#include <whisperer/http/message.hpp>
#include <whisperer/subscription_store.hpp>

#include <chrono>
#include <optional>
#include <string>

namespace whisperer::http {

/// Who a request acts for, and what it may do.
///
/// Only `admin` opens every owner's resources: a principal that is not an admin and has an empty
/// owner is answered 403 on every route, never shown every owner's resources.
struct Principal {
    std::string owner;      ///< Hooks created by this principal belong to this owner.
    bool admin = false;     ///< Sees and manages every owner's hooks, deliveries, outbox rows and tokens.
    bool publisher = false; ///< May publish events through `POST /events/`.
};

/// Maps a request to the principal it acts for; implement it to use the host's own users.
///
/// Called for every request under the router's prefix, concurrently from the server's threads:
/// implementations must be thread-safe. Return nullopt for missing or invalid credentials (the
/// router answers 401); an exception is answered with 500 (503 for `StoreError`).
class Authenticator {
public:
    virtual ~Authenticator() = default;
    virtual std::optional<Principal> authenticate(const Request& request) = 0;
};

/// The default authenticator: `Authorization: Token <key>`, looked up in the store by the key's
/// SHA-256 (`issue_token` makes such keys). Nothing is cached: every request reads its token,
/// so a token revoked (`SubscriptionStore::revoke_token`) by any process is refused from the
/// next request on, as is one past its `expires`. The token's `last_used` is written at most
/// once per `last_used_resolution`. Thread-safe as the store is; the store must outlive it.
class TokenAuthenticator final : public Authenticator {
public:
    /// How stale a token's recorded `last_used` may be: a use within this of the recorded
    /// time writes nothing.
    static constexpr std::chrono::seconds last_used_resolution{60};

    explicit TokenAuthenticator(SubscriptionStore& store) noexcept : store_(store) {}
    std::optional<Principal> authenticate(const Request& request) override;

private:
    SubscriptionStore& store_;
};

} // namespace whisperer::http

#endif
