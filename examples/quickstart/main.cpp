// The Quick Start page in C++: define an event, register it, subscribe a URL, deliver after a
// change of the host's data, and watch the signed delivery arrive at a receiver.
//
// The receiver runs inside this program on 127.0.0.1 so that the demo needs nothing else.

#include <whisperer/whisperer.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;

// --- the host's model and its event -------------------------------------------------------------

struct Package {
    int id;
    int transfer_id;
    std::string order_number;
};

// Boost.JSON conversion: all whisperer needs to serialise a Package.
void tag_invoke(json::value_from_tag, json::value& v, const Package& p)
{
    v = {{"id", p.id}, {"transfer_id", p.transfer_id}, {"order_number", p.order_number}};
}

class PackageCreateEvent : public whisperer::WhispererEvent<Package> {
public:
    static constexpr std::string_view event_type = "package-created";
};

// --- a subscriber's receiver, https://example.com/ in the seed page ----------------------------

/// Accepts keep-alive HTTP/1.1 connections on 127.0.0.1 and answers 200 to every POST.
class DemoReceiver {
public:
    DemoReceiver() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
    {
        thread_ = std::thread([this] { accept_loop(); });
    }
    ~DemoReceiver()
    {
        io_.stop();
        boost::system::error_code ignored;
        acceptor_.close(ignored);
        // Unblock accept() with one last connection.
        tcp::socket poke(io_);
        poke.connect(acceptor_endpoint_, ignored);
        thread_.join();
        {
            std::lock_guard lock(mutex_);
            for (tcp::socket* s : open_)
                s->shutdown(tcp::socket::shutdown_both, ignored);
        }
        for (auto& t : connections_)
            t.join();
    }

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/"; }

    /// Waits until `n` requests arrived; returns them.
    std::vector<http::request<http::string_body>> wait_for(std::size_t n)
    {
        std::unique_lock lock(mutex_);
        arrived_.wait_for(lock, std::chrono::seconds(30), [&] { return requests_.size() >= n; });
        return requests_;
    }

    std::size_t count()
    {
        std::lock_guard lock(mutex_);
        return requests_.size();
    }

private:
    void accept_loop()
    {
        for (;;) {
            tcp::socket socket(io_);
            boost::system::error_code ec;
            acceptor_.accept(socket, ec);
            if (ec || io_.stopped())
                return;
            connections_.emplace_back([this, s = std::move(socket)]() mutable { serve(std::move(s)); });
        }
    }

    void serve(tcp::socket socket)
    {
        {
            std::lock_guard lock(mutex_);
            open_.push_back(&socket);
        }
        serve_requests(socket);
        std::lock_guard lock(mutex_);
        open_.erase(std::find(open_.begin(), open_.end(), &socket));
    }

    void serve_requests(tcp::socket& socket)
    {
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> request;
            boost::system::error_code ec;
            http::read(socket, buffer, request, ec);
            if (ec)
                return;
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(request);
            }
            arrived_.notify_all();
            http::response<http::string_body> response{http::status::ok, 11};
            response.body() = "{\"ok\":true}";
            response.prepare_payload();
            http::write(socket, response, ec);
            if (ec)
                return;
        }
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    unsigned short port_ = acceptor_.local_endpoint().port();
    tcp::endpoint acceptor_endpoint_ = acceptor_.local_endpoint();
    std::thread thread_;
    std::vector<std::thread> connections_;
    std::vector<tcp::socket*> open_;
    std::mutex mutex_;
    std::condition_variable arrived_;
    std::vector<http::request<http::string_body>> requests_;
};

int main()
{
    // 1. Define and register the event (the seed's registry.register(PackageCreateEvent)).
    whisperer::Registry registry;
    registry.register_event<PackageCreateEvent>();

    // 2. The store: one SQLite file.
    std::filesystem::remove("quickstart.db");
    whisperer::SqliteStore store("quickstart.db");

    // 3. A user subscribes https://example.com/ (here: the demo receiver) with the seed's body.
    DemoReceiver receiver;
    json::object subscription = json::parse(R"({
        "event_type": "package-created",
        "secret_key": "<secret>",
        "target_url": "https://example.com/",
        "retry_countdown_config": {"choice": "linear", "kwargs": {"base": 60, "limit": 600}}
    })").as_object();
    whisperer::Hook hook;
    hook.owner = "example-user";
    hook.event_type = json::value_to<std::string>(subscription["event_type"]);
    hook.secret_key = json::value_to<std::string>(subscription["secret_key"]);
    hook.target_url = receiver.url();
    hook.retry_countdown_config = subscription["retry_countdown_config"].as_object();
    whisperer::validate_hook(hook, {.registry = &registry});
    hook = store.create_hook(hook);
    std::cout << "subscribed hook " << hook.id << ": " << hook.event_type << " -> " << hook.target_url << "\n";

    // 4. The dispatcher runs on the host's executor; here a small thread pool.
    asio::thread_pool pool(2);
    // The SSRF guard refuses loopback and private addresses; this demo's receiver is on 127.0.0.1.
    whisperer::DispatcherOptions options;
    options.address_filter =
        whisperer::AddressPolicy{}.allow(whisperer::Cidr::parse("127.0.0.0/8")).as_filter();
    whisperer::Dispatcher dispatcher(pool.get_executor(), registry, store, options);
    dispatcher.start();
    whisperer::set_default_dispatcher(&dispatcher);

    // 5. The host saved a Package: deliver the event (the seed's post_save signal receiver).
    Package package{61, 49, "248398923123"};
    auto result = whisperer::deliver_event(package, "package-created");
    std::cout << "deliver_event returned: event " << result.event_uuid << " queued for " << result.hook_count
              << " hook(s)\n";

    auto requests = receiver.wait_for(1);
    if (requests.empty()) {
        std::cerr << "the receiver got nothing\n";
        return 1;
    }
    const auto& request = requests.front();
    std::string expected_signature = whisperer::whisperer_signature(hook.secret_key, request.body());
    std::string standard = whisperer::standard_signature(hook.secret_key, std::string(request["webhook-id"]),
                                                         std::stoll(std::string(request["webhook-timestamp"])),
                                                         request.body());
    bool signed_ok = request["X-Whisperer-Signature"] == expected_signature && request["webhook-signature"] == standard;
    std::cout << "\nthe receiver got:\n"
              << request.method_string() << " " << request.target() << "\n";
    for (const auto& field : request)
        std::cout << field.name_string() << ": " << field.value() << "\n";
    std::cout << "\n" << request.body() << "\n\nsignatures " << (signed_ok ? "valid" : "INVALID") << "\n";

    // 6. A first figure of the cost: many events, one thread.
    constexpr int events = 2000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < events; ++i)
        dispatcher.deliver_event(Package{1000 + i, 49, "order-" + std::to_string(i)}, "package-created");
    auto t1 = std::chrono::steady_clock::now();
    receiver.wait_for(1 + events);
    auto t2 = std::chrono::steady_clock::now();
    using us = std::chrono::duration<double, std::micro>;
    std::cout << "\n" << events << " more events: " << us(t1 - t0).count() / events << " us per deliver_event call, "
              << static_cast<int>(events / std::chrono::duration<double>(t2 - t0).count())
              << " deliveries/s to the local receiver (" << receiver.count() << " received)\n";

    whisperer::set_default_dispatcher(nullptr);
    dispatcher.stop();
    pool.join();
    return signed_ok && receiver.count() == 1 + events ? 0 : 1;
}
