// `whisperer-server token create|list|revoke`: API tokens from the command line.
#ifndef WHISPERER_SERVER_TOKEN_COMMANDS_HPP
#define WHISPERER_SERVER_TOKEN_COMMANDS_HPP

#include "options.hpp"

#include <whisperer/subscription_store.hpp>

#include <ostream>

namespace whisperer::server {

/// Runs the token command `options` asks for on `store` and returns the exit status.
///
/// `out` gets what a script reads: the new key (create, shown this once), one line per token
/// (list: ID, owner, rights, created, expires, last used, separated by tabs; never the key or its
/// hash). `err` gets the notes for a person. Throws what the store and `issue_token` throw.
int run_token_command(const TokenOptions& options, SubscriptionStore& store, std::ostream& out, std::ostream& err);

} // namespace whisperer::server

#endif
