#pragma once
// A receiver on 127.0.0.1 (port 0) that speaks through plain sockets, so a test can write exactly
// the bytes a hostile or broken receiver would: interim responses, responses that never end,
// answers meant for another request.

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace whisperer::test {

class RawReceiver {
public:
    /// One accepted connection: read requests from it and write whatever the test wants.
    class Connection {
    public:
        explicit Connection(int fd) : fd_(fd) {}

        /// The next whole request (head and Content-Length body), or empty once the peer closed.
        std::string read_request()
        {
            for (;;) {
                const auto head_end = pending_.find("\r\n\r\n");
                if (head_end != std::string::npos) {
                    const std::size_t total = head_end + 4 + content_length(pending_.substr(0, head_end));
                    if (pending_.size() >= total) {
                        std::string request = pending_.substr(0, total);
                        pending_.erase(0, total);
                        return request;
                    }
                }
                char chunk[16384];
                const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
                if (n <= 0)
                    return {};
                pending_.append(chunk, static_cast<std::size_t>(n));
            }
        }

        /// Writes all of `bytes`; false once the peer is gone.
        bool write(const std::string& bytes)
        {
            std::size_t sent = 0;
            while (sent < bytes.size()) {
                const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return false;
                sent += static_cast<std::size_t>(n);
            }
            return true;
        }

    private:
        static std::size_t content_length(const std::string& head)
        {
            std::string lower = head;
            for (char& c : lower)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const auto at = lower.find("\r\ncontent-length:");
            return at == std::string::npos ? 0 : std::stoul(lower.substr(at + 17));
        }

        int fd_;
        std::string pending_;
    };

    /// Runs `serve` on a thread of its own for each accepted connection, until it returns.
    using Serve = std::function<void(Connection&)>;

    explicit RawReceiver(Serve serve) : serve_(std::move(serve))
    {
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t length = sizeof address;
        if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
            ::listen(listener_, 64) != 0 ||
            ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
            throw std::runtime_error("RawReceiver: cannot listen on 127.0.0.1");
        port_ = ntohs(address.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~RawReceiver()
    {
        stopping_ = true;
        ::shutdown(listener_, SHUT_RDWR);
        acceptor_.join();
        ::close(listener_);
        {
            std::lock_guard lock(mutex_);
            for (int fd : fds_)
                ::shutdown(fd, SHUT_RDWR);
        }
        for (std::thread& t : connections_)
            t.join();
        for (int fd : fds_)
            ::close(fd);
    }

    RawReceiver(const RawReceiver&) = delete;
    RawReceiver& operator=(const RawReceiver&) = delete;

    std::string url(const std::string& path = "/") const
    {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }

    std::size_t connections_accepted() const
    {
        std::lock_guard lock(mutex_);
        return fds_.size();
    }

private:
    void accept_loop()
    {
        for (;;) {
            const int fd = ::accept(listener_, nullptr, nullptr);
            if (fd < 0) {
                if (stopping_ || (errno != EINTR && errno != ECONNABORTED))
                    return;
                continue;
            }
            std::lock_guard lock(mutex_);
            fds_.push_back(fd);
            connections_.emplace_back([this, fd] {
                Connection connection(fd);
                serve_(connection);
                ::shutdown(fd, SHUT_RDWR);
            });
        }
    }

    Serve serve_;
    int listener_ = -1;
    unsigned short port_ = 0;
    std::atomic<bool> stopping_{false};
    mutable std::mutex mutex_;
    std::vector<int> fds_;
    std::vector<std::thread> connections_;
    std::thread acceptor_;
};

} // namespace whisperer::test
