#include "detail/hook_credentials.hpp"

#include <whisperer/error.hpp>
#include <whisperer/signature.hpp>

#include <optional>

namespace whisperer {

namespace detail {

void seal_credentials(Hook& hook, const SecretBox& box)
{
    visit_credentials(hook, [&](const std::string& field, auto& value) {
        if (!value.empty())
            value = box.seal(value, credential_binding(hook.id, field));
    });
}

void open_credentials(Hook& hook, const SecretBox* box)
{
    visit_credentials(hook, [&](const std::string& field, auto& value) {
        if (!SecretBox::is_sealed(value))
            return;
        const std::string what = "The " + field + " of hook " + std::to_string(hook.id);
        if (box == nullptr)
            throw StoreError(what + " is encrypted and the store has no master key to decrypt it");
        if (std::string_view(value).starts_with(SecretBox::unbound_prefix))
            throw StoreError(what + " is sealed in the format of schemas 4 to 7 (enc:v1:), which only the upgrade of the "
                                    "database reads; it was left so because it could not be opened then");
        auto opened = box->open(value, credential_binding(hook.id, field));
        if (!opened)
            throw StoreError(what + " cannot be decrypted with the master key (another key, a value moved from "
                                    "another hook or field, or damaged data)");
        value = *opened;
    });
}

} // namespace detail

Hook masked_hook(const Hook& hook)
{
    Hook masked = hook;
    detail::visit_credentials(masked, [](const std::string& field, auto& value) {
        if (value.empty())
            return;
        if (field == "secret_key" || field == "retired_secrets")
            value = mask_secret(value);
        else
            value = masked_credential;
    });
    // Values validation refuses (not strings) are not credentials it knows how to show.
    for (auto& header : masked.additional_headers)
        if (!header.value().is_string())
            header.value() = masked_credential;
    if (auto* auth = masked.config.if_contains("auth"); auth != nullptr && auth->is_object())
        if (auto* password = auth->as_object().if_contains("password"); password != nullptr && !password->is_string())
            *password = masked_credential;
    return masked;
}

void keep_masked_credentials(Hook& written, const Hook& stored)
{
    // secret_key shows more than the mark (its last characters); it is handled by its own rule.
    if (!stored.secret_key.empty() && constant_time_equal(written.secret_key, mask_secret(stored.secret_key)))
        written.secret_key = stored.secret_key;
    detail::visit_credentials(written, [&](const std::string& field, auto& value) {
        if (field == "secret_key" || field == "retired_secrets" || value != masked_credential)
            return;
        std::optional<std::string> kept;
        detail::visit_credentials(stored, [&](const std::string& stored_field, const auto& stored_value) {
            if (stored_field == field)
                kept = std::string(stored_value);
        });
        if (!kept)
            throw ValidationError(field, "\"" + std::string(masked_credential) + "\" stands for a stored value, and " +
                                             field + " has none; send the value itself.");
        value = *kept;
    });
}

} // namespace whisperer
