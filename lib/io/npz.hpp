// The .npz container: a ZIP archive of .npy entries, as numpy.savez writes
// it. libzip keeps the container (CRC-32, ZIP64, UTF-8 names, the end record
// found as the format says); an entry is read as it inflates, never by the
// size it claims.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gradtape/source_location.hpp>

#include "io/npy.hpp"

struct zip;

namespace gradtape::detail {

// The named entries of a .npz, read and CRC-checked by libzip. Failures are
// argument_errors naming op and path.
class npz_reader {
public:
    npz_reader(std::string_view op, const std::filesystem::path& path, const std::string& bytes,
               const source_location& site);
    npz_reader(const npz_reader&) = delete;
    npz_reader& operator=(const npz_reader&) = delete;
    ~npz_reader();

    // Every entry's name, in the archive's order.
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }

    // The bytes of entry `name`, or nothing when there is no such entry.
    std::optional<std::string> entry(const std::string& name);

private:
    [[noreturn]] void refuse(const std::string& why) const;

    std::string_view op_;
    std::vector<std::string> names_;
    const std::filesystem::path& path_;
    const source_location& site_;
    zip* archive_ = nullptr;
};

// The entries of an archive being written: name (with ".npy") and bytes.
class npz_writer {
public:
    npz_writer(const std::filesystem::path& path, const source_location& site) : path_(path), site_(site)
    {
        if (path.empty() || !path.has_filename()) {
            fail<argument_error>("save_checkpoint", site, "needs the path of a file, got '" + path.string() + "'");
        }
    }

    template <class T>
    void add(const std::string& name, const xt::xarray<T>& values, std::string_view what = "array")
    {
        if (!names_.insert(name).second) {
            fail<argument_error>("save_checkpoint", site_, "two " + std::string(what) + "s are named '" + name + "'");
        }
        std::string entry = name + ".npy";
        if (entry.size() > longest_entry_name) {
            fail<argument_error>("save_checkpoint", site_,
                                 "the name of " + std::string(what) + " '" + name.substr(0, 32) + "...' is " +
                                     std::to_string(name.size()) + " bytes long; a .npz holds names of at most " +
                                     std::to_string(longest_entry_name - 4) + " bytes");
        }
        files_.emplace_back(std::move(entry), npy(values));
    }

    // Writes the archive through a temporary file (files.hpp).
    void write();

private:
    const std::filesystem::path& path_;
    const source_location& site_;
    std::set<std::string> names_;
    std::vector<std::pair<std::string, std::string>> files_;
};


}  // namespace gradtape::detail
