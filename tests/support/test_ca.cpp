// TestCa: EC P-256 keys and X.509 v3 certificates made with OpenSSL's C API.
#include "receiver.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

#include <sys/stat.h>

namespace whisperer::test {

namespace {

struct KeyFree {
    void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct CertFree {
    void operator()(X509* p) const noexcept { X509_free(p); }
};
struct FileClose {
    void operator()(std::FILE* p) const noexcept { std::fclose(p); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void check(bool ok, const char* what)
{
    if (!ok)
        throw std::runtime_error(std::string("TestCa: ") + what + " failed");
}

Key make_key()
{
    Key key(EVP_EC_gen("P-256"));
    check(key != nullptr, "EVP_EC_gen");
    return key;
}

void add_extension(X509* cert, X509V3_CTX& ctx, int nid, const std::string& value)
{
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    check(ext != nullptr, "X509V3_EXT_conf_nid");
    const bool added = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    check(added, "X509_add_ext");
}

/// What a certificate says about its subject.
struct Subject {
    std::string common_name;
    bool ca = false;
    std::string subject_alt_name; ///< Empty for none.
};

/// A certificate for `key`, signed by `issuer_key` as `issuer` (self-signed when `issuer` is null).
Cert make_certificate(const Subject& subject, EVP_PKEY* key, long serial, X509* issuer, EVP_PKEY* issuer_key)
{
    Cert cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509* x = cert.get();
    check(X509_set_version(x, 2) == 1, "X509_set_version");
    check(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1, "ASN1_INTEGER_set");
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
    check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
    X509_NAME* name = X509_get_subject_name(x);
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(subject.common_name.c_str()), -1, -1,
                                     0) == 1,
          "X509_NAME_add_entry_by_txt");
    X509* signer = issuer ? issuer : x;
    check(X509_set_issuer_name(x, X509_get_subject_name(signer)) == 1, "X509_set_issuer_name");

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, signer, x, nullptr, nullptr, 0);
    add_extension(x, ctx, NID_basic_constraints, subject.ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    add_extension(x, ctx, NID_subject_key_identifier, "hash");
    if (subject.ca) {
        add_extension(x, ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_extension(x, ctx, NID_key_usage, "critical,digitalSignature");
        add_extension(x, ctx, NID_ext_key_usage, "serverAuth");
    }
    if (!subject.subject_alt_name.empty())
        add_extension(x, ctx, NID_subject_alt_name, subject.subject_alt_name);
    check(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0, "X509_sign");
    return cert;
}

std::unique_ptr<std::FILE, FileClose> open_for_writing(const std::string& path)
{
    std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "wb"));
    check(file != nullptr, "fopen");
    return file;
}

void write_certificate(const std::string& path, X509* cert)
{
    auto file = open_for_writing(path);
    check(PEM_write_X509(file.get(), cert) == 1, "PEM_write_X509");
}

void write_key(const std::string& path, EVP_PKEY* key)
{
    auto file = open_for_writing(path);
    check(PEM_write_PrivateKey(file.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "PEM_write_PrivateKey");
    // Readable by its owner only, as whisperer's HTTPS server requires.
    check(::fchmod(::fileno(file.get()), S_IRUSR | S_IWUSR) == 0, "fchmod");
}

} // namespace

struct TestCa::Impl {
    Key key;
    Cert cert;
    long next_serial = 2;
};

TestCa::TestCa(const std::string& dir) : impl_(std::make_unique<Impl>()), dir_(dir), ca_file_(dir + "/ca.pem")
{
    impl_->key = make_key();
    impl_->cert = make_certificate({"whisperer test CA", true, ""}, impl_->key.get(), 1, nullptr, nullptr);
    write_certificate(ca_file_, impl_->cert.get());
}

TestCa::~TestCa() = default;

TlsFiles TestCa::issue(const std::string& dns_name, bool self_signed)
{
    const long serial = impl_->next_serial++;
    std::string san = "DNS:" + dns_name;
    if (dns_name == "localhost")
        san += ",IP:127.0.0.1";
    Key key = make_key();
    Cert cert = self_signed
                    ? make_certificate({dns_name, false, san}, key.get(), serial, nullptr, nullptr)
                    : make_certificate({dns_name, false, san}, key.get(), serial, impl_->cert.get(), impl_->key.get());
    const std::string stem = dir_ + "/server-" + std::to_string(serial);
    TlsFiles files{stem + ".pem", stem + "-key.pem"};
    write_certificate(files.certificate_chain, cert.get());
    write_key(files.private_key, key.get());
    return files;
}

} // namespace whisperer::test
