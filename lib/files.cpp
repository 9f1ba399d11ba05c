#include "files.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>

#include <gradtape/error.hpp>

#include "diagnostics.hpp"

namespace gradtape::detail {

std::string read_regular_file(std::string_view op, const std::filesystem::path& path, const std::source_location& site)
{
    // O_NONBLOCK: opening a FIFO must not wait for a writer.
    descriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (file.get() < 0) {
        fail<argument_error>(op, site, "cannot open '" + path.string() + "': " + std::strerror(errno));
    }
    struct stat status {};
    if (::fstat(file.get(), &status) != 0 || !S_ISREG(status.st_mode)) {
        fail<argument_error>(op, site, "'" + path.string() + "' is not a regular file");
    }
    std::string bytes(std::size_t(status.st_size), '\0');
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t got = ::read(file.get(), bytes.data() + done, bytes.size() - done);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            fail<argument_error>(op, site,
                                 "cannot read '" + path.string() + "'" +
                                     (got < 0 ? ": " + std::string(std::strerror(errno)) : " (it shrank while read)"));
        }
        done += std::size_t(got);
    }
    return bytes;
}

}  // namespace gradtape::detail
