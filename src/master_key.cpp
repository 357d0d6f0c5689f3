#include <whisperer/master_key.hpp>

#include <whisperer/error.hpp>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace whisperer {

namespace {

/// Closes a file descriptor when it goes out of scope.
class FileDescriptor {
public:
    explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
    ~FileDescriptor()
    {
        if (fd_ >= 0)
            ::close(fd_);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    int get() const noexcept { return fd_; }

private:
    int fd_;
};

StoreError key_file_error(const std::string& path, const std::string& what)
{
    return StoreError("master key file '" + path + "': " + what);
}

StoreError key_file_errno(const std::string& path, const std::string& what)
{
    return key_file_error(path, what + ": " + std::strerror(errno));
}

std::string octal_mode(mode_t mode)
{
    char text[8];
    std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
    return text;
}

/// Reads exactly `size` bytes or fails; false on a short file.
bool read_exactly(int fd, unsigned char* out, std::size_t size)
{
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::read(fd, out + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

bool write_all(int fd, const unsigned char* data, std::size_t size)
{
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        done += static_cast<std::size_t>(n);
    }
    return true;
}

/// Makes a created file's directory entry durable, so the key survives a power loss that the
/// secrets it encrypted survive.
void sync_directory_of(const std::string& path)
{
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty())
        dir = ".";
    FileDescriptor fd{::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (fd.get() >= 0)
        ::fsync(fd.get());
}

} // namespace

MasterKey::~MasterKey()
{
    OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

MasterKey MasterKey::from_bytes(std::string_view bytes)
{
    if (bytes.size() != size)
        throw std::invalid_argument("whisperer::MasterKey: a master key has exactly 32 bytes, not " +
                                    std::to_string(bytes.size()));
    MasterKey key;
    std::memcpy(key.bytes_.data(), bytes.data(), size);
    return key;
}

MasterKey MasterKey::generate()
{
    MasterKey key;
    if (RAND_bytes(key.bytes_.data(), static_cast<int>(size)) != 1)
        throw std::runtime_error("whisperer: the system's random generator failed");
    return key;
}

MasterKey MasterKey::from_file(const std::string& path)
{
    // Two passes at most: a file another process creates between our attempt to open it and
    // our attempt to create it is read on the second pass.
    for (int pass = 0; pass < 2; ++pass) {
        // O_NOFOLLOW: whoever can write the directory could otherwise point the path at a key of
        // their choosing. Owner and mode are read from the opened file, not the path.
        FileDescriptor fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)};
        if (fd.get() < 0 && errno == ELOOP)
            throw key_file_error(path, "is a symbolic link; give the path of the key file itself");
        if (fd.get() >= 0) {
            struct stat st {};
            if (::fstat(fd.get(), &st) != 0)
                throw key_file_errno(path, "cannot read its mode");
            if (!S_ISREG(st.st_mode))
                throw key_file_error(path, "is not a regular file");
            if (st.st_uid != ::geteuid())
                throw key_file_error(path, "is owned by user id " + std::to_string(st.st_uid) +
                                               ", not by the user running this process (" +
                                               std::to_string(::geteuid()) + "); chown it to that user");
            if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
                throw key_file_error(path, "is accessible by group or others (mode " + octal_mode(st.st_mode) +
                                               "); it must be readable by its owner only: chmod 600 '" + path +
                                               "'");
            if (st.st_size != static_cast<off_t>(size))
                throw key_file_error(path, "must hold exactly 32 bytes, it holds " +
                                               std::to_string(static_cast<long long>(st.st_size)));
            MasterKey key;
            if (!read_exactly(fd.get(), key.bytes_.data(), size))
                throw key_file_errno(path, "cannot read 32 bytes");
            return key;
        }
        if (errno != ENOENT)
            throw key_file_errno(path, "cannot open");

        // Written in full under a temporary name, then linked into place: no reader ever sees
        // a partial key, and of two processes creating it at once only one wins.
        MasterKey key = generate();
        std::string temporary = path + ".XXXXXX";
        FileDescriptor out{::mkstemp(temporary.data())};
        if (out.get() < 0)
            throw key_file_errno(path, "cannot create");
        bool linked = false;
        int link_errno = 0;
        if (::fchmod(out.get(), S_IRUSR | S_IWUSR) == 0 && write_all(out.get(), key.bytes_.data(), size) &&
            ::fsync(out.get()) == 0) {
            linked = ::link(temporary.c_str(), path.c_str()) == 0;
            link_errno = linked ? 0 : errno;
        } else {
            link_errno = errno;
        }
        ::unlink(temporary.c_str());
        if (linked) {
            sync_directory_of(path);
            return key;
        }
        if (link_errno != EEXIST) {
            errno = link_errno;
            throw key_file_errno(path, "cannot create");
        }
    }
    throw key_file_error(path, "appeared and vanished while it was being read");
}

} // namespace whisperer
