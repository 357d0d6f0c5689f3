// The admin routes of API tokens: `tokens/` (GET list, POST create) and `tokens/{id}/`
// (DELETE revoke). The router answers 404 to anyone but an admin before calling these.
#ifndef WHISPERER_SRC_HTTP_DETAIL_TOKENS_ROUTES_HPP
#define WHISPERER_SRC_HTTP_DETAIL_TOKENS_ROUTES_HPP

#include <whisperer/http/message.hpp>
#include <whisperer/subscription_store.hpp>

#include "http_error.hpp"

#include <cstddef>
#include <cstdint>

namespace whisperer::http::detail {

/// 200 `{"results": [token...], "next": null}`: every token, by id, without key or hash.
Response list_tokens(SubscriptionStore& store, ReplyTo to);

/// 201 with the new token and its `key`, shown this once. The body holds `owner` (required),
/// `admin` and `publisher` (booleans, default false), and at most one of `expires_in` (a
/// lifetime such as "30d", see `parse_token_lifetime`) and `expires` (an ISO 8601 date-time in
/// the future). Errors are 400s naming the field.
Response create_token(SubscriptionStore& store, const Request& request, ReplyTo to, std::size_t max_json_depth);

/// 204 once token `id` is deleted; 404 when there is none.
Response revoke_token(SubscriptionStore& store, std::int64_t id, ReplyTo to);

} // namespace whisperer::http::detail

#endif
