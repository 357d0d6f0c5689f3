#include "detail/connection_limits.hpp"

#include <algorithm>
#include <utility>

namespace whisperer::http::detail {

ConnectionLimits::Ticket::Ticket(std::shared_ptr<ConnectionLimits> limits,
                                 boost::asio::ip::address client) noexcept
    : limits_(std::move(limits)), client_(client)
{
}

ConnectionLimits::Ticket::Ticket(Ticket&& other) noexcept
    : limits_(std::exchange(other.limits_, nullptr)), client_(other.client_)
{
}

ConnectionLimits::Ticket& ConnectionLimits::Ticket::operator=(Ticket&& other) noexcept
{
    if (this != &other) {
        release();
        limits_ = std::exchange(other.limits_, nullptr);
        client_ = other.client_;
    }
    return *this;
}

ConnectionLimits::Ticket::~Ticket()
{
    release();
}

void ConnectionLimits::Ticket::release() noexcept
{
    if (auto limits = std::exchange(limits_, nullptr))
        limits->release(client_);
}

ConnectionLimits::ConnectionLimits(std::size_t max_total, std::size_t max_per_client)
    : max_total_(std::max<std::size_t>(max_total, 1)), max_per_client_(std::max<std::size_t>(max_per_client, 1))
{
}

ConnectionLimits::Ticket ConnectionLimits::admit(const boost::asio::ip::address& client, Refusal& refusal)
{
    // An IPv4 client reaching an IPv6 socket counts as its IPv4 address.
    boost::asio::ip::address key = client;
    if (client.is_v6() && client.to_v6().is_v4_mapped())
        key = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, client.to_v6());
    std::lock_guard lock(mutex_);
    if (total_ >= max_total_) {
        refusal = Refusal::total;
        return {};
    }
    std::size_t& count = per_client_[key];
    if (count >= max_per_client_) {
        refusal = Refusal::client;
        return {};
    }
    ++count;
    ++total_;
    refusal = Refusal::none;
    return Ticket(shared_from_this(), key);
}

std::size_t ConnectionLimits::open() const
{
    std::lock_guard lock(mutex_);
    return total_;
}

void ConnectionLimits::release(const boost::asio::ip::address& client) noexcept
{
    std::lock_guard lock(mutex_);
    --total_;
    auto it = per_client_.find(client);
    if (it != per_client_.end() && --it->second == 0)
        per_client_.erase(it);
}

} // namespace whisperer::http::detail
