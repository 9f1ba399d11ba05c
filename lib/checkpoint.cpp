// .npz reading and writing: a ZIP archive of .npy files, as numpy.savez
// writes it. libzip keeps the container (CRC-32, ZIP64, UTF-8 names, the end
// record found as the format says); the .npy part is ours, parsed as strictly
// as numpy.lib.format reads it.
#include <gradtape/checkpoint.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xnoalias.hpp>

#include "diagnostics.hpp"
#include "dtypes.hpp"
#include "files.hpp"
#include "tensor_access.hpp"

namespace gradtape {

using detail::fail;

namespace {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian machine");

// Keys of a .npz entry: the array's name and ".npy", at most a ZIP name's 65,535 bytes.
constexpr std::size_t longest_entry_name = std::numeric_limits<std::uint16_t>::max();

template <dtype T>
constexpr std::string_view npy_descr()
{
    static_assert(std::numeric_limits<T>::is_iec559 && (sizeof(T) == 4 || sizeof(T) == 8));
    return sizeof(T) == 4 ? "<f4" : "<f8";
}

template <dtype T>
std::string npy(const xt::xarray<T>& values)
{
    std::string shape = "(";
    for (std::size_t dim : values.shape()) {
        shape += std::to_string(dim) + ", ";
    }
    if (values.dimension() > 1) {
        shape.resize(shape.size() - 2);
    } else if (values.dimension() == 1) {
        shape.pop_back();
    }
    shape += ")";
    std::string header = "{'descr': '" + std::string(npy_descr<T>()) + "', 'fortran_order': False, 'shape': " + shape +
                         ", }";
    // Version 1.0 counts the header in 16 bits; 2.0 in 32 bits, as numpy
    // switches for very high-rank arrays.
    const bool wide = header.size() + 11 + 64 > std::numeric_limits<std::uint16_t>::max();
    const std::size_t prefix = wide ? 12 : 10;
    // Padded with spaces so that the data starts at a multiple of 64, ending in '\n'.
    header.append(63 - (prefix + header.size()) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += char(wide ? 2 : 1);
    out += char(0);
    for (std::size_t i = 0; i < (wide ? 4U : 2U); ++i) {
        out += char((header.size() >> (8 * i)) & 0xFF);
    }
    out += header;
    out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return out;
}

struct npy_array {
    std::string descr;
    bool fortran_order = false;
    shape_type shape;
    std::string_view data;
};

// A .npy header: a Python dict literal with exactly the keys 'descr',
// 'fortran_order' and 'shape', each once, read as ast.literal_eval would read
// the literals numpy writes (strings without escapes, True/False, tuples of
// non-negative integers); anything else is refused.
class npy_header_parser {
public:
    npy_header_parser(std::string_view text, std::function<void(const std::string&)> refuse)
        : text_(text), refuse_(std::move(refuse))
    {
    }

    npy_array parse()
    {
        npy_array array;
        std::set<std::string> seen;
        expect('{');
        while (!accept('}')) {
            const std::string key = string_literal();
            if (!seen.insert(key).second) {
                refuse_("the header names '" + key + "' twice");
            }
            expect(':');
            if (key == "descr") {
                array.descr = string_literal();
            } else if (key == "fortran_order") {
                array.fortran_order = boolean_literal();
            } else if (key == "shape") {
                array.shape = shape_literal();
            } else {
                refuse_("the header has an unknown key '" + key + "'");
            }
            if (!accept(',')) {
                expect('}');
                break;
            }
        }
        skip_space();
        if (at_ != text_.size()) {
            refuse_("the header has text after its dictionary");
        }
        for (const char* key : {"descr", "fortran_order", "shape"}) {
            if (!seen.contains(key)) {
                refuse_(std::string("the header has no '") + key + "'");
            }
        }
        return array;
    }

private:
    void skip_space()
    {
        while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n')) {
            ++at_;
        }
    }
    bool accept(char c)
    {
        skip_space();
        if (at_ < text_.size() && text_[at_] == c) {
            ++at_;
            return true;
        }
        return false;
    }
    void expect(char c)
    {
        if (!accept(c)) {
            refuse_(std::string("the header is not a dictionary literal (expected '") + c + "' at byte " +
                    std::to_string(at_) + ")");
        }
    }
    std::string string_literal()
    {
        skip_space();
        const char quote = at_ < text_.size() ? text_[at_] : '\0';
        if (quote != '\'' && quote != '"') {
            refuse_("the header has a key or value that is not a string literal at byte " + std::to_string(at_));
        }
        const std::size_t end = text_.find(quote, at_ + 1);
        const std::string_view body = text_.substr(at_ + 1, end == std::string_view::npos ? 0 : end - at_ - 1);
        if (end == std::string_view::npos || body.find_first_of("\\\n") != std::string_view::npos) {
            refuse_("the header has a string literal that is not closed, or holds an escape");
        }
        at_ = end + 1;
        return std::string(body);
    }
    bool boolean_literal()
    {
        skip_space();
        for (const auto& [word, value] : {std::pair{std::string_view("True"), true}, {"False", false}}) {
            if (text_.substr(at_).starts_with(word)) {
                at_ += word.size();
                return value;
            }
        }
        refuse_("'fortran_order' is not True or False");
        return false;
    }
    // (), (n,), (n, m), (n, m,): a 1-tuple needs its comma, as in Python.
    shape_type shape_literal()
    {
        expect('(');
        shape_type shape;
        bool trailing_comma = false;
        while (!accept(')')) {
            skip_space();
            std::size_t dim = 0;
            const char* begin = text_.data() + at_;
            const char* end = text_.data() + text_.size();
            const auto [next, failure] = std::from_chars(begin, end, dim);
            if (failure != std::errc() || (next - begin > 1 && *begin == '0')) {
                refuse_("'shape' holds something other than non-negative integers");
            }
            at_ += std::size_t(next - begin);
            shape.push_back(dim);
            trailing_comma = accept(',');
            if (!trailing_comma) {
                expect(')');
                break;
            }
        }
        if (shape.size() == 1 && !trailing_comma) {
            refuse_("'shape' is not a tuple (a 1-tuple is written (n,))");
        }
        return shape;
    }

    std::string_view text_;
    std::size_t at_ = 0;
    std::function<void(const std::string&)> refuse_;
};

npy_array parse_npy(std::string_view bytes, const std::string& name, const std::source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>("load_checkpoint", site, "array '" + name + "' is not a readable .npy: " + why);
    };
    if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY")) {
        refuse("no .npy magic");
    }
    const int major = static_cast<unsigned char>(bytes[6]);
    const int minor = static_cast<unsigned char>(bytes[7]);
    if (major < 1 || major > 3 || minor != 0) {
        refuse("format version " + std::to_string(major) + "." + std::to_string(minor) + " is not 1.0, 2.0 or 3.0");
    }
    const std::size_t length_bytes = major == 1 ? 2 : 4;
    if (bytes.size() < 8 + length_bytes) {
        refuse("truncated header");
    }
    std::size_t header_length = 0;
    for (std::size_t i = 0; i < length_bytes; ++i) {
        header_length |= std::size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    }
    const std::size_t data_start = 8 + length_bytes + header_length;
    if (data_start > bytes.size()) {
        refuse("truncated header");
    }
    npy_array array = npy_header_parser(bytes.substr(8 + length_bytes, header_length), refuse).parse();
    if (array.descr != npy_descr<float>() && array.descr != npy_descr<double>()) {
        refuse("dtype '" + array.descr + "' is not little-endian float32 ('<f4') or float64 ('<f8')");
    }
    // A corrupt header may hold any numbers: the byte count must not overflow.
    std::size_t bytes_needed = array.descr == npy_descr<float>() ? 4 : 8;
    for (std::size_t dim : array.shape) {
        if (__builtin_mul_overflow(bytes_needed, dim, &bytes_needed)) {
            refuse("shape " + detail::format_shape(array.shape) + " is too large");
        }
    }
    if (bytes.size() - data_start != bytes_needed) {
        refuse("it holds " + std::to_string(bytes.size() - data_start) + " bytes of data for shape " +
               detail::format_shape(array.shape) + ", which needs " + std::to_string(bytes_needed));
    }
    array.data = bytes.substr(data_start);
    return array;
}

