// The credentials a hook holds, in one list: what reads mask and what stores seal.
#ifndef WHISPERER_SRC_DETAIL_HOOK_CREDENTIALS_HPP
#define WHISPERER_SRC_DETAIL_HOOK_CREDENTIALS_HPP

#include <whisperer/hook.hpp>

#include "detail/secret_box.hpp"

#include <string>

namespace whisperer::detail {

/// Calls `visit(field, value)` for every credential of `hook` (a `Hook` or a `const Hook`),
/// `value` being a `std::string` or a `boost::json::string` it may assign: `secret_key`, each
/// retired secret (`retired_secrets`), `config.auth.password` (either `auth_type`), and the
/// value of every entry of `additional_headers` (`additional_headers.<name>`). String values
/// only: validation refuses any other.
///
/// The one list of credentials: masking, sealing and unmasking all walk it, so a credential
/// added here is masked in every read and sealed at rest.
template <class HookType, class Visit>
void visit_credentials(HookType& hook, Visit&& visit)
{
    visit(std::string("secret_key"), hook.secret_key);
    for (auto& old : hook.retired_secrets)
        visit(std::string("retired_secrets"), old.secret);
    if (auto* auth = hook.config.if_contains("auth"); auth != nullptr && auth->is_object())
        if (auto* password = auth->as_object().if_contains("password"); password != nullptr && password->is_string())
            visit(std::string("config.auth.password"), password->as_string());
    for (auto& header : hook.additional_headers)
        if (header.value().is_string())
            visit("additional_headers." + std::string(header.key()), header.value().as_string());
}

/// Seals every credential of `hook` that is not empty with `box`, bound to the hook's id and
/// the credential's field. `hook.id` must be the id the hook is stored under.
void seal_credentials(Hook& hook, const SecretBox& box);

/// `hook` as a store writes it: its credentials sealed with `box` when there is one.
inline Hook stored_form(const Hook& hook, const SecretBox* box)
{
    Hook stored = hook;
    if (box != nullptr)
        seal_credentials(stored, *box);
    return stored;
}

/// Opens every sealed credential of `hook` in place (plaintext ones stay as they are). Throws
/// `StoreError` naming the hook and the field when one is sealed and `box` is null, or does not
/// open (another key, another hook's or field's value, damaged bytes, or the unbound `enc:v1:`
/// form that only the upgrade reads).
void open_credentials(Hook& hook, const SecretBox* box);

} // namespace whisperer::detail

#endif
