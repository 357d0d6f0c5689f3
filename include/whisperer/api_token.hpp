#ifndef WHISPERER_API_TOKEN_HPP
#define WHISPERER_API_TOKEN_HPP

#include <whisperer/subscription_store.hpp>

#include <string>

namespace whisperer {

/// Issues a REST API token for `owner` and returns its key, which is shown to the user once.
///
/// The key is 40 lowercase hex digits from OpenSSL's CSPRNG; only its `sha256_hex` is stored
/// (`SubscriptionStore::add_token`), so a lost key cannot be recovered, only replaced. Clients
/// send it as `Authorization: Token <key>`. Throws `ValidationError` when `owner` is empty or
/// longer than `HookRules::max_name_length` allows by default (255), `StoreError` when the store
/// cannot write, and `std::runtime_error` when the random generator fails. Thread-safe as the
/// store is.
std::string issue_token(SubscriptionStore& store, std::string owner, bool admin = false, bool publisher = false);

} // namespace whisperer

#endif
