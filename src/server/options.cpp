#include "options.hpp"

#include <whisperer/api_token.hpp>
#include <whisperer/error.hpp>

#include <charconv>
#include <string_view>

namespace whisperer::server {

namespace ip = boost::asio::ip;

namespace {

/// `HOST:PORT`, with an IPv6 host in brackets (`[::1]:8000`).
ip::tcp::endpoint parse_endpoint(std::string_view text)
{
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        throw UsageError("--listen expects HOST:PORT, got \"" + std::string(text) + "\"");
    std::string_view host = text.substr(0, colon);
    std::string_view port_text = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
        host = host.substr(1, host.size() - 2);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
        throw UsageError("--listen: \"" + std::string(port_text) + "\" is not a port number");
    boost::system::error_code error;
    ip::address address = ip::make_address(std::string(host), error);
    if (error)
        throw UsageError("--listen: \"" + std::string(host) + "\" is not an IP address");
    return {address, static_cast<unsigned short>(port)};
}

/// The lifetime of `--expires-in`.
std::chrono::seconds parse_expires_in(const std::string& text)
{
    try {
        return parse_token_lifetime(text);
    } catch (const ValidationError& e) {
        throw UsageError(std::string("--expires-in: ") + e.what());
    }
}

/// A count from 1 to 1,000,000 given to `option`.
std::size_t parse_count(std::string_view option, const std::string& text)
{
    std::size_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size() || n == 0 || n > 1000000)
        throw UsageError(std::string(option) + " expects a number from 1 to 1000000");
    return n;
}

/// Walks the arguments, handing out option values.
class Arguments {
public:
    Arguments(int argc, const char* const* argv) : argc_(argc), argv_(argv) {}
    bool done() const noexcept { return next_ >= argc_; }
    std::string_view peek() const noexcept { return argv_[next_]; }
    std::string_view take() { return argv_[next_++]; }
    std::string value_of(std::string_view option)
    {
        if (done())
            throw UsageError(std::string(option) + " needs a value");
        return std::string(take());
    }

private:
    int argc_;
    const char* const* argv_;
    int next_ = 1;
};

TokenOptions parse_token(Arguments& args)
{
    TokenOptions token;
    const std::string_view action = args.done() ? std::string_view{} : args.take();
    if (action == "create")
        token.action = TokenOptions::Action::create;
    else if (action == "list")
        token.action = TokenOptions::Action::list;
    else if (action == "revoke")
        token.action = TokenOptions::Action::revoke;
    else
        throw UsageError("expected \"token create\", \"token list\" or \"token revoke\"");
    const bool create = token.action == TokenOptions::Action::create;
    std::optional<std::string> id;
    while (!args.done()) {
        std::string_view arg = args.take();
        if (arg == "--db")
            token.db = args.value_of(arg);
        else if (arg == "--schema")
            token.schema = args.value_of(arg);
        else if (arg == "--secret-key-file")
            token.secret_key_file = args.value_of(arg);
        else if (create && arg == "--owner")
            token.owner = args.value_of(arg);
        else if (create && arg == "--admin")
            token.admin = true;
        else if (create && arg == "--publisher")
            token.publisher = true;
        else if (create && arg == "--expires-in")
            token.expires_in = parse_expires_in(args.value_of(arg));
        else if (token.action == TokenOptions::Action::revoke && !arg.starts_with('-') && !id)
            id = std::string(arg);
        else
            throw UsageError("token " + std::string(action) + ": unknown option \"" + std::string(arg) + "\"");
    }
    if (create && token.owner.empty())
        throw UsageError("token create needs --owner NAME");
    if (token.action == TokenOptions::Action::revoke) {
        if (!id)
            throw UsageError("token revoke needs the ID of the token (see \"token list\")");
        auto [end, ec] = std::from_chars(id->data(), id->data() + id->size(), token.id);
        if (ec != std::errc() || end != id->data() + id->size() || token.id <= 0)
            throw UsageError("token revoke: \"" + *id + "\" is not a token ID (see \"token list\")");
    }
    return token;
}

RekeyOptions parse_rekey(Arguments& args)
{
    RekeyOptions rekey;
    while (!args.done()) {
        std::string_view arg = args.take();
        if (arg == "--db")
            rekey.db = args.value_of(arg);
        else if (arg == "--schema")
            rekey.schema = args.value_of(arg);
        else if (arg == "--secret-key-file")
            rekey.secret_key_file = args.value_of(arg);
        else if (arg == "--new-key-file")
            rekey.new_key_file = args.value_of(arg);
        else
            throw UsageError("rekey: unknown option \"" + std::string(arg) + "\"");
    }
    if (rekey.db.empty() || rekey.secret_key_file.empty() || rekey.new_key_file.empty())
        throw UsageError("rekey needs --db PATH, --secret-key-file OLD and --new-key-file NEW");
    return rekey;
}

} // namespace

