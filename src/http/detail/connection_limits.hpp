// How many connections a server holds open, in total and per client address.
#ifndef WHISPERER_SRC_HTTP_DETAIL_CONNECTION_LIMITS_HPP
#define WHISPERER_SRC_HTTP_DETAIL_CONNECTION_LIMITS_HPP

#include <boost/asio/ip/address.hpp>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

namespace whisperer::http::detail {

/// Counts open connections against a total and a per-address maximum. Thread-safe.
class ConnectionLimits : public std::enable_shared_from_this<ConnectionLimits> {
public:
    /// Why a connection was not admitted.
    enum class Refusal { none, total, client };

    /// Held for as long as an admitted connection is open; gives its place back when destroyed.
    class Ticket {
    public:
        Ticket() = default;
        Ticket(Ticket&& other) noexcept;
        Ticket& operator=(Ticket&& other) noexcept;
        ~Ticket();
        /// True when the connection was admitted.
        explicit operator bool() const noexcept { return limits_ != nullptr; }

    private:
        friend class ConnectionLimits;
        Ticket(std::shared_ptr<ConnectionLimits> limits, boost::asio::ip::address client) noexcept;
        void release() noexcept;

        std::shared_ptr<ConnectionLimits> limits_;
        boost::asio::ip::address client_;
    };

    /// Both maxima are at least 1.
    ConnectionLimits(std::size_t max_total, std::size_t max_per_client);

    /// A ticket when `client` may open one more connection; an empty one otherwise, and the
    /// reason in `refusal`.
    Ticket admit(const boost::asio::ip::address& client, Refusal& refusal);

    /// Connections open now (admitted and not yet released).
    std::size_t open() const;

private:
    void release(const boost::asio::ip::address& client) noexcept;

    const std::size_t max_total_;
    const std::size_t max_per_client_;
    mutable std::mutex mutex_;
    std::size_t total_ = 0;
    std::map<boost::asio::ip::address, std::size_t> per_client_;
};

} // namespace whisperer::http::detail

#endif
