// The webhook receiver of the crash test: answers every POST on 127.0.0.1 and appends one line
// "<path> <webhook-id>" per acknowledged request to a record file, before answering 200.
//
// It is never killed during a run, so each line is written with one write() and no fsync: the
// checker reads the file after the receiver has stopped. Requests answered with a fault (the
// --fail-percent share gets 503) are not recorded, since the sender must try them again.
//
// Usage: whisperer_chaos_receiver --record FILE --port-file FILE [--fail-percent P]
// Runs until SIGINT or SIGTERM; the port is written to the port file once listening.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

struct Settings {
    std::string record;
    std::string port_file;
    unsigned fail_percent = 0;
};

Settings parse_arguments(int argc, char** argv)
{
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string_view name = argv[i];
        std::string value = argv[i + 1];
        if (name == "--record")
            s.record = value;
        else if (name == "--port-file")
            s.port_file = value;
        else if (name == "--fail-percent")
            s.fail_percent = static_cast<unsigned>(std::stoul(value));
        else
            throw std::invalid_argument("unknown option " + std::string(name));
    }
    if (s.record.empty() || s.port_file.empty())
        throw std::invalid_argument("--record and --port-file are required");
    return s;
}

/// Appends whole lines to the record file, one write() each (O_APPEND).
class RecordFile {
public:
    explicit RecordFile(const std::string& path) : fd_(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644))
    {
        if (fd_ < 0)
            throw std::runtime_error("cannot open " + path);
    }
    ~RecordFile() { ::close(fd_); }
    RecordFile(const RecordFile&) = delete;
    RecordFile& operator=(const RecordFile&) = delete;

    bool append(std::string_view line) const
    {
        return ::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    }

private:
    int fd_;
};

class ChaosReceiver {
public:
    ChaosReceiver(asio::io_context& io, const Settings& settings)
        : io_(io), record_(settings.record), fail_percent_(settings.fail_percent),
          acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
    {
    }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }

    void start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

    void stop()
    {
        boost::system::error_code ignored;
        acceptor_.close(ignored);
    }

    std::uint64_t recorded() const noexcept { return recorded_; }
    std::uint64_t refused() const noexcept { return refused_; }

private:
    asio::awaitable<void> accept_loop()
    {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                co_return;
            if (!ec)
                asio::co_spawn(io_, serve(beast::tcp_stream(std::move(socket))), asio::detached);
        }
    }

    asio::awaitable<void> serve(beast::tcp_stream stream)
    {
        boost::system::error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> request;
            co_await http::async_read(stream, buffer, request, token);
            if (ec)
                co_return;
            http::response<http::string_body> response;
            response.version(11);
            response.keep_alive(request.keep_alive());
            const std::string_view id = request["webhook-id"];
            if (fail_percent_ > 0 && fault_(random_) < fail_percent_) {
                ++refused_;
                response.result(http::status::service_unavailable);
            } else if (id.empty() || !record_.append(std::string(request.target()) + " " + std::string(id) + "\n")) {
                response.result(http::status::internal_server_error);
            } else {
                ++recorded_;
                response.result(http::status::ok);
            }
            response.prepare_payload();
            co_await http::async_write(stream, response, token);
            if (ec || !request.keep_alive())
                co_return;
        }
    }

    asio::io_context& io_;
    RecordFile record_;
    unsigned fail_percent_;
    std::minstd_rand random_{std::random_device{}()};
    std::uniform_int_distribution<unsigned> fault_{0, 99};
    tcp::acceptor acceptor_;
    std::uint64_t recorded_ = 0;
    std::uint64_t refused_ = 0;
};

} // namespace

int main(int argc, char** argv)
{
    try {
        const Settings settings = parse_arguments(argc, argv);
        asio::io_context io{1};
        ChaosReceiver receiver(io, settings);
        receiver.start();

        // Published by rename, so that a reader never sees a half-written port.
        const std::string partial = settings.port_file + ".partial";
        std::ofstream(partial) << receiver.port() << "\n";
        std::filesystem::rename(partial, settings.port_file);

        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](boost::system::error_code, int) {
            receiver.stop();
            io.stop();
        });
        io.run();
        std::cerr << "chaos receiver: " << receiver.recorded() << " requests recorded, " << receiver.refused()
                  << " answered 503\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "chaos receiver: " << e.what() << "\n";
        return 2;
    }
}
