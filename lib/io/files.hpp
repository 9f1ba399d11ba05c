// Files as the library reads them: descriptors that close themselves, and
// whole regular files read at once (checkpoints, data sets), and files
// replaced whole (checkpoints, pictures).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include <gradtape/source_location.hpp>

#include <unistd.h>

namespace gradtape::detail {

// A file descriptor closed when it goes out of scope.
class descriptor {
public:
    explicit descriptor(int fd) : fd_(fd) {}
    ~descriptor()
    {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    descriptor(const descriptor&) = delete;
    descriptor& operator=(const descriptor&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    // Closes now, reporting the error that a deferred write may show only here.
    bool close()
    {
        const int fd = std::exchange(fd_, -1);
        return ::close(fd) == 0;
    }

private:
    int fd_;
};

// The whole of a regular file, its size known before reading: a directory, a
// FIFO (opened without waiting for a writer) or a device (/dev/zero) is
// refused, never read. Failures are argument_errors naming op, path and site.
std::string read_regular_file(std::string_view op, const std::filesystem::path& path, const source_location& site);

// Writes `bytes` as `path` through a new temporary file beside it, created
// exclusively (never through a planted symlink) under a unique name, so that
// concurrent saves cannot meet; the old file's permissions carry over. The
// temporary is gone on every path out; the old file stays whole until the
// rename, which reaches the disk before this returns.
void replace_file(std::string_view op, const std::filesystem::path& path, const std::string& bytes,
                  const source_location& site);

}  // namespace gradtape::detail
