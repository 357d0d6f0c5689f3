// whisperer::http::Server over TLS with certificates made by the test, and the checks of
// make_server_tls_context on the files it is given.

#include "catch.hpp"
#include "receiver.hpp"
#include "server_fixture.hpp"
#include "temp_dir.hpp"

#include <whisperer/error.hpp>
#include <whisperer/http/server.hpp>
#include <whisperer/http/server_tls.hpp>

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include <openssl/ssl.h>

#include <filesystem>
#include <string>

#include <sys/stat.h>

using namespace whisperer;
namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using bhttp::status;
using bhttp::verb;

namespace {

/// A TLS client that trusts `ca_file` and checks the server's name.
struct TlsClient {
    asio::io_context io;
    asio::ssl::context context{asio::ssl::context::tls_client};
    boost::beast::ssl_stream<boost::beast::tcp_stream> stream{io, context};

    explicit TlsClient(const std::string& ca_file)
    {
        context.load_verify_file(ca_file);
        stream.set_verify_mode(asio::ssl::verify_peer);
        stream.set_verify_callback(asio::ssl::host_name_verification("localhost"));
        SSL_set_tlsext_host_name(stream.native_handle(), "localhost");
    }

    /// Connects and shakes hands; the error, if any.
    boost::system::error_code connect(const asio::ip::tcp::endpoint& endpoint)
    {
        boost::system::error_code ec;
        boost::beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
        boost::beast::get_lowest_layer(stream).connect(endpoint, ec);
        if (!ec)
            stream.handshake(asio::ssl::stream_base::client, ec);
        return ec;
    }

    http::Response get(const std::string& target)
    {
        http::Request request{verb::get, target, 11};
        request.set(bhttp::field::host, "localhost");
        bhttp::write(stream, request);
        boost::beast::flat_buffer buffer;
        http::Response response;
        bhttp::read(stream, buffer, response);
        return response;
    }
};

http::ServerTlsFiles files_of(const test::TlsFiles& files)
{
    return {files.certificate_chain, files.private_key};
}

/// The message of the `ValidationError` that `make_server_tls_context` throws for `files`,
/// checking that it names `field`.
std::string refusal(const http::ServerTlsFiles& files, const std::string& field)
{
    try {
        http::make_server_tls_context(files);
    } catch (const ValidationError& e) {
        CHECK(e.field() == field);
        return e.what();
    }
    FAIL("make_server_tls_context accepted the files");
    return {};
}

} // namespace

TEST_CASE("an HTTPS server answers a TLS client, not a plain-HTTP one, and keeps serving", "[server][tls]")
{
    test::TempDir dir;
    test::TestCa ca(dir.path().string());
    http::ServerOptions options;
    options.tls = http::make_server_tls_context(files_of(ca.issue("localhost")));
    CHECK(SSL_CTX_get_min_proto_version(options.tls->native_handle()) == TLS1_2_VERSION);
    test::EchoServer s(options);

    {
        TlsClient client(ca.ca_file());
        boost::system::error_code ec = client.connect(s.endpoint());
        REQUIRE_FALSE(ec);
        CHECK(SSL_version(client.stream.native_handle()) >= TLS1_2_VERSION);
        for (int i = 0; i < 2; ++i) {
            auto response = client.get("/secure/" + std::to_string(i));
            CHECK(response.result() == status::ok);
            CHECK(response.body() == "/secure/" + std::to_string(i) + " 0");
            CHECK(response.keep_alive());
        }
    }

    test::Client plain(s.endpoint());
    plain.send(verb::get, "/plain");
    http::Response response;
    boost::system::error_code ec;
    bhttp::read(plain.socket, plain.buffer, response, ec);
    CHECK(ec);
    CHECK(s.handled == 2);

    TlsClient after(ca.ca_file());
    REQUIRE_FALSE(after.connect(s.endpoint()));
    CHECK(after.get("/after").result() == status::ok);
}

TEST_CASE("a TLS client that does not trust the server's certificate gets no answer", "[server][tls]")
{
    test::TempDir dir;
    test::TestCa ca(dir.path().string());
    http::ServerOptions options;
    options.tls = http::make_server_tls_context(files_of(ca.issue("localhost", true)));
    test::EchoServer s(options);
    TlsClient client(ca.ca_file());
    CHECK(client.connect(s.endpoint()));
    CHECK(s.handled == 0);
}

TEST_CASE("a TLS key file that group or others may access is refused, naming the file and the fix", "[server][tls]")
{
    test::TempDir dir;
    test::TestCa ca(dir.path().string());
    const auto files = files_of(ca.issue("localhost"));
    struct stat st {};
    REQUIRE(::stat(files.private_key_file.c_str(), &st) == 0);
    CHECK((st.st_mode & 077) == 0);

    const mode_t loose = GENERATE(mode_t{0644}, mode_t{0640}, mode_t{0604}, mode_t{0660});
    REQUIRE(::chmod(files.private_key_file.c_str(), loose) == 0);
    const std::string message = refusal(files, "private_key_file");
    CHECK_THAT(message, Catch::Matchers::Contains(files.private_key_file));
    CHECK_THAT(message, Catch::Matchers::Contains("group or others"));
    CHECK_THAT(message, Catch::Matchers::Contains("chmod 600"));

    REQUIRE(::chmod(files.private_key_file.c_str(), 0400) == 0);
    CHECK(http::make_server_tls_context(files));
    // A link is followed: its target's mode is what counts.
    const std::string link = dir.file("key-link.pem");
    std::filesystem::create_symlink(files.private_key_file, link);
    CHECK(http::make_server_tls_context({files.certificate_chain_file, link}));
    REQUIRE(::chmod(files.private_key_file.c_str(), 0644) == 0);
    CHECK_THAT(refusal({files.certificate_chain_file, link}, "private_key_file"),
               Catch::Matchers::Contains("group or others"));
}

TEST_CASE("a missing or invalid certificate and a key of another certificate are refused", "[server][tls]")
{
    test::TempDir dir;
    test::TestCa ca(dir.path().string());
    const auto files = files_of(ca.issue("localhost"));
    const auto other = files_of(ca.issue("localhost"));

    const std::string missing = dir.file("missing.pem");
    CHECK_THAT(refusal({missing, files.private_key_file}, "certificate_chain_file"),
               Catch::Matchers::Contains(missing + "': cannot open: No such file or directory"));
    CHECK_THAT(refusal({files.certificate_chain_file, missing}, "private_key_file"),
               Catch::Matchers::Contains("No such file or directory"));
    CHECK_THAT(refusal({"", files.private_key_file}, "certificate_chain_file"),
               Catch::Matchers::Contains("no file given"));

    CHECK_THAT(refusal({files.private_key_file, files.private_key_file}, "certificate_chain_file"),
               Catch::Matchers::Contains("not a PEM certificate chain"));
    CHECK_THAT(refusal({dir.path().string(), files.private_key_file}, "certificate_chain_file"),
               Catch::Matchers::Contains("not a regular file"));
    CHECK_THAT(refusal({files.certificate_chain_file, other.private_key_file}, "private_key_file"),
               Catch::Matchers::Contains(other.private_key_file));
}
