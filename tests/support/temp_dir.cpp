#include "temp_dir.hpp"

#include <stdexcept>
#include <stdlib.h>

namespace whisperer::test {

TempDir::TempDir()
{
    std::string pattern = (std::filesystem::temp_directory_path() / "whisperer-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
        throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
}

TempDir::~TempDir()
{
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

} // namespace whisperer::test
