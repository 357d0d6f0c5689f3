// The load of the soak run (scripts/soak): publishes events to a running whisperer-server at a
// fixed rate through its HTTP API, receives their deliveries at receivers that misbehave, and every
// 10 s prints the server's resident memory, open file descriptors, database size and the latency
// of the deliveries that arrived in those 10 s.
//
// Each hook has a receiver of its own (its own origin). A receiver answers 503 to 20 % of the
// requests at random, resets the connection of 0.5 % (RST, no answer), and holds 1 in 20,000
// without ever answering (the server's request timeout ends those). Latency runs from an event's
// scheduled publishing slot to the first 2xx delivery of it to a hook, so retries count in full.
//
// Usage: whisperer_soak_driver --url http://127.0.0.1:PORT --admin-token T --publisher-token T
//                              --pid PID --db FILE [--minutes M] [--rate R] [--hooks H]
// Prints one line per sample, then a summary; exits 1 when acknowledged events were still
// missing at a hook 120 s after publishing stopped, or when a publish failed without an answer.

#include <boost/asio/connect.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view event_type = "soak.event";
constexpr unsigned publishers = 4;

struct Settings {
    std::string host = "127.0.0.1";
    std::string port;
    std::string admin_token;
    std::string publisher_token;
    int pid = 0;
    std::string db;
    double minutes = 30;
    double rate = 1000;
    unsigned hooks = 2;
};

Settings parse_arguments(int argc, char** argv)
{
    Settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view name = argv[i];
        const std::string value = argv[i + 1];
        if (name == "--url") {
            const std::string_view rest = std::string_view(value).substr(value.find("://") + 3);
            s.host = std::string(rest.substr(0, rest.find(':')));
            s.port = std::string(rest.substr(rest.find(':') + 1));
            s.port = s.port.substr(0, s.port.find('/'));
        } else if (name == "--admin-token")
            s.admin_token = value;
        else if (name == "--publisher-token")
            s.publisher_token = value;
        else if (name == "--pid")
            s.pid = std::stoi(value);
        else if (name == "--db")
            s.db = value;
        else if (name == "--minutes")
            s.minutes = std::stod(value);
        else if (name == "--rate")
            s.rate = std::stod(value);
        else if (name == "--hooks")
            s.hooks = static_cast<unsigned>(std::stoul(value));
        else
            throw std::invalid_argument("unknown option " + std::string(name));
    }
    if (s.port.empty() || s.admin_token.empty() || s.publisher_token.empty() || s.pid == 0 || s.db.empty())
        throw std::invalid_argument("--url, --admin-token, --publisher-token, --pid and --db are required");
    return s;
}

/// What arrived, per event and hook: the steady-clock time of the first 2xx delivery, or 0.
class Arrivals {
public:
    Arrivals(std::size_t events, unsigned hooks) : hooks_(hooks), first_(events * hooks) {}

    /// Records a 2xx delivery of `seq` to `hook` at `at`.
    void delivered(std::size_t seq, unsigned hook, SteadyClock::time_point at)
    {
        if (seq * hooks_ + hook >= first_.size())
            return;
        std::int64_t none = 0;
        if (first_[seq * hooks_ + hook].compare_exchange_strong(none, at.time_since_epoch().count())) {
            std::lock_guard lock(mutex_);
            window_.push_back({seq, at});
            ++total_;
        }
    }

    /// The deliveries that arrived since the last call: (seq, when).
    std::vector<std::pair<std::size_t, SteadyClock::time_point>> take_window()
    {
        std::lock_guard lock(mutex_);
        return std::exchange(window_, {});
    }

    std::uint64_t total() const
    {
        std::lock_guard lock(mutex_);
        return total_;
    }

    /// Deliveries of the first `events` events that never arrived.
    std::size_t missing(std::size_t events) const
    {
        std::size_t n = 0;
        for (std::size_t i = 0; i < std::min(events * hooks_, first_.size()); ++i)
            n += first_[i].load() == 0;
        return n;
    }

private:
    unsigned hooks_;
    std::vector<std::atomic<std::int64_t>> first_;
    mutable std::mutex mutex_;
    std::vector<std::pair<std::size_t, SteadyClock::time_point>> window_;
    std::uint64_t total_ = 0;
};

std::optional<std::size_t> sequence_of(std::string_view body)
{
    constexpr std::string_view key = "\"seq\":";
    const auto at = body.find(key);
    if (at == std::string_view::npos)
        return std::nullopt;
    std::size_t seq = 0;
    if (std::from_chars(body.data() + at + key.size(), body.data() + body.size(), seq).ec != std::errc{})
        return std::nullopt;
    return seq;
}