Command parse_command_line(int argc, const char* const* argv)
{
    Arguments args(argc, argv);
    Command command;
    if (!args.done() && args.peek() == "token") {
        args.take();
        command.kind = Command::Kind::token;
        command.token = parse_token(args);
        return command;
    }
    if (!args.done() && args.peek() == "rekey") {
        args.take();
        command.kind = Command::Kind::rekey;
        command.rekey = parse_rekey(args);
        return command;
    }
    ServeOptions& serve = command.serve;
    while (!args.done()) {
        std::string_view arg = args.take();
        if (arg == "--help" || arg == "-h") {
            command.kind = Command::Kind::help;
            return command;
        }
        if (arg == "--db") {
            serve.db = args.value_of(arg);
        } else if (arg == "--schema") {
            serve.schema = args.value_of(arg);
        } else if (arg == "--no-listen") {
            serve.listen_notifications = false;
        } else if (arg == "--listen") {
            serve.listen = parse_endpoint(args.value_of(arg));
        } else if (arg == "--prefix") {
            serve.prefix = args.value_of(arg);
            if (!serve.prefix.starts_with('/'))
                serve.prefix.insert(0, "/");
            if (!serve.prefix.ends_with('/'))
                serve.prefix += '/';
        } else if (arg == "--event-type") {
            serve.event_types.push_back(args.value_of(arg));
        } else if (arg == "--allow-private") {
            std::string cidr = args.value_of(arg);
            try {
                serve.address_policy.allow(Cidr::parse(cidr));
            } catch (const ValidationError& e) {
                throw UsageError(std::string("--allow-private: ") + e.what());
            }
        } else if (arg == "--secret-key-file") {
            serve.secret_key_file = args.value_of(arg);
        } else if (arg == "--tls-cert") {
            serve.tls_cert_file = args.value_of(arg);
        } else if (arg == "--tls-key") {
            serve.tls_key_file = args.value_of(arg);
        } else if (arg == "--max-connections") {
            serve.max_connections = parse_count(arg, args.value_of(arg));
        } else if (arg == "--max-connections-per-client") {
            serve.max_connections_per_client = parse_count(arg, args.value_of(arg));
        } else if (arg == "--threads") {
            std::string n = args.value_of(arg);
            auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), serve.threads);
            if (ec != std::errc() || end != n.data() + n.size() || serve.threads == 0 || serve.threads > 256)
                throw UsageError("--threads expects a number from 1 to 256");
        } else {
            throw UsageError("unknown option \"" + std::string(arg) + "\"");
        }
    }
    if (serve.tls_cert_file.empty() != serve.tls_key_file.empty())
        throw UsageError("--tls-cert and --tls-key go together");
    return command;
}

std::string usage()
{
    return R"(Usage:
  whisperer-server [--db PATH] [--listen HOST:PORT] [--prefix PATH] [--event-type NAME]...
                   [--allow-private CIDR]... [--threads N] [--secret-key-file PATH]
                   [--tls-cert PATH --tls-key PATH] [--max-connections N]
                   [--max-connections-per-client N] [--schema NAME] [--no-listen]
  whisperer-server token create --db PATH --owner NAME [--admin] [--publisher]
                                [--expires-in DURATION] [--secret-key-file PATH] [--schema NAME]
  whisperer-server token list --db PATH [--secret-key-file PATH] [--schema NAME]
  whisperer-server token revoke --db PATH ID [--secret-key-file PATH] [--schema NAME]
  whisperer-server rekey --db PATH --secret-key-file OLD --new-key-file NEW [--schema NAME]

Serves the whisperer hooks REST API and POST <prefix>events/ on a SQLite database or a
PostgreSQL one and delivers the published events to the subscribed hooks. Several servers on one
PostgreSQL database share its outbox: each event is delivered by one of them.

  --db PATH|URI         SQLite database file (created when missing; default whisperer.db), or
                        a PostgreSQL URI, postgresql://USER@HOST:PORT/DB (schema "whisperer",
                        created when missing); give the password through PGPASSWORD or
                        ~/.pgpass rather than in the URI, which other users may see in ps
  --schema NAME         PostgreSQL: the schema of whisperer's tables (default whisperer)
  --no-listen           PostgreSQL: do not LISTEN for other servers' commits (behind a pooler
                        in transaction mode); poll every 250 ms instead
  --listen HOST:PORT    address to listen on (default 127.0.0.1:8000)
  --prefix PATH         where the API is mounted (default /whisperer/)
  --event-type NAME     register a JSON event type; repeat for several
  --allow-private CIDR  let deliveries reach internal addresses in CIDR (e.g. 127.0.0.0/8);
                        loopback, private and link-local addresses are refused otherwise
  --threads N           worker threads (default 2)
  --secret-key-file PATH
                        store hook secrets encrypted (AES-256-GCM) with the 32-byte key in PATH,
                        created with mode 0600 when missing; once used, the database needs it
  --tls-cert PATH       serve HTTPS (TLS 1.2 or later) with this PEM certificate chain...
  --tls-key PATH        ...and this PEM private key, which only its owner may read (chmod 600)
  --max-connections N   open client connections at most (default: a quarter of the process's
                        file descriptor limit, at most 1024); more are answered 503 and closed
  --max-connections-per-client N
                        open connections from one client address at most (default: an eighth
                        of --max-connections); behind a reverse proxy, set it to --max-connections

rekey seals every hook secret and credential of the database again under the key in NEW
(created with mode 0600 when missing), in one transaction; afterwards only NEW opens it.
Stop every process that uses the database first.

token create prints a new API token (it starts with "wsp_") once; only its hash is stored.
--publisher lets the token publish events, --admin lets it see and manage every owner's hooks
and the tokens. --expires-in DURATION (a whole number and s, m, h, d or w: 45m, 12h, 30d) makes
the token expire; it never does otherwise. token list prints one line per token: its ID, owner,
rights, created, expires and last used (never the key). token revoke ID deletes a token; a
running server refuses it from the next request on.
)";
}

} // namespace whisperer::server
