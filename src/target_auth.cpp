#include "detail/target_auth.hpp"

#include "detail/delivery_request.hpp"

#include <whisperer/signature.hpp>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>

namespace whisperer::detail {

namespace {

const boost::json::object* token_auth(const Hook& hook)
{
    const boost::json::value* auth = hook.config.if_contains("auth");
    if (auth == nullptr || !auth->is_object())
        return nullptr;
    const boost::json::value* type = auth->as_object().if_contains("auth_type");
    return type != nullptr && type->is_string() && type->as_string() == "token" ? &auth->as_object() : nullptr;
}

std::string field(const boost::json::object& o, std::string_view key, std::string_view fallback = {})
{
    const boost::json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string(fallback);
}

std::string form_encode(std::string_view s)
{
    return boost::urls::encode(s, boost::urls::unreserved_chars);
}

} // namespace

TargetAuth::TargetAuth(std::size_t capacity, Clock::duration lifetime)
    : capacity_(std::max<std::size_t>(capacity, 1)), lifetime_(lifetime)
{
}

bool TargetAuth::uses_token(const Hook& hook)
{
    return token_auth(hook) != nullptr;
}

std::size_t TargetAuth::cached() const
{
    std::lock_guard lock(mutex_);
    return tokens_.size();
}

std::string TargetAuth::cache_key(const Hook& hook)
{
    // Hashed: the cache holds neither the password nor unbounded keys.
    const boost::json::object& auth = *token_auth(hook);
    return sha256_hex(std::to_string(hook.id) + '\n' + field(auth, "url") + '\n' + field(auth, "username") + '\n' +
                      field(auth, "password"));
}

void TargetAuth::remember(const std::string& key, const std::string& authorization, Clock::time_point now)
{
    if (tokens_.size() >= capacity_ && !tokens_.contains(key)) {
        std::erase_if(tokens_, [&](const auto& entry) { return now - entry.second.stored >= lifetime_; });
        if (tokens_.size() >= capacity_)
            tokens_.erase(std::min_element(tokens_.begin(), tokens_.end(), [](const auto& a, const auto& b) {
                return a.second.stored < b.second.stored;
            }));
    }
    tokens_[key] = Cached{authorization, now};
}

void TargetAuth::invalidate(const Hook& hook)
{
    if (!uses_token(hook))
        return;
    std::lock_guard lock(mutex_);
    tokens_.erase(cache_key(hook));
}

void TargetAuth::async_authorization(const Hook& hook, HttpClient& client, Done done)
{
    const boost::json::object* auth = token_auth(hook);
    if (auth == nullptr) {
        done(basic_authorization(hook.config), {});
        return;
    }
    std::string key = cache_key(hook);
    {
        std::unique_lock lock(mutex_);
        if (auto it = tokens_.find(key); it != tokens_.end()) {
            if (Clock::now() - it->second.stored < lifetime_) {
                std::string authorization = it->second.authorization;
                lock.unlock();
                done(std::move(authorization), {});
                return;
            }
            tokens_.erase(it);
        }
    }
    HttpRequest login;
    login.url = field(*auth, "url");
    login.owner = hook.owner;
    login.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
    login.headers.emplace_back("Accept", "application/json");
    login.body = form_encode(field(*auth, "username_field", "username")) + "=" + form_encode(field(*auth, "username")) +
                 "&" + form_encode(field(*auth, "password_field", "password")) + "=" +
                 form_encode(field(*auth, "password"));
    std::string token_key = field(*auth, "token_key", "key");
    std::string format = field(*auth, "header_format", "Token {}");
    client.async_send(std::move(login), [this, key = std::move(key), token_key = std::move(token_key),
                                         format = std::move(format), done = std::move(done)](HttpResult result) {
        if (result.failure != FailureClass::none) {
            done({}, "token login failed: " + result.error);
            return;
        }
        if (result.status < 200 || result.status > 299) {
            done({}, "token login failed: HTTP " + std::to_string(result.status));
            return;
        }
        boost::system::error_code ec;
        boost::json::value answer = boost::json::parse(result.body, ec);
        const boost::json::value* token = ec || !answer.is_object() ? nullptr : answer.as_object().if_contains(token_key);
        if (token == nullptr || !(token->is_string() || token->is_number())) {
            done({}, "token login failed: the answer has no \"" + token_key + "\"");
            return;
        }
        std::string value = token->is_string() ? std::string(token->as_string()) : boost::json::serialize(*token);
        std::string header = format;
        if (auto at = header.find("{}"); at != std::string::npos)
            header.replace(at, 2, value);
        else
            header += " " + value;
        {
            std::lock_guard lock(mutex_);
            remember(key, header, Clock::now());
        }
        done(std::move(header), {});
    });
}

} // namespace whisperer::detail
