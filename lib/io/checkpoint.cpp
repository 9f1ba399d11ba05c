// .npz reading and writing: a ZIP archive of .npy files, as numpy.savez
// writes it. libzip keeps the container (CRC-32, ZIP64, UTF-8 names, the end
// record found as the format says); the .npy part is ours, parsed as strictly
// as numpy.lib.format reads it.
#include <gradtape/checkpoint.hpp>

#include <gradtape/layers.hpp>
#include <gradtape/optim.hpp>
#include <gradtape/random.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <zip.h>

#include <xtensor/xadapt.hpp>

#include <xtensor/xmanipulation.hpp>
#include <xtensor/xnoalias.hpp>

#include "io/conversions.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "io/files.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {

using detail::fail;

namespace {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian machine");

// Keys of a .npz entry: the array's name and ".npy", at most a ZIP name's 65,535 bytes.
constexpr std::size_t longest_entry_name = std::numeric_limits<std::uint16_t>::max();

// The element types a .npy may hold here, by NumPy's descr: the library's
// dtypes, and the integers of labels, ids and generator states.
template <class T>
constexpr std::string_view npy_descr()
{
    if constexpr (std::is_same_v<T, float>) {
        return "<f4";
    } else if constexpr (std::is_same_v<T, double>) {
        return "<f8";
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
        return "<i4";
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
        return "<i8";
    } else if constexpr (std::is_same_v<T, std::uint8_t>) {
        return "|u1";
    } else {
        static_assert(std::is_same_v<T, std::uint64_t>, "no .npy element type of this library");
        return "<u8";
    }
}

// Calls f with a value of the element type `descr` names; false when it names none of them.
template <class F>
bool with_element_type(std::string_view descr, F&& f)
{
    const auto visit = [&]<class E>() {
        if (descr == npy_descr<E>()) {
            f(E{});
            return true;
        }
        return false;
    };
    return visit.template operator()<float>() || visit.template operator()<double>() ||
           visit.template operator()<std::int32_t>() || visit.template operator()<std::int64_t>() ||
           visit.template operator()<std::uint8_t>() || visit.template operator()<std::uint64_t>();
}

template <class T>
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

npy_array parse_npy(std::string_view op, std::string_view bytes, const std::string& name,
                    const std::source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>(op, site, "array '" + name + "' is not a readable .npy: " + why);
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
    std::size_t bytes_needed = 0;
    if (!with_element_type(array.descr, [&](auto element) { bytes_needed = sizeof(element); })) {
        refuse("dtype '" + array.descr +
               "' is not one of little-endian float32, float64, int32, int64, uint64 or uint8 ('<f4', '<f8', '<i4', "
               "'<i8', '<u8', '|u1')");
    }
    // A corrupt header may hold any numbers: the byte count must not overflow.
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

template <class T, class Stored>
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

// The array converted to T, whatever element type it holds.
template <class T>
void convert_into(const npy_array& array, xt::xarray<T>& target)
{
    with_element_type(array.descr, [&]<class Stored>(Stored) { copy_into<T, Stored>(array, target); });
}

// Why the array's values are not all values of T (conversions.hpp): its
// first misfit, or nothing.
template <class T>
std::optional<std::string> misfit(const npy_array& array)
{
    std::optional<std::string> found;
    with_element_type(array.descr, [&]<class Stored>(Stored) {
        const std::size_t count = array.data.size() / sizeof(Stored);
        for (std::size_t i = 0; i < count; ++i) {
            Stored value;
            std::memcpy(&value, array.data.data() + i * sizeof(Stored), sizeof(Stored));
            if (!detail::fits<T>(value)) {
                std::ostringstream text;
                text << +value;
                found = "element " + std::to_string(i) + " (" + text.str() + ") is not a value of " +
                        detail::dtype_name<T>();
                return;
            }
        }
    });
    return found;
}

// The array as T; a value that is not one is refused, naming the array.
template <class T>
xt::xarray<T> converted(const npy_array& array, std::string_view op, const std::string& name,
                        const std::source_location& site)
{
    if (const auto why = misfit<T>(array)) {
        fail<argument_error>(op, site, "array '" + detail::printable(name) + "': " + *why);
    }
    auto values = xt::xarray<T>::from_shape(array.shape);
    convert_into(array, values);
    return values;
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
    npz_reader(std::string_view op, const std::filesystem::path& path, const std::string& bytes,
               const std::source_location& site)
        : op_(op), path_(path), site_(site)
    {
        if (bytes.empty()) {
            refuse("it is empty");
        }
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
        std::set<std::string_view> seen;
        for (zip_int64_t i = 0; i < entries; ++i) {
            const char* name = zip_get_name(archive_.get(), zip_uint64_t(i), ZIP_FL_ENC_GUESS);
            if (!name || !seen.insert(name).second) {
                refuse(name ? "it holds two entries named '" + detail::printable(name) + "'" : "an entry has no name");
            }
            names_.emplace_back(name);
        }
    }

    // Every entry's name, in the archive's order.
    [[nodiscard]] const std::vector<std::string>& names() const { return names_; }

    // The bytes of entry `name`, or nothing when there is no such entry.
    std::optional<std::string> entry(const std::string& name)
    {
        const zip_int64_t index = zip_name_locate(archive_.get(), name.c_str(), ZIP_FL_ENC_GUESS);
        if (index < 0) {
            return std::nullopt;
        }
        const std::string quoted = "'" + detail::printable(name) + "'";
        zip_stat_t status;
        zip_stat_init(&status);
        constexpr zip_uint64_t needed = ZIP_STAT_SIZE | ZIP_STAT_COMP_SIZE | ZIP_STAT_COMP_METHOD;
        if (zip_stat_index(archive_.get(), zip_uint64_t(index), 0, &status) != 0 || (status.valid & needed) != needed) {
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
        std::unique_ptr<zip_file_t, zip_file_deleter> file(zip_fopen_index(archive_.get(), zip_uint64_t(index), 0));
        if (!file) {
            refuse("cannot open the entry " + quoted + ": " + zip_strerror(archive_.get()));
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

private:
    [[noreturn]] void refuse(const std::string& why) const
    {
        fail<argument_error>(op_, site_, "'" + path_.string() + "' is not a readable .npz: " + why);
    }

    std::string_view op_;
    std::vector<std::string> names_;
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

// The entries of an archive being written: name (with ".npy") and bytes.
class npz_writer {
public:
    npz_writer(const std::filesystem::path& path, const std::source_location& site) : path_(path), site_(site)
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

    void write() { detail::replace_file("save_checkpoint", path_, zip_archive(files_, site_), site_); }

private:
    const std::filesystem::path& path_;
    const std::source_location& site_;
    std::set<std::string> names_;
    std::vector<std::pair<std::string, std::string>> files_;
};

// Where a resumable checkpoint keeps what is not a variable.
const std::string iterations_entry = "optimizer/iterations";
const std::string random_state_entry = "random/state";

std::string slot_entry(const std::string& variable, const std::string& slot)
{
    return "optimizer/" + variable + "/" + slot;
}

template <dtype T>
using named_variables = std::vector<std::pair<std::string, basic_variable<T>>>;

template <dtype T>
named_variables<T> by_own_name(const std::vector<basic_variable<T>>& variables)
{
    named_variables<T> named;
    for (const auto& variable : variables) {
        named.emplace_back(variable.name(), variable);
    }
    return named;
}

template <dtype T>
named_variables<T> of_built(const basic_layer<T>& model, std::string_view op, const std::source_location& site)
{
    if (!model.built()) {
        fail<argument_error>(op, site,
                             "model '" + model.path() +
                                 "' has no variables yet: call it once, or build() it, before a checkpoint");
    }
    return model.named_variables();
}

template <dtype T>
void save(const std::filesystem::path& path, const named_variables<T>& variables, const optimizer* trainer,
          const std::source_location& site)
{
    npz_writer archive(path, site);
    for (const auto& [name, variable] : variables) {
        // A read, under the variable's lock: a write elsewhere cannot change it mid-copy.
        const basic_tensor<T> value = variable;
        archive.add(name, value.value(), "variable");
    }
    if (trainer) {
        archive.add(iterations_entry, xt::xarray<std::uint64_t>(trainer->iterations()));
        for (const auto& [name, variable] : variables) {
            for (const auto& [slot, values] : trainer->slots(variable)) {
                archive.add(slot_entry(name, slot), values);
            }
        }
        const std::vector<std::uint64_t> state = random_state();
        archive.add(random_state_entry, xt::xarray<std::uint64_t>(xt::adapt(state, {state.size()})));
    }
    archive.write();
}

template <dtype T>
void load(const std::filesystem::path& path, const named_variables<T>& variables, optimizer* trainer,
          const std::source_location& site)
{
    constexpr std::string_view op = "load_checkpoint";
    const std::string bytes = detail::read_regular_file(op, path, site);
    npz_reader archive(op, path, bytes, site);
    const auto read = [&](const std::string& name, std::string_view what) {
        std::optional<std::string> entry = archive.entry(name + ".npy");
        if (!entry) {
            fail<argument_error>(op, site, "'" + path.string() + "' has no " + std::string(what) + " named '" + name + "'");
        }
        return *entry;
    };
    std::vector<std::string> contents;
    std::vector<npy_array> arrays;
    contents.reserve(variables.size());
    for (const auto& [name, variable] : variables) {
        contents.push_back(read(name, "array"));
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
        const auto& [name, variable] = variables[i];
        const npy_array array = parse_npy(op, contents[i], name, site);
        if (array.shape != variable.shape()) {
            fail<shape_error>(op, site,
                              "array '" + name + "' has shape " + detail::format_shape(array.shape) +
                                  ", the variable " + detail::format_shape(variable.shape()));
        }
        if (const auto why = misfit<T>(array)) {
            fail<argument_error>(op, site, "'" + path.string() + "' array '" + name + "': " + *why);
        }
        arrays.push_back(array);
    }

    std::uint64_t iterations = 0;
    std::vector<optimizer_slots> slots(variables.size());
    std::vector<std::uint64_t> state;
    if (trainer) {
        const auto scalar_or_vector = [&](const std::string& name, std::size_t rank) {
            const std::string entry = read(name, "optimizer state");
            const npy_array array = parse_npy(op, entry, name, site);
            if (array.descr != npy_descr<std::uint64_t>() || array.shape.size() != rank) {
                fail<argument_error>(op, site, "'" + name + "' in '" + path.string() + "' is not what a checkpoint "
                                               "writes there (" + std::to_string(rank) + "-D uint64)");
            }
            return converted<std::uint64_t>(array, op, name, site);
        };
        iterations = scalar_or_vector(iterations_entry, 0)();
        const xt::xarray<std::uint64_t> words = scalar_or_vector(random_state_entry, 1);
        state.assign(words.begin(), words.end());
        if (!is_random_state(state)) {
            fail<argument_error>(op, site, "'" + random_state_entry + "' in '" + path.string() +
                                               "' is not a generator state");
        }
        for (std::size_t i = 0; i < variables.size(); ++i) {
            const std::string prefix = slot_entry(variables[i].first, "");
            for (const std::string& entry : archive.names()) {
                if (entry.starts_with(prefix) && entry.ends_with(".npy")) {
                    const std::string slot = entry.substr(prefix.size(), entry.size() - prefix.size() - 4);
                    if (slot.find('/') != std::string::npos) {
                        continue;  // a slot of another variable whose name extends this one's
                    }
                    const std::string bytes_of_slot = *archive.entry(entry);
                    slots[i].emplace(slot, converted<double>(parse_npy(op, bytes_of_slot, entry, site), op, entry, site));
                }
            }
            if (const auto problem = trainer->slots_problem(variables[i].second, slots[i])) {
                fail<argument_error>(op, site, "'" + path.string() + "' entry '" +
                                                   slot_entry(variables[i].first, problem->slot) + "': " +
                                                   problem->why);
            }
        }
    }

    // Only once everything is read and checked does anything change, and
    // each variable changes in place, as every other update does.
    for (std::size_t i = 0; i < variables.size(); ++i) {
        detail::write_variable(variables[i].second,
                               [&](xt::xarray<T>& value) { convert_into(arrays[i], value); });
    }
    if (trainer) {
        for (std::size_t i = 0; i < variables.size(); ++i) {
            trainer->set_slots(variables[i].second, slots[i], site);
        }
        trainer->set_iterations(iterations);
        set_random_state(state, site);
    }
}

template <class T>
xt::xarray<T> read_npy_as(const std::filesystem::path& path, const std::source_location& site)
{
    const std::string bytes = detail::read_regular_file("read_npy", path, site);
    return converted<T>(parse_npy("read_npy", bytes, path.string(), site), "read_npy", path.string(), site);
}

template <class T>
std::map<std::string, xt::xarray<T>> read_npz_as(const std::filesystem::path& path, const std::source_location& site)
{
    const std::string bytes = detail::read_regular_file("read_npz", path, site);
    npz_reader archive("read_npz", path, bytes, site);
    std::map<std::string, xt::xarray<T>> arrays;
    for (const std::string& entry : archive.names()) {
        // NumPy drops the suffix too: 'w' and 'w.npy' would be one array.
        const std::string name = entry.ends_with(".npy") ? entry.substr(0, entry.size() - 4) : entry;
        if (arrays.contains(name)) {
            fail<argument_error>("read_npz", site,
                                 "'" + path.string() + "' holds two entries for the array '" + detail::printable(name) +
                                     "' ('" + detail::printable(name) + "' and '" + detail::printable(name) + ".npy')");
        }
        arrays.emplace(name, converted<T>(parse_npy("read_npz", *archive.entry(entry), name, site), "read_npz",
                                          name, site));
    }
    return arrays;
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site)
{
    save(path, by_own_name(variables), nullptr, site);
}

void save_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site)
{
    save(path, by_own_name(variables), nullptr, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable>& variables,
                     std::source_location site)
{
    load(path, by_own_name(variables), nullptr, site);
}

void load_checkpoint(const std::filesystem::path& path, const std::vector<Variable64>& variables,
                     std::source_location site)
{
    load(path, by_own_name(variables), nullptr, site);
}

template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, std::source_location site)
{
    save(path, of_built(model, "save_checkpoint", site), nullptr, site);
}

template <dtype T>
void save_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, const optimizer& trainer,
                     std::source_location site)
{
    save(path, of_built(model, "save_checkpoint", site), &trainer, site);
}

template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, std::source_location site)
{
    load(path, of_built(model, "load_checkpoint", site), nullptr, site);
}

template <dtype T>
void load_checkpoint(const std::filesystem::path& path, const basic_layer<T>& model, optimizer& trainer,
                     std::source_location site)
{
    load(path, of_built(model, "load_checkpoint", site), &trainer, site);
}

template <class T>
xt::xarray<T> read_npy(const std::filesystem::path& path, std::source_location site)
{
    return read_npy_as<T>(path, site);
}

template <class T>
std::map<std::string, xt::xarray<T>> read_npz(const std::filesystem::path& path, std::source_location site)
{
    return read_npz_as<T>(path, site);
}

#define GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS(T)                                                                \
    template void save_checkpoint(const std::filesystem::path&, const basic_layer<T>&, std::source_location);   \
    template void save_checkpoint(const std::filesystem::path&, const basic_layer<T>&, const optimizer&,        \
                                  std::source_location);                                                        \
    template void load_checkpoint(const std::filesystem::path&, const basic_layer<T>&, std::source_location);   \
    template void load_checkpoint(const std::filesystem::path&, const basic_layer<T>&, optimizer&,              \
                                  std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS)
#undef GRADTAPE_INSTANTIATE_MODEL_CHECKPOINTS

#define GRADTAPE_INSTANTIATE_READERS(T)                                                                      \
    template xt::xarray<T> read_npy(const std::filesystem::path&, std::source_location);                     \
    template std::map<std::string, xt::xarray<T>> read_npz(const std::filesystem::path&, std::source_location);
GRADTAPE_INSTANTIATE_READERS(float)
GRADTAPE_INSTANTIATE_READERS(double)
GRADTAPE_INSTANTIATE_READERS(std::int64_t)
GRADTAPE_INSTANTIATE_READERS(std::uint8_t)
#undef GRADTAPE_INSTANTIATE_READERS

}  // namespace gradtape
