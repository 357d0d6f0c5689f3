// The webhook receiver of the crash test: verifies every POST on 127.0.0.1 and appends one line
// "<path> <webhook-id> <seq>" per acknowledged request to a record file, before answering 200.
//
// A request is acknowledged only when its Standard Webhooks signature verifies with the hooks'
// secret, and its body is byte for byte the envelope the chaos host publishes for the event of
// that `webhook-id` and sequence number: {"event":{"type":"chaos.event","uuid":<webhook-id>},
// "data":{"seq":<seq>}}. scripts/chaos then checks that the host acknowledged that uuid with that
// sequence number. Any other request is answered 400 and described by one line in the refusal
// file; scripts/chaos fails the run when that file is not empty.
//
// It is never killed during a run, so each line is written with one write() and no fsync: the
// checker reads the files after the receiver has stopped. Requests answered with a fault (the
// --fail-percent share gets 503) are not recorded, since the sender must try them again.
//
// Usage: whisperer_chaos_receiver --record FILE --refused FILE --port-file FILE [--fail-percent P]
// Runs until SIGINT or SIGTERM; the port is written to the port file once listening.

#include <whisperer/envelope.hpp>
#include <whisperer/verify.hpp>

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
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
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

constexpr std::string_view event_type = "chaos.event";
const std::string hook_secret = "chaos-secret"; // chaos_host.cpp gives every hook this secret.

struct Settings {
    std::string record;
    std::string refused;
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
        else if (name == "--refused")
            s.refused = value;
        else if (name == "--port-file")
            s.port_file = value;
        else if (name == "--fail-percent")
            s.fail_percent = static_cast<unsigned>(std::stoul(value));
        else
            throw std::invalid_argument("unknown option " + std::string(name));
    }
    if (s.record.empty() || s.refused.empty() || s.port_file.empty())
        throw std::invalid_argument("--record, --refused and --port-file are required");
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

/// Why a request is not what the chaos host sent, or empty when it is; sets `seq` then.
std::string refusal(const http::request<http::string_body>& request, std::uint64_t& seq)
{
    const whisperer::HeaderLookup headers = [&](std::string_view name) -> std::optional<std::string_view> {
        const auto field = request.find(name);
        if (field == request.end())
            return std::nullopt;
        return field->value();
    };
    const whisperer::VerifyResult verified =
        whisperer::verify_webhook(headers, request.body(), std::span(&hook_secret, 1), {});
    if (!verified || verified.scheme != whisperer::SignatureScheme::standard_webhooks)
        return "signature: " + verified.reason;
    const std::string id(request["webhook-id"]);
    if (!whisperer::is_event_uuid(id))
        return "webhook-id '" + id + "' is not an event uuid";
    boost::system::error_code ec;
    const boost::json::value body = boost::json::parse(request.body(), ec);
    const boost::json::value* seq_value = ec ? nullptr : body.find_pointer("/data/seq", ec);
    if (seq_value == nullptr || !seq_value->is_number())
        return "body of " + id + " has no data.seq";
    seq = seq_value->to_number<std::uint64_t>(ec);
    if (ec)
        return "body of " + id + " has a data.seq that is not a sequence number";
    const std::string expected = boost::json::serialize(
        whisperer::make_envelope(event_type, id, boost::json::object{{"seq", seq}}, whisperer::DataKey::data));
    if (request.body() != expected)
        return "body of " + id + " is not the event the host published: " + request.body().substr(0, 200);
    return {};
}

/// A sequence number as the fixed-width field of a record line (chaos_host.cpp writes the same).
std::string seq_field(std::uint64_t seq)
{
    std::string digits = std::to_string(seq);
    return std::string(digits.size() < 10 ? 10 - digits.size() : 0, '0') + digits;
}

class ChaosReceiver {
public:
    ChaosReceiver(asio::io_context& io, const Settings& settings)
        : io_(io), record_(settings.record), refused_file_(settings.refused), fail_percent_(settings.fail_percent),
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
    std::uint64_t faulted() const noexcept { return faulted_; }
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
            std::uint64_t seq = 0;
            if (fail_percent_ > 0 && fault_(random_) < fail_percent_) {
                ++faulted_;
                response.result(http::status::service_unavailable);
            } else if (const std::string why = refusal(request, seq); !why.empty()) {
                ++refused_;
                refused_file_.append(std::string(request.target()) + " " + why + "\n");
                response.result(http::status::bad_request);
            } else if (!record_.append(std::string(request.target()) + " " + std::string(id) + " " + seq_field(seq) +
                                       "\n")) {
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
    RecordFile refused_file_;
    unsigned fail_percent_;
    std::minstd_rand random_{std::random_device{}()};
    std::uniform_int_distribution<unsigned> fault_{0, 99};
    tcp::acceptor acceptor_;
    std::uint64_t recorded_ = 0;
    std::uint64_t faulted_ = 0;
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
        std::cerr << "chaos receiver: " << receiver.recorded() << " requests recorded, " << receiver.faulted()
                  << " answered 503, " << receiver.refused() << " refused\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "chaos receiver: " << e.what() << "\n";
        return 2;
    }
}
