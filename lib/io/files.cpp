#include "io/files.hpp"

#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>

#include <gradtape/error.hpp>

#include "core/diagnostics.hpp"

namespace gradtape::detail {

std::string read_regular_file(std::string_view op, const std::filesystem::path& path, const source_location& site)
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

namespace {

void sync_directory(const std::filesystem::path& directory)
{
    detail::descriptor handle(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (handle.get() >= 0) {
        ::fsync(handle.get());
    }
}

}  // namespace

void replace_file(std::string_view op, const std::filesystem::path& path, const std::string& bytes,
                  const source_location& site)
{
    const auto refuse = [&](const std::string& what) {
        fail<argument_error>(op, site, what + ": " + std::strerror(errno));
    };
    const std::filesystem::path directory = path.has_parent_path() ? path.parent_path() : ".";
    std::random_device entropy;
    std::filesystem::path temporary;
    int fd = -1;
    for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
        temporary = directory / ("." + path.filename().string() + "." + std::to_string(entropy()) + ".partial");
        fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) {
            refuse("cannot create a temporary file in '" + directory.string() + "'");
        }
    }
    if (fd < 0) {
        refuse("cannot create a temporary file in '" + directory.string() + "'");
    }
    detail::descriptor file(fd);
    struct remove_unless_renamed {
        const std::filesystem::path& temporary;
        bool renamed = false;
        ~remove_unless_renamed()
        {
            if (!renamed) {
                ::unlink(temporary.c_str());
            }
        }
    } cleanup{temporary};

    struct stat old {};
    if (::stat(path.c_str(), &old) == 0 && S_ISREG(old.st_mode) && ::fchmod(file.get(), old.st_mode & 07777) != 0) {
        refuse("cannot give '" + temporary.string() + "' the permissions of '" + path.string() + "'");
    }
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t wrote = ::write(file.get(), bytes.data() + done, bytes.size() - done);
        if (wrote < 0 && errno == EINTR) {
            continue;
        }
        if (wrote <= 0) {
            refuse("cannot write '" + temporary.string() + "'");
        }
        done += std::size_t(wrote);
    }
    // The bytes reach the disk before the rename makes them the checkpoint,
    // and the rename reaches it before save_checkpoint returns.
    if (::fsync(file.get()) != 0 || !file.close()) {
        refuse("cannot write '" + temporary.string() + "'");
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        refuse("cannot replace '" + path.string() + "'");
    }
    cleanup.renamed = true;
    sync_directory(directory);
}

}  // namespace gradtape::detail
