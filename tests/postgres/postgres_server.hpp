// The PostgreSQL server the PostgreSQL tests run against: started by scripts/postgres (a CTest
// fixture), named by the file in WHISPERER_TEST_POSTGRES_URI_FILE.
#ifndef WHISPERER_TESTS_POSTGRES_SERVER_HPP
#define WHISPERER_TESTS_POSTGRES_SERVER_HPP

#include <atomic>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include <stdlib.h>
#include <unistd.h>

namespace whisperer::test {

/// The connection URI of the test server. Throws when the fixture did not start one.
inline std::string postgres_uri()
{
    const char* file = std::getenv("WHISPERER_TEST_POSTGRES_URI_FILE");
    if (!file)
        throw std::runtime_error("WHISPERER_TEST_POSTGRES_URI_FILE is not set: run the PostgreSQL tests through ctest");
    std::ifstream in{file};
    std::string uri;
    if (!std::getline(in, uri) || uri.empty())
        throw std::runtime_error(std::string("no PostgreSQL URI in ") + file);
    return uri;
}

/// A PostgreSQL server of the test's own, for tests that restart or stop it (the shared one must
/// stay up for the other tests). Started by scripts/postgres in a temporary directory.
class PrivatePostgresServer {
public:
    PrivatePostgresServer() : dir_(make_dir())
    {
        run("start");
        std::ifstream in{dir_ + "/pg/uri"};
        std::getline(in, uri_);
    }
    ~PrivatePostgresServer()
    {
        run("stop");
        std::filesystem::remove_all(dir_);
    }
    PrivatePostgresServer(const PrivatePostgresServer&) = delete;
    PrivatePostgresServer& operator=(const PrivatePostgresServer&) = delete;

    const std::string& uri() const noexcept { return uri_; }
    /// A fast shutdown and a start on the same port: every connection is cut.
    void restart() { run("restart"); }

private:
    static std::string make_dir()
    {
        std::string pattern = (std::filesystem::temp_directory_path() / "whisperer-pg.XXXXXX").string();
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("cannot create a temporary directory");
        return pattern;
    }
    void run(const char* command) const
    {
        const std::string line = std::string(WHISPERER_SOURCE_DIR "/scripts/postgres ") + command + " " + dir_ +
                                 "/pg" + (std::string(command) == "start" ? " -c fsync=off" : "") + " >/dev/null";
        if (std::system(line.c_str()) != 0 && std::string(command) != "stop")
            throw std::runtime_error("scripts/postgres " + std::string(command) + " failed");
    }

    std::string dir_;
    std::string uri_;
};

/// A schema name no other test (or test process) uses, so tests share one database.
inline std::string unique_postgres_schema()
{
    static std::atomic<int> next{0};
    return "test_" + std::to_string(::getpid()) + "_" + std::to_string(next++);
}

} // namespace whisperer::test

#endif
