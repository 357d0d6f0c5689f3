// MasterKey: raw keys and key files (created on first use with mode 0600, refused when exposed).

#include <whisperer/error.hpp>
#include <whisperer/master_key.hpp>

#include "catch.hpp"
#include "temp_dir.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace whisperer;
using namespace whisperer::test;

namespace {

std::string bytes_of(const MasterKey& key)
{
    return {reinterpret_cast<const char*>(key.bytes().data()), key.bytes().size()};
}

void write_file(const std::string& path, const std::string& bytes, mode_t mode)
{
    {
        std::ofstream out{path, std::ios::binary | std::ios::trunc};
        out << bytes;
        REQUIRE(out.good());
    }
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

/// The message of the StoreError that reading the key file at `path` throws, or "" if none.
std::string refusal(const std::string& path)
{
    try {
        MasterKey::from_file(path);
    } catch (const StoreError& e) {
        return e.what();
    }
    return "";
}

} // namespace

TEST_CASE("a master key has exactly 32 bytes", "[master_key]")
{
    const std::string raw(32, 'k');
    CHECK(bytes_of(MasterKey::from_bytes(raw)) == raw);
    CHECK_THROWS_AS(MasterKey::from_bytes(std::string(31, 'k')), std::invalid_argument);
    CHECK_THROWS_AS(MasterKey::from_bytes(std::string(33, 'k')), std::invalid_argument);
    CHECK_THROWS_AS(MasterKey::from_bytes(""), std::invalid_argument);
    CHECK(bytes_of(MasterKey::generate()) != bytes_of(MasterKey::generate()));
}

TEST_CASE("a missing key file is created with 32 random bytes and mode 0600, then read back", "[master_key]")
{
    TempDir dir;
    const std::string path = dir.file("master.key");
    REQUIRE_FALSE(std::filesystem::exists(path));

    const MasterKey created = MasterKey::from_file(path);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK((st.st_mode & 07777) == 0600);
    CHECK(st.st_size == 32);
    CHECK(bytes_of(MasterKey::from_file(path)) == bytes_of(created));
    CHECK(bytes_of(created) != std::string(32, '\0'));

    // Nothing is left behind but the key file itself.
    CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()) == 1);
    CHECK(bytes_of(MasterKey::from_file(dir.file("other.key"))) != bytes_of(created));
}

TEST_CASE("a key file that group or others may access is refused, naming the file and its mode",
          "[master_key]")
{
    TempDir dir;
    const std::string path = dir.file("master.key");
    for (mode_t mode : {0640, 0604, 0620, 0602, 0660, 0644, 0666, 0610}) {
        INFO("mode " << std::oct << mode);
        write_file(path, std::string(32, 'k'), mode);
        const std::string message = refusal(path);
        CHECK(message.find(path) != std::string::npos);
        CHECK(message.find("group or others") != std::string::npos);
        CHECK(message.find("chmod 600") != std::string::npos);
    }
    write_file(path, std::string(32, 'k'), 0400);
    CHECK(bytes_of(MasterKey::from_file(path)) == std::string(32, 'k'));
    write_file(path, std::string(32, 'k'), 0600);
    CHECK(refusal(path).empty());
}

TEST_CASE("a key file of the wrong size is refused and left as it is", "[master_key]")
{
    TempDir dir;
    const std::string path = dir.file("master.key");
    for (std::size_t size : {0, 16, 31, 33, 64}) {
        INFO(size << " bytes");
        write_file(path, std::string(size, 'k'), 0600);
        const std::string message = refusal(path);
        CHECK(message.find("exactly 32 bytes") != std::string::npos);
        CHECK(message.find("holds " + std::to_string(size)) != std::string::npos);
        CHECK(std::filesystem::file_size(path) == size);
    }
}

TEST_CASE("a directory is no key file, and none is created in a missing directory", "[master_key]")
{
    TempDir dir;
    CHECK(refusal(dir.path().string()).find("not a regular file") != std::string::npos);
    const std::string nowhere = dir.file("missing/master.key");
    CHECK(refusal(nowhere).find("cannot create") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "missing"));
}

TEST_CASE("a key file reached through a symbolic link is refused, and none is created at its target",
          "[master_key]")
{
    TempDir dir;
    const std::string real = dir.file("real.key");
    write_file(real, std::string(32, 'k'), 0600);
    const std::string link = dir.file("master.key");
    std::filesystem::create_symlink(real, link);
    const std::string message = refusal(link);
    CHECK(message.find(link) != std::string::npos);
    CHECK(message.find("symbolic link") != std::string::npos);

    // A dangling link is not followed to create a key where it points.
    const std::string dangling = dir.file("dangling.key");
    std::filesystem::create_symlink(dir.file("planted.key"), dangling);
    CHECK(refusal(dangling).find("symbolic link") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "planted.key"));
    CHECK(bytes_of(MasterKey::from_file(real)) == std::string(32, 'k'));
}

TEST_CASE("a key file owned by another user is refused", "[master_key]")
{
    if (::geteuid() != 0) {
        WARN("not run: giving a file to another user needs root");
        return;
    }
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    TempDir dir;
    const std::string path = dir.file("master.key");
    write_file(path, std::string(32, 'k'), 0600);
    REQUIRE(::chown(path.c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
    const std::string message = refusal(path);
    CHECK(message.find(path) != std::string::npos);
    CHECK(message.find("owned by user id " + std::to_string(nobody->pw_uid)) != std::string::npos);
    REQUIRE(::chown(path.c_str(), ::geteuid(), ::getegid()) == 0);
    CHECK(refusal(path).empty());
}
