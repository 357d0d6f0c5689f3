// The PostgreSQL server the PostgreSQL tests run against: started by scripts/postgres (a CTest
// fixture), named by the file in WHISPERER_TEST_POSTGRES_URI_FILE.
#ifndef WHISPERER_TESTS_POSTGRES_SERVER_HPP
#define WHISPERER_TESTS_POSTGRES_SERVER_HPP

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

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

/// A schema name no other test (or test process) uses, so tests share one database.
inline std::string unique_postgres_schema()
{
    static std::atomic<int> next{0};
    return "test_" + std::to_string(::getpid()) + "_" + std::to_string(next++);
}

} // namespace whisperer::test

#endif