template <dtype T, class Stored>
void copy_into(const npy_array& array, xt::xarray<T>& target)
{
    std::size_t count = 1;
    for (std::size_t dim : array.shape) {
        count *= dim;
    }
    std::vector<Stored> stored(count);
    std::memcpy(stored.data(), array.data.data(), count * sizeof(Stored));
    if (!array.fortran_order) {
        std::copy(stored.begin(), stored.end(), target.data());
        return;
    }
    // Column-major data is the row-major array of the reversed shape, transposed.
    shape_type reversed(array.shape.rbegin(), array.shape.rend());
    auto columns = xt::xarray<T>::from_shape(reversed);
    std::copy(stored.begin(), stored.end(), columns.data());
    xt::noalias(target) = xt::transpose(columns);
}

struct zip_deleter {
    void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct zip_file_deleter {
    void operator()(zip_file_t* file) const { zip_fclose(file); }
};
using zip_handle = std::unique_ptr<zip_t, zip_deleter>;

// The named entries of a .npz, read and CRC-checked by libzip.
class npz_reader {
public:
    npz_reader(const std::filesystem::path& path, const std::string& bytes, const std::source_location& site)
        : path_(path), site_(site)
    {
        zip_error_t error;
        zip_error_init(&error);
        zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &error);
        if (source) {
            archive_.reset(zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
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
        const zip_int64_t entries = zip_get_num_entries(archive_.get(), 0);
        std::set<std::string_view> names;
        for (zip_int64_t i = 0; i < entries; ++i) {
            const char* name = zip_get_name(archive_.get(), zip_uint64_t(i), ZIP_FL_ENC_GUESS);
            if (!name || !names.insert(name).second) {
                refuse(name ? "it holds two entries named '" + std::string(name) + "'" : "an entry has no name");
            }
        }
    }

    // The bytes of entry `name`, or nothing when there is no such entry.
    std::optional<std::string> entry(const std::string& name)
    {
        const zip_int64_t index = zip_name_locate(archive_.get(), name.c_str(), ZIP_FL_ENC_GUESS);
        if (index < 0) {
            return std::nullopt;
        }
        zip_stat_t status;
        zip_stat_init(&status);
        if (zip_stat_index(archive_.get(), zip_uint64_t(index), 0, &status) != 0 ||
            !(status.valid & ZIP_STAT_SIZE)) {
            refuse("cannot read the entry '" + name + "'");
        }
        // An entry larger than the whole archive must be deflated; refuse
        // sizes no buffer can hold before allocating one.
        if (status.size > std::size_t(std::numeric_limits<std::ptrdiff_t>::max())) {
            refuse("the entry '" + name + "' claims " + std::to_string(status.size) + " bytes");
        }
        std::unique_ptr<zip_file_t, zip_file_deleter> file(zip_fopen_index(archive_.get(), zip_uint64_t(index), 0));
        if (!file) {
            refuse("cannot open the entry '" + name + "': " + zip_strerror(archive_.get()));
        }
        std::string contents(status.size, '\0');
        const zip_int64_t got = zip_fread(file.get(), contents.data(), contents.size());
        char extra = 0;
        if (got != zip_int64_t(contents.size()) || zip_fread(file.get(), &extra, 1) != 0) {
            refuse("the entry '" + name + "' is damaged: " + zip_file_strerror(file.get()));
        }
        return contents;
    }

private:
    [[noreturn]] void refuse(const std::string& why) const
    {
        fail<argument_error>("load_checkpoint", site_, "'" + path_.string() + "' is not a readable .npz: " + why);
    }

    const std::filesystem::path& path_;
    const std::source_location& site_;
    zip_handle archive_;
};

// The .npz archive of `files` (name, contents), stored uncompressed as numpy.savez does.
std::string zip_archive(const std::vector<std::pair<std::string, std::string>>& files,
                        const std::source_location& site)
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
    zip_handle archive(zip_open_from_source(buffer, ZIP_TRUNCATE, &error));
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

void sync_directory(const std::filesystem::path& directory)
{
    detail::descriptor handle(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (handle.get() >= 0) {
        ::fsync(handle.get());
    }
}

// Writes `bytes` as `path` through a new temporary file beside it, created
// exclusively (never through a planted symlink) under a unique name, so that
// concurrent saves cannot meet; the old file's permissions carry over. The
// temporary is gone on every path out; the old file stays whole until the
// rename.
void replace_file(const std::filesystem::path& path, const std::string& bytes, const std::source_location& site)
{
    const auto refuse = [&](const std::string& what) {
        fail<argument_error>("save_checkpoint", site, what + ": " + std::strerror(errno));
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

template <dtype T>
void save(const std::filesystem::path& path, const std::vector<basic_variable<T>>& variables,
          const std::source_location& site)
{
    if (path.empty() || !path.has_filename()) {
        fail<argument_error>("save_checkpoint", site, "needs the path of a file, got '" + path.string() + "'");
    }
    std::set<std::string> names;
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& variable : variables) {
        if (!names.insert(variable.name()).second) {
            fail<argument_error>("save_checkpoint", site, "two variables are named '" + variable.name() + "'");
        }
        std::string entry = variable.name() + ".npy";
        if (entry.size() > longest_entry_name) {
            fail<argument_error>("save_checkpoint", site,
                                 "the name of variable '" + variable.name().substr(0, 32) + "...' is " +
                                     std::to_string(variable.name().size()) +
                                     " bytes long; a .npz holds names of at most " +
                                     std::to_string(longest_entry_name - 4) + " bytes");
        }
        // A read, under the variable's lock: a write elsewhere cannot change it mid-copy.
        const basic_tensor<T> value = variable;
        files.emplace_back(std::move(entry), npy(value.value()));
    }
    replace_file(path, zip_archive(files, site), site);
}

template <dtype T>
void load(const std::filesystem::path& path, const std::vector<basic_variable<T>>& variables,
          const std::source_location& site)
{
    const std::string bytes = detail::read_regular_file("load_checkpoint", path, site);
    npz_reader archive(path, bytes, site);
    std::vector<std::string> contents;
    std::vector<npy_array> arrays;
    contents.reserve(variables.size());
    for (const auto& variable : variables) {
        std::optional<std::string> entry = archive.entry(variable.name() + ".npy");
        if (!entry) {
            fail<argument_error>("load_checkpoint", site,
                                 "'" + path.string() + "' has no array named '" + variable.name() + "'");
        }
        contents.push_back(std::move(*entry));
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
        const npy_array array = parse_npy(contents[i], variables[i].name(), site);
        if (array.shape != variables[i].shape()) {
            fail<shape_error>("load_checkpoint", site,
                              "array '" + variables[i].name() + "' has shape " + detail::format_shape(array.shape) +
                                  ", the variable " + detail::format_shape(variables[i].shape()));
        }
        arrays.push_back(array);
    }
    // Only once every array is read and checked does any variable change,
    // and each changes in place, as every other update does.
    for (std::size_t i = 0; i < variables.size(); ++i) {
        detail::write_variable(variables[i], [&](xt::xarray<T>& value) {
            if (arrays[i].descr == npy_descr<float>()) {
                copy_into<T, float>(arrays[i], value);
            } else {
                copy_into<T, double>(arrays[i], value);
            }
        });
    }
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site)
{
    save(path, variables, site);
}

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site)
{
    save(path, variables, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site)
{
    load(path, variables, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site)
{
    load(path, variables, site);
}

}  // namespace gradtape
