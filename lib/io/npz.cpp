#include "io/npz.hpp"

#include <zip.h>

#include "io/files.hpp"

namespace gradtape::detail {

namespace {

struct zip_file_deleter {
    void operator()(zip_file_t* file) const { zip_fclose(file); }
};

// The .npz archive of `files` (name, contents), stored uncompressed as numpy.savez does.
std::string zip_archive(const std::vector<std::pair<std::string, std::string>>& files,
                        const source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>("save_checkpoint", site, "cannot build the archive: " + why);
    };
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* buffer = zip_source_buffer_create(nullptr, 0, 0, &error);
    if (!buffer) {
        refuse(zip_error_strerror(&error));
    }
    // Kept past zip_close, which writes the archive into it.
    zip_source_keep(buffer);
    const std::unique_ptr<zip_source_t, decltype(&zip_source_free)> written(buffer, zip_source_free);
    std::unique_ptr<zip_t, decltype(&zip_discard)> archive(zip_open_from_source(buffer, ZIP_TRUNCATE, &error),
                                                         zip_discard);
    if (!archive) {
        zip_source_free(buffer);
        refuse(zip_error_strerror(&error));
    }
    zip_error_fini(&error);
    for (const auto& [name, contents] : files) {
        zip_source_t* data = zip_source_buffer(archive.get(), contents.data(), contents.size(), 0);
        const zip_int64_t index = data ? zip_file_add(archive.get(), name.c_str(), data, ZIP_FL_ENC_UTF_8) : -1;
        if (index < 0) {
            if (data) {
                zip_source_free(data);
            }
            refuse("'" + name + "': " + zip_strerror(archive.get()));
        }
        // Fixed times keep a save of the same values byte for byte the same.
        if (zip_set_file_compression(archive.get(), zip_uint64_t(index), ZIP_CM_STORE, 0) != 0 ||
            zip_file_set_mtime(archive.get(), zip_uint64_t(index), 315532800, 0) != 0) {
            refuse("'" + name + "': " + zip_strerror(archive.get()));
        }
    }
    if (zip_close(archive.get()) != 0) {
        refuse(zip_strerror(archive.get()));
    }
    archive.release();

    zip_stat_t status;
    zip_stat_init(&status);
    if (zip_source_stat(buffer, &status) != 0 || zip_source_open(buffer) != 0) {
        refuse(zip_error_strerror(zip_source_error(buffer)));
    }
    std::string bytes(status.size, '\0');
    const zip_int64_t got = zip_source_read(buffer, bytes.data(), bytes.size());
    zip_source_close(buffer);
    if (got != zip_int64_t(bytes.size())) {
        refuse("the archive could not be read back");
    }
    return bytes;
}

}  // namespace

npz_reader::npz_reader(std::string_view op, const std::filesystem::path& path, const std::string& bytes,
                       const source_location& site)
    : op_(op), path_(path), site_(site)
    {
        if (bytes.empty()) {
            refuse("it is empty");
        }
        zip_error_t error;
        zip_error_init(&error);
        zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
        if (source) {
            archive_ = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
            if (!archive_) {
                zip_source_free(source);
            }
        }
        if (!archive_) {
            const std::string why = zip_error_strerror(&error);
            zip_error_fini(&error);
            refuse(why);
        }
        zip_error_fini(&error);
        const zip_int64_t entries = zip_get_num_entries(archive_, 0);
        std::set<std::string_view> seen;
        for (zip_int64_t i = 0; i < entries; ++i) {
            const char* name = zip_get_name(archive_, zip_uint64_t(i), ZIP_FL_ENC_GUESS);
            if (!name || !seen.insert(name).second) {
                refuse(name ? "it holds two entries named '" + printable(name) + "'" : "an entry has no name");
            }
            names_.emplace_back(name);
        }
    }


npz_reader::~npz_reader()
{
    if (archive_ != nullptr) {
        zip_discard(archive_);
    }
}

std::optional<std::string> npz_reader::entry(const std::string& name)
    {
        const zip_int64_t index = zip_name_locate(archive_, name.c_str(), ZIP_FL_ENC_GUESS);
        if (index < 0) {
            return std::nullopt;
        }
        const std::string quoted = "'" + printable(name) + "'";
        zip_stat_t status;
        zip_stat_init(&status);
        constexpr zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
        if (zip_stat_index(archive_, zip_uint64_t(index), 0, &status) != 0 || (status.valid & needed) != needed) {
            refuse("cannot read the entry " + quoted);
        }
        // What the entry's stored bytes can hold: themselves, or, deflated, at
        // most 1032 bytes for each (deflate's largest ratio). A size claimed
        // beyond that is a lie, refused before anything is allocated.
        if (status.comp_method != ZIP_CM_STORE && status.comp_method != ZIP_CM_DEFLATE) {
            refuse("the entry " + quoted + " is compressed by method " + std::to_string(status.comp_method) +
                   ", not stored or deflated as NumPy writes");
        }
        const zip_uint64_t most =
            status.comp_method == ZIP_CM_STORE ? status.comp_size : status.comp_size * 1032 + 1032;
        if (status.size > most) {
            refuse("the entry " + quoted + " claims " + std::to_string(status.size) + " bytes, more than its " +
                   std::to_string(status.comp_size) + " stored bytes can hold");
        }
        std::unique_ptr<zip_file_t, zip_file_deleter> file(zip_fopen_index(archive_, zip_uint64_t(index), 0));
        if (!file) {
            refuse("cannot open the entry " + quoted + ": " + zip_strerror(archive_));
        }
        // Read as it inflates: the buffer holds what arrives, not what is claimed.
        std::string contents;
        for (;;) {
            const std::size_t done = contents.size();
            contents.resize(done + std::clamp<std::size_t>(done, 1 << 16, 1 << 26));
            const zip_int64_t got = zip_fread(file.get(), contents.data() + done, contents.size() - done);
            if (got < 0) {
                refuse("the entry " + quoted + " is damaged: " + zip_file_strerror(file.get()));
            }
            contents.resize(done + std::size_t(got));
            if (got == 0 || contents.size() > status.size) {
                break;
            }
        }
        if (contents.size() != status.size) {
            refuse("the entry " + quoted + " holds " + (contents.size() > status.size ? "more" : "fewer") +
                   " than the " + std::to_string(status.size) + " bytes it claims");
        }
        return contents;
    }


void npz_reader::refuse(const std::string& why) const
    {
        fail<argument_error>(op_, site_, "'" + path_.string() + "' is not a readable .npz: " + why);
    }


void npz_writer::write()
{
    replace_file("save_checkpoint", path_, zip_archive(files_, site_), site_);
}

}  // namespace gradtape::detail
