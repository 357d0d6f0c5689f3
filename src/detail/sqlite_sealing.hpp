// Credentials at rest in a SQLite file: sealing the clear ones when a master key is first used,
// upgrading the unbound `enc:v1:` form, and re-sealing everything under a new key.
#ifndef WHISPERER_SRC_DETAIL_SQLITE_SEALING_HPP
#define WHISPERER_SRC_DETAIL_SQLITE_SEALING_HPP

#include <whisperer/sqlite_store.hpp>

#include "detail/secret_box.hpp"

#include <SQLiteCpp/Database.h>

#include <string>

namespace whisperer::detail {

/// With `box`, in one transaction of its own on `db`: records the key's check value on its first
/// use (refusing another key's), seals every credential still stored in clear, and, on a
/// database whose key row says it holds `enc:v1:` values (sealed before schema 8), re-seals those
/// bound to their hook and field; then marks the database as holding `enc:v2:` values only. A
/// value that does not open is left as it is (its hook stays unreadable). SQLite's
/// `secure_delete` is on meanwhile and the WAL truncated afterwards, so the replaced text does
/// not stay in the file. Throws `StoreError`; `path` names the file in messages.
void seal_credentials_at_rest(SQLite::Database& db, const SecretBox& box, const std::string& path);

/// Re-seals every credential of every hook from `from` to `to` and replaces the key's check
/// value, in one transaction on `db`: committed, only `to` opens the database; interrupted, only
/// `from` does. A credential `from` cannot open is left as it is and its hook reported.
/// Throws `StoreError` (nothing changed) when the database is not sealed with `from`.
SqliteRekeyResult reseal_credentials(SQLite::Database& db, const SecretBox& from, const SecretBox& to,
                                     const std::string& path);

} // namespace whisperer::detail

#endif