/// The misbehaving receivers, one listening socket per hook, served by one thread.
class Receivers {
public:
    Receivers(unsigned hooks, Arrivals& arrivals) : arrivals_(arrivals)
    {
        for (unsigned h = 0; h < hooks; ++h)
            acceptors_.emplace_back(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
        for (unsigned h = 0; h < hooks; ++h)
            asio::co_spawn(io_, accept_loop(h), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }

    ~Receivers()
    {
        io_.stop();
        thread_.join();
    }

    std::string url(unsigned hook) const
    {
        return "http://127.0.0.1:" + std::to_string(acceptors_[hook].local_endpoint().port()) + "/";
    }

    std::uint64_t failed() const { return failed_; }
    std::uint64_t resets() const { return resets_; }
    std::uint64_t stalls() const { return stalls_; }

private:
    asio::awaitable<void> accept_loop(unsigned hook)
    {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket =
                co_await acceptors_[hook].async_accept(asio::redirect_error(asio::use_awaitable, ec));
            if (ec == asio::error::operation_aborted)
                co_return;
            if (!ec)
                asio::co_spawn(io_, serve(hook, beast::tcp_stream(std::move(socket))), asio::detached);
        }
    }

    asio::awaitable<void> serve(unsigned hook, beast::tcp_stream stream)
    {
        boost::system::error_code ec;
        auto token = asio::redirect_error(asio::use_awaitable, ec);
        beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> request;
            co_await http::async_read(stream, buffer, request, token);
            if (ec)
                co_return;
            const unsigned roll = fault_(random_);
            if (roll < 5) { // 0.5 %: reset the connection without answering.
                ++resets_;
                stream.socket().set_option(tcp::socket::linger(true, 0), ec);
                stream.socket().close(ec);
                co_return;
            }
            if (roll < 6 && stall_(random_) == 0) { // 1 in 20,000: hold it, never answer.
                ++stalls_;
                asio::steady_timer hold(co_await asio::this_coro::executor, 10min);
                co_await hold.async_wait(token);
                co_return;
            }
            http::response<http::string_body> response;
            response.version(11);
            response.keep_alive(request.keep_alive());
            if (roll < 206) { // 20 %: 503.
                ++failed_;
                response.result(http::status::service_unavailable);
            } else {
                response.result(http::status::ok);
                if (auto seq = sequence_of(request.body()))
                    arrivals_.delivered(*seq, hook, SteadyClock::now());
            }
            response.prepare_payload();
            co_await http::async_write(stream, response, token);
            if (ec || !request.keep_alive())
                co_return;
        }
    }

    Arrivals& arrivals_;
    asio::io_context io_{1};
    std::vector<tcp::acceptor> acceptors_;
    std::minstd_rand random_{std::random_device{}()};
    std::uniform_int_distribution<unsigned> fault_{0, 999};
    std::uniform_int_distribution<unsigned> stall_{0, 19};
    std::atomic<std::uint64_t> failed_{0}, resets_{0}, stalls_{0};
    std::thread thread_;
};

/// A keep-alive HTTP client to whisperer-server, one request at a time.
class ApiClient {
public:
    explicit ApiClient(const Settings& settings) : settings_(settings), socket_(io_) {}

    /// Sends `body` to `path` with `token`; returns the status and the response body.
    std::pair<int, std::string> post(const std::string& path, const std::string& token, const std::string& body)
    {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!socket_.is_open()) {
                    tcp::resolver resolver(io_);
                    asio::connect(socket_, resolver.resolve(settings_.host, settings_.port));
                }
                http::request<http::string_body> request{http::verb::post, path, 11};
                request.set(http::field::host, settings_.host);
                request.set(http::field::authorization, "Token " + token);
                request.set(http::field::content_type, "application/json");
                request.keep_alive(true);
                request.body() = body;
                request.prepare_payload();
                http::write(socket_, request);
                http::response<http::string_body> response;
                http::read(socket_, buffer_, response);
                if (!response.keep_alive())
                    socket_.close();
                return {response.result_int(), response.body()};
            } catch (const boost::system::system_error&) {
                boost::system::error_code ignored;
                socket_.close(ignored);
                buffer_.clear();
                if (attempt > 0)
                    throw; // A kept-alive connection the server closed is tried once more.
            }
        }
    }

private:
    const Settings& settings_;
    asio::io_context io_;
    tcp::socket socket_;
    beast::flat_buffer buffer_;
};

long status_kb(int pid, std::string_view field)
{
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);)
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':')
            return std::stol(line.substr(field.size() + 1));
    return -1;
}

long open_fds(int pid)
{
    std::error_code ec;
    long n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

/// The database with its log and the event journal beside it, in MB.
double database_mb(const std::string& db)
{
    const std::filesystem::path path(db);
    std::uintmax_t bytes = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path.parent_path(), ec))
        if (entry.path().filename().string().starts_with(path.filename().string()))
            bytes += entry.file_size(ec);
    return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

