#ifndef WHISPERER_HTTP_SERVER_TLS_HPP
#define WHISPERER_HTTP_SERVER_TLS_HPP

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace whisperer::http {

/// The PEM files of an HTTPS server.
struct ServerTlsFiles {
    /// The server's certificate, then any intermediate certificates.
    std::string certificate_chain_file;
    /// The certificate's private key, unencrypted. Its mode must give group and others no
    /// access (e.g. 0600 or 0400); a symbolic link is followed and its target checked.
    std::string private_key_file;
};

/// A server TLS context for `ServerOptions::tls`: TLS 1.2 or later, no renegotiation, the
/// certificate chain and key of `files`.
///
/// Throws `ValidationError` (field `certificate_chain_file` or `private_key_file`) whose message
/// names the file and the reason: missing or unreadable, not a regular file, a key file that
/// group or others may access, not PEM, or a key that does not match the certificate.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const ServerTlsFiles& files);

} // namespace whisperer::http

#endif
