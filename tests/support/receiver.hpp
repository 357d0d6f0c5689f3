#pragma once
// A real HTTP/1.1 (or HTTPS) receiver on 127.0.0.1 with an ephemeral port, running on its own
// thread, that records every request and answers as the test's handler says (including faults).

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace whisperer::test {

struct ReceivedRequest {
    std::string method;
    std::string target;                          ///< Path and query, e.g. "/hook?x=1".
    std::map<std::string, std::string> headers;  ///< Keys lowercased.
    std::string body;
    std::chrono::steady_clock::time_point at;    ///< When the request was complete.

    /// Header `name` (lowercase) or empty.
    std::string header(const std::string& name) const;
};

/// What the receiver does with one request.
struct Reply {
    enum class Action {
        respond,     ///< Send `status`, `headers`, `body` (after `delay`), keep the connection alive.
        stall,       ///< Never answer; hold the connection open until the receiver stops.
        reset,       ///< Close with RST (SO_LINGER 0) without answering.
        close,       ///< Close cleanly without answering.
        garbage,     ///< Write bytes that are not HTTP, then close.
        trickle,     ///< Send the response one byte every `delay`.
    };
    Action action = Action::respond;
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::chrono::milliseconds delay{0};
};

/// TLS material of an HTTPS receiver (PEM files).
struct TlsFiles {
    std::string certificate_chain; ///< The server certificate (and intermediates).
    std::string private_key;
};

class Receiver {
public:
    using Handler = std::function<Reply(const ReceivedRequest&)>;

    /// Starts listening at once; `handler` runs on the receiver's thread. Plain HTTP unless `tls`.
    explicit Receiver(Handler handler = {}, const TlsFiles* tls = nullptr);
    ~Receiver();
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    unsigned short port() const noexcept;
    /// "http://127.0.0.1:<port><path>" (https for a TLS receiver); `host` replaces 127.0.0.1.
    std::string url(const std::string& path = "/", const std::string& host = "127.0.0.1") const;

    /// A copy of every request received so far, in arrival order.
    std::vector<ReceivedRequest> requests() const;
    std::size_t count() const;
    /// Waits until at least `n` requests have arrived; false on timeout.
    bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
    /// Connections accepted so far (to check keep-alive reuse).
    std::size_t connections_accepted() const;
    /// Replaces the handler for later requests.
    void set_handler(Handler handler);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

/// A throwaway certificate authority made with OpenSSL for one test: a CA certificate and
/// server certificates it signs. Files live in `dir` (which must exist).
class TestCa {
public:
    explicit TestCa(const std::string& dir);
    ~TestCa();
    /// PEM file of the CA certificate (give it to `HttpClientOptions::ca_file`).
    const std::string& ca_file() const noexcept { return ca_file_; }
    /// Issues a server certificate for `dns_name` (also valid for IP 127.0.0.1 when `dns_name`
    /// is "localhost"), signed by this CA unless `self_signed`.
    TlsFiles issue(const std::string& dns_name, bool self_signed = false);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string dir_;
    std::string ca_file_;
};

} // namespace whisperer::test
