#ifndef WHISPERER_WHISPERER_HPP
#define WHISPERER_WHISPERER_HPP

// The whole core API of whisperer.
#include <whisperer/address_policy.hpp>
#include <whisperer/delivery.hpp>
#include <whisperer/dispatcher.hpp>
#include <whisperer/dispatcher_options.hpp>
#include <whisperer/envelope.hpp>
#include <whisperer/error.hpp>
#include <whisperer/event.hpp>
#include <whisperer/hook.hpp>
#include <whisperer/hook_callback.hpp>
#include <whisperer/http_client.hpp>
#include <whisperer/master_key.hpp>
#include <whisperer/registry.hpp>
#include <whisperer/retry_countdown.hpp>
#include <whisperer/secret_rotation.hpp>
#include <whisperer/signature.hpp>
#include <whisperer/sqlite_store.hpp>
#include <whisperer/subscription_store.hpp>
#include <whisperer/verify.hpp>

#endif
