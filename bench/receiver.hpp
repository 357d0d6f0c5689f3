// HTTP receivers that run inside the benchmark on 127.0.0.1.
#ifndef WHISPERER_BENCH_RECEIVER_HPP
#define WHISPERER_BENCH_RECEIVER_HPP

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace whisperer::bench {

/// One request as the receiver saw it.
struct ReceivedRequest {
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

/// A keep-alive HTTP/1.1 server on 127.0.0.1 (port chosen by the kernel) served by one thread of
/// its own, so that its work never shares the dispatcher's executor.
///
/// In `answer` mode every request is answered `200` with an empty body, after `on_request` was
/// called with the request and the steady-clock time its last byte was read. In `stall` mode it
/// accepts connections and never reads from them nor answers: a receiver that hangs.
/// `on_request` runs on the receiver's thread. Not thread-safe apart from `url`.
class Receiver {
public:
    enum class Mode { answer, stall };
    using OnRequest = std::function<void(const ReceivedRequest&, std::chrono::steady_clock::time_point arrived)>;

    explicit Receiver(Mode mode, OnRequest on_request = {});
    ~Receiver();
    Receiver(const Receiver&) = delete;
    Receiver& operator=(const Receiver&) = delete;

    /// `http://127.0.0.1:<port><path>`.
    std::string url(std::string_view path = "/") const;

private:
    void accept();

    Mode mode_;
    OnRequest on_request_;
    boost::asio::io_context io_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::vector<boost::asio::ip::tcp::socket> held_; // Stall mode: accepted and left alone.
    std::thread thread_;
};

} // namespace whisperer::bench

#endif
