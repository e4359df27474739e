#include "core/atomic_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace kindred {

namespace {

// Owns the temporary until it is renamed into place; the destructor cleans up on every
// failure path, including an exception from the caller's body.
class Temporary {
public:
    explicit Temporary(const std::string& target) : target_(target), path_(target + ".tmp-XXXXXX") {
        fd_ = ::mkstemp(path_.data());
        if (fd_ < 0) fail("{}: cannot create a temporary file beside it: {}", target_, std::strerror(errno));
    }
    ~Temporary() {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(path_.c_str());
    }
    Temporary(const Temporary&) = delete;
    Temporary& operator=(const Temporary&) = delete;

    void write(std::span<const std::uint8_t> bytes) {
        while (!bytes.empty()) {
            const ssize_t written = ::write(fd_, bytes.data(), bytes.size());
            if (written < 0 && errno == EINTR) continue;
            if (written <= 0) fail("{}: write failed: {}", target_, std::strerror(written < 0 ? errno : EIO));
            bytes = bytes.subspan(static_cast<std::size_t>(written));
        }
    }

    void commit() {
        // mkstemp creates 0600; a checkpoint is an ordinary readable file.
        if (::fchmod(fd_, 0644) != 0 || ::fsync(fd_) != 0) {
            fail("{}: cannot finish writing: {}", target_, std::strerror(errno));
        }
        const int fd = fd_;
        fd_ = -1;
        // close() reports delayed write errors (NFS, quotas); a file that failed them is not whole.
        if (::close(fd) != 0) fail("{}: cannot finish writing: {}", target_, std::strerror(errno));
        if (::rename(path_.c_str(), target_.c_str()) != 0) {
            fail("{}: cannot rename the temporary file into place: {}", target_, std::strerror(errno));
        }
        committed_ = true;
        const std::filesystem::path folder = std::filesystem::path(target_).parent_path();
        fsync_directory(folder.empty() ? "." : folder.string());
    }

private:
    std::string target_;
    std::string path_;
    int fd_ = -1;
    bool committed_ = false;
};

}  // namespace

void fsync_directory(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) fail("{}: cannot open the folder to sync it: {}", path, std::strerror(errno));
    const int result = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (result != 0) fail("{}: cannot sync the folder: {}", path, std::strerror(err));
}

void write_file_atomically(const std::string& path, const std::function<void(const ByteSink&)>& body) {
    Temporary temporary(path);
    body([&](std::span<const std::uint8_t> bytes) { temporary.write(bytes); });
    temporary.commit();
}

void write_file_atomically(const std::string& path, std::span<const std::uint8_t> bytes) {
    write_file_atomically(path, [&](const ByteSink& sink) { sink(bytes); });
}

void write_file_atomically(const std::string& path, std::string_view text) {
    write_file_atomically(path, std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
}

}  // namespace kindred