double percentile(std::vector<double>& sample, double p)
{
    if (sample.empty())
        return 0;
    std::sort(sample.begin(), sample.end());
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sample.size())));
    return sample[std::clamp<std::size_t>(rank, 1, sample.size()) - 1];
}

} // namespace

int main(int argc, char** argv)
{
    try {
        const Settings settings = parse_arguments(argc, argv);
        const auto events = static_cast<std::size_t>(settings.rate * settings.minutes * 60);
        Arrivals arrivals(events, settings.hooks);
        Receivers receivers(settings.hooks, arrivals);
        {
            ApiClient admin(settings);
            for (unsigned h = 0; h < settings.hooks; ++h) {
                const json::object hook{
                    {"event_type", event_type},
                    {"target_url", receivers.url(h)},
                    {"secret_key", "soak-secret"},
                    {"retry_countdown_config", {{"choice", "fixed"}, {"kwargs", {{"seconds", 1}}}}}};
                auto [status, body] = admin.post("/whisperer/hooks/", settings.admin_token, json::serialize(hook));
                if (status != 201)
                    throw std::runtime_error("creating a hook answered " + std::to_string(status) + ": " + body);
            }
        }

        const auto period = std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(1.0 / settings.rate));
        const auto start = SteadyClock::now() + 100ms;
        auto slot_of = [&](std::size_t seq) { return start + period * static_cast<long>(seq); };
        std::atomic<std::uint64_t> acked{0}, refused{0};
        std::atomic<bool> broken{false};
        std::vector<std::thread> threads;
        for (unsigned p = 0; p < publishers; ++p) {
            threads.emplace_back([&, p] {
                ApiClient client(settings);
                for (std::size_t seq = p; seq < events && !broken; seq += publishers) {
                    std::this_thread::sleep_until(slot_of(seq));
                    try {
                        const std::string body =
                            R"({"event_type":"soak.event","data":{"seq":)" + std::to_string(seq) + "}}";
                        auto [status, text] = client.post("/whisperer/events/", settings.publisher_token, body);
                        (status == 202 ? acked : refused)++;
                    } catch (const std::exception& e) {
                        std::cerr << "soak: publishing event " << seq << " failed without an answer: " << e.what()
                                  << "\n";
                        broken = true;
                    }
                }
            });
        }

        std::printf("%8s %10s %10s %8s %6s %9s %9s %9s\n", "time_s", "published", "delivered", "rss_mb", "fds",
                    "db_mb", "p50_ms", "p99_ms");
        const auto end = start + period * static_cast<long>(events);
        auto next_sample = start + 10s;
        std::vector<double> all_p99;
        while (SteadyClock::now() < end + 10s && !broken) {
            std::this_thread::sleep_until(next_sample);
            next_sample += 10s;
            std::vector<double> ms;
            for (const auto& [seq, at] : arrivals.take_window())
                ms.push_back(std::chrono::duration<double, std::milli>(at - slot_of(seq)).count());
            const double p50 = percentile(ms, 0.50), p99 = percentile(ms, 0.99);
            all_p99.push_back(p99);
            std::printf("%8.0f %10llu %10llu %8.1f %6ld %9.1f %9.1f %9.1f\n",
                        std::chrono::duration<double>(SteadyClock::now() - start).count(),
                        static_cast<unsigned long long>(acked.load()),
                        static_cast<unsigned long long>(arrivals.total()),
                        static_cast<double>(status_kb(settings.pid, "VmRSS")) / 1024, open_fds(settings.pid),
                        database_mb(settings.db), p50, p99);
            std::fflush(stdout);
            if (status_kb(settings.pid, "VmRSS") < 0) {
                std::cerr << "soak: whisperer-server is gone\n";
                broken = true;
            }
        }
        for (auto& t : threads)
            t.join();

        // Everything acknowledged must arrive; retries of the last events take a few seconds.
        const auto drain_deadline = SteadyClock::now() + 120s;
        while (arrivals.missing(events) > 0 && SteadyClock::now() < drain_deadline && !broken)
            std::this_thread::sleep_for(500ms);
        const std::size_t missing = arrivals.missing(events);
        std::printf("soak: %zu events scheduled, %llu acknowledged, %llu refused; %llu deliveries arrived, %zu "
                    "missing; receivers answered 503 %llu times, reset %llu connections, stalled %llu\n",
                    events, static_cast<unsigned long long>(acked.load()),
                    static_cast<unsigned long long>(refused.load()),
                    static_cast<unsigned long long>(arrivals.total()), missing,
                    static_cast<unsigned long long>(receivers.failed()),
                    static_cast<unsigned long long>(receivers.resets()),
                    static_cast<unsigned long long>(receivers.stalls()));
        const bool complete = acked.load() == events && missing == 0;
        return broken || !complete ? 1 : 0;
    } catch (const std::exception& e) {
        std::cerr << "soak: " << e.what() << "\n";
        return 2;
    }
}
