// Command line of whisperer-server.
#ifndef WHISPERER_SERVER_OPTIONS_HPP
#define WHISPERER_SERVER_OPTIONS_HPP

#include <whisperer/address_policy.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace whisperer::server {

/// `whisperer-server [options]`: serve the API.
struct ServeOptions {
    std::string db = "whisperer.db";
    boost::asio::ip::tcp::endpoint listen{boost::asio::ip::make_address("127.0.0.1"), 8000};
    std::string prefix = "/whisperer/";
    std::vector<std::string> event_types;
    AddressPolicy address_policy;
    unsigned threads = 2;
    std::string secret_key_file; ///< The master key that encrypts hook secrets; none when empty.
    std::string tls_cert_file;   ///< With `tls_key_file`: serve HTTPS; plain HTTP when empty.
    std::string tls_key_file;
    std::size_t max_connections = 0;            ///< 0: derived from the descriptor limit.
    std::size_t max_connections_per_client = 0; ///< 0: an eighth of `max_connections`.
    std::string schema = "whisperer"; ///< PostgreSQL: the schema of whisperer's tables.
    /// PostgreSQL: wake on other processes' commits through LISTEN; off behind a pooler in
    /// transaction mode, where the dispatcher polls every 250 ms instead.
    bool listen_notifications = true;
};

/// `whisperer-server token create --db PATH --owner NAME [--admin] [--publisher]
/// [--expires-in DURATION]`, `token list --db PATH`, `token revoke --db PATH ID`.
struct TokenOptions {
    enum class Action { create, list, revoke } action = Action::create;
    std::string db = "whisperer.db";
    std::string secret_key_file; ///< Needed once the database's secrets are encrypted.
    std::string owner;           ///< create
    bool admin = false;          ///< create
    bool publisher = false;      ///< create
    std::optional<std::chrono::seconds> expires_in; ///< create; never expires when absent
    std::int64_t id = 0;                            ///< revoke
    std::string schema = "whisperer";               ///< PostgreSQL: the schema of whisperer's tables.
};

/// `whisperer-server rekey --db PATH --secret-key-file OLD --new-key-file NEW`.
struct RekeyOptions {
    std::string db;
    std::string secret_key_file; ///< The key the database has now; must exist.
    std::string new_key_file;    ///< The key it gets; created (mode 0600) when missing.
    std::string schema = "whisperer"; ///< PostgreSQL: the schema of whisperer's tables.
};

/// What the command line asks for.
struct Command {
    enum class Kind { serve, token, rekey, help } kind = Kind::serve;
    ServeOptions serve;
    TokenOptions token;
    RekeyOptions rekey;
};

/// A command line that cannot be understood; the message says why.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Parses `argv[1..argc)`; throws `UsageError`.
Command parse_command_line(int argc, const char* const* argv);

/// The --help text.
std::string usage();

} // namespace whisperer::server

#endif
