#include <whisperer/http/server_tls.hpp>

#include <whisperer/error.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/context.hpp>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace whisperer::http {

namespace ssl = boost::asio::ssl;

namespace {

/// PEM files larger than this are refused rather than read (a long chain is a few KiB).
constexpr off_t max_pem_size = 1024 * 1024;

/// The contents of a PEM file, wiped from memory when dropped (it may hold a private key).
class PemText {
public:
    PemText() = default;
    ~PemText() { OPENSSL_cleanse(text_.data(), text_.size()); }
    PemText(const PemText&) = delete;
    PemText& operator=(const PemText&) = delete;
    std::string& text() noexcept { return text_; }

private:
    std::string text_;
};

class TlsFile {
public:
    TlsFile(std::string field, std::string what, std::string path)
        : field_(std::move(field)), what_(std::move(what)), path_(std::move(path))
    {
    }

    ValidationError error(const std::string& reason) const
    {
        return ValidationError(field_, what_ + " '" + path_ + "': " + reason);
    }

    /// Reads the whole file; with `owner_only`, refuses one that group or others may access.
    void read(PemText& out, bool owner_only) const
    {
        if (path_.empty())
            throw ValidationError(field_, what_ + ": no file given");
        int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            throw error(std::string("cannot open: ") + std::strerror(errno));
        struct Closer {
            int fd;
            ~Closer() { ::close(fd); }
        } closer{fd};
        struct stat st {};
        if (::fstat(fd, &st) != 0)
            throw error(std::string("cannot read its mode: ") + std::strerror(errno));
        if (!S_ISREG(st.st_mode))
            throw error("is not a regular file");
        if (owner_only && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
            throw error(std::string("is accessible by group or others (mode ") + mode +
                        "); it must be readable by its owner only: chmod 600 '" + path_ + "'");
        }
        if (st.st_size > max_pem_size)
            throw error("is larger than 1 MiB; it is not a PEM file");
        std::string& text = out.text();
        text.resize(static_cast<std::size_t>(st.st_size));
        std::size_t done = 0;
        while (done < text.size()) {
            ssize_t n = ::read(fd, text.data() + done, text.size() - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                throw error(std::string("cannot read: ") + std::strerror(errno));
            if (n == 0)
                break;
            done += static_cast<std::size_t>(n);
        }
        text.resize(done);
    }

private:
    std::string field_;
    std::string what_;
    std::string path_;
};

} // namespace

std::shared_ptr<ssl::context> make_server_tls_context(const ServerTlsFiles& files)
{
    const TlsFile certificate("certificate_chain_file", "TLS certificate file", files.certificate_chain_file);
    const TlsFile key("private_key_file", "TLS private key file", files.private_key_file);
    // Both files are read before either is parsed, so that a key file with a loose mode is
    // refused whatever the certificate holds.
    PemText chain_text;
    PemText key_text;
    key.read(key_text, true);
    certificate.read(chain_text, false);

    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    SSL_CTX* native = context->native_handle();
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1)
        throw std::runtime_error("whisperer: OpenSSL refused TLS 1.2 as the minimum version");
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    // Idle keep-alive connections give their read and write buffers back.
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);

    boost::system::error_code ec;
    context->use_certificate_chain(boost::asio::buffer(chain_text.text()), ec);
    if (ec)
        throw certificate.error("not a PEM certificate chain (" + ec.message() + ")");
    context->use_private_key(boost::asio::buffer(key_text.text()), ssl::context::pem, ec);
    if (ec)
        throw key.error("not an unencrypted PEM private key for the certificate (" + ec.message() + ")");
    if (SSL_CTX_check_private_key(native) != 1)
        throw key.error("does not match the certificate in '" + files.certificate_chain_file + "'");
    return context;
}

} // namespace whisperer::http
