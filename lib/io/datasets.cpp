#include <gradtape/datasets.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <zlib.h>

#include <gradtape/error.hpp>

#include "io/conversions.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "io/files.hpp"
#include "io/npz.hpp"

namespace gradtape {

namespace {

// A gzip file inflated as it is read, so that a reader can stop at the size
// its header declares instead of inflating whatever the stream holds.
// Concatenated members are one stream, as gzip reads them; anything else
// after a member is refused.
class gzip_stream {
public:
    gzip_stream(const std::string& compressed, const std::filesystem::path& path, const source_location& site)
        : compressed_(compressed), path_(path), site_(site)
    {
        // 16 + MAX_WBITS: a gzip header and trailer, checked with its CRC.
        if (inflateInit2(&stream_, 16 + MAX_WBITS) != Z_OK) {
            refuse("zlib cannot start inflating");
        }
        stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed_.data()));
        stream_.avail_in = uInt(std::min<std::size_t>(compressed_.size(), std::numeric_limits<uInt>::max()));
    }
    ~gzip_stream() { inflateEnd(&stream_); }
    gzip_stream(const gzip_stream&) = delete;
    gzip_stream& operator=(const gzip_stream&) = delete;

    // Appends up to `count` further bytes to `out`, fewer only at the end of
    // the stream; the buffer grows with what arrives, not with `count`.
    void read(std::string& out, std::size_t count)
    {
        const std::size_t wanted = out.size() + count;
        while (out.size() < wanted && !ended_) {
            const std::size_t done = out.size();
            out.resize(std::min(wanted, done + std::max<std::size_t>(done, 1 << 16)));
            stream_.next_out = reinterpret_cast<Bytef*>(out.data() + done);
            stream_.avail_out = uInt(std::min<std::size_t>(out.size() - done, std::numeric_limits<uInt>::max()));
            const int status = inflate(&stream_, Z_NO_FLUSH);
            out.resize(out.size() - stream_.avail_out);
            refill();
            if (status == Z_STREAM_END) {
                next_member();
            } else if (status != Z_OK || (out.size() == done && stream_.avail_in == 0)) {
                refuse(status == Z_OK || status == Z_BUF_ERROR
                           ? std::string("the gzip stream is cut short")
                           : std::string("not a valid gzip stream (") + (stream_.msg ? stream_.msg : "zlib error") + ")");
            }
        }
    }

    // Whether nothing follows what has been read.
    [[nodiscard]] bool at_end()
    {
        std::string probe;
        read(probe, 1);
        return probe.empty();
    }

private:
    [[noreturn]] void refuse(const std::string& why) const
    {
        detail::fail<argument_error>("read_idx", site_, "'" + path_.string() + "': " + why);
    }

    // The input past zlib's 32-bit window.
    void refill()
    {
        const std::size_t consumed = std::size_t(reinterpret_cast<const char*>(stream_.next_in) - compressed_.data());
        if (stream_.avail_in == 0 && consumed < compressed_.size()) {
            stream_.avail_in = uInt(std::min<std::size_t>(compressed_.size() - consumed, std::numeric_limits<uInt>::max()));
        }
    }

    void next_member()
    {
        const std::size_t consumed = std::size_t(reinterpret_cast<const char*>(stream_.next_in) - compressed_.data());
        if (consumed == compressed_.size()) {
            ended_ = true;
            return;
        }
        const std::string_view rest(compressed_.data() + consumed, compressed_.size() - consumed);
        if (rest.size() < 2 || std::uint8_t(rest[0]) != 0x1f || std::uint8_t(rest[1]) != 0x8b) {
            refuse(std::to_string(rest.size()) + " bytes after the gzip stream are not another gzip member");
        }
        inflateReset(&stream_);
    }

    const std::string& compressed_;
    const std::filesystem::path& path_;
    const source_location& site_;
    z_stream stream_{};
    bool ended_ = false;
};

// Big-endian, as IDX stores every number, whatever the machine's order.
template <class T>
T read_big_endian(const char* bytes)
{
    using word = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                                    std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                                       std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>;
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
        value = (value << 8) | std::uint8_t(bytes[i]);
    }
    return std::bit_cast<T>(word(value));
}

// The elements converted to T; one that is not a T (a NaN or a fraction for
// an integer, a value out of its range) is refused, naming it.
template <class T, class Stored, class Refuse>
void convert(const char* data, xt::xarray<T>& out, Refuse&& refuse)
{
    for (std::size_t i = 0; i < out.size(); ++i) {
        const Stored value = read_big_endian<Stored>(data + i * sizeof(Stored));
        if (!detail::fits<T>(value)) {
            std::ostringstream text;
            text << +value;
            refuse("element " + std::to_string(i) + " (" + text.str() + ") is not a value of " +
                   detail::dtype_name<T>());
        }
        out.flat(i) = T(value);
    }
}

// A number of T as strtod reads it (a leading '+' taken, one sign only); a
// value too small for T is a number, rounded to zero or a subnormal, as
// strtod gives it; one too large for T is not.
template <class T>
std::optional<T> parse_number(std::string_view field)
{
    // from_chars takes no leading '+', and a second sign after one is no number.
    if (field.starts_with('+')) {
        field.remove_prefix(1);
        if (field.starts_with('+') || field.starts_with('-')) {
            return std::nullopt;
        }
    }
    T value{};
    const char* end = field.data() + field.size();
    const auto [next, failure] = std::from_chars(field.data(), end, value);
    if (next != end) {
        return std::nullopt;
    }
    if (failure == std::errc()) {
        return value;
    }
    if constexpr (std::is_floating_point_v<T>) {
        long double wide = 0;
        const auto [wide_next, wide_failure] = std::from_chars(field.data(), end, wide);
        const std::size_t exponent = field.find_first_of("eE");
        const bool underflows = wide_failure == std::errc()
                                    ? std::abs(wide) < 1
                                    : exponent != std::string_view::npos && exponent + 1 < field.size() &&
                                          field[exponent + 1] == '-';
        if (failure == std::errc::result_out_of_range && underflows) {
            return wide_failure == std::errc() ? T(wide) : (field.starts_with('-') ? -T(0) : T(0));
        }
    }
    return std::nullopt;
}

}  // namespace

template <class T>
xt::xarray<T> read_idx(const std::filesystem::path& path, source_location site)
{
    const auto refuse = [&](const std::string& why) {
        detail::fail<argument_error>("read_idx", site, "'" + path.string() + "' is not an IDX file: " + why);
    };
    const std::string file = detail::read_regular_file("read_idx", path, site);
    // gzip's magic number; an IDX file starts with two zero bytes instead.
    std::optional<gzip_stream> inflated;
    if (file.size() >= 2 && std::uint8_t(file[0]) == 0x1f && std::uint8_t(file[1]) == 0x8b) {
        inflated.emplace(file, path, site);
    }
    // The header first, then only as much data as it declares.
    std::string read_bytes;
    const auto bytes_up_to = [&](std::size_t count) -> const std::string& {
        if (inflated && read_bytes.size() < count) {
            inflated->read(read_bytes, count - read_bytes.size());
        }
        return inflated ? read_bytes : file;
    };
    if (bytes_up_to(4).size() < 4 || bytes_up_to(4)[0] != 0 || bytes_up_to(4)[1] != 0) {
        refuse("it does not start with the magic bytes 0, 0, type, rank");
    }
    const auto type = std::uint8_t(bytes_up_to(4)[2]);
    const std::size_t rank = std::uint8_t(bytes_up_to(4)[3]);
    const std::size_t element = type == 0x08 || type == 0x09 ? 1 : type == 0x0B ? 2 : type == 0x0C || type == 0x0D ? 4
                              : type == 0x0E                 ? 8
                                                             : 0;
    if (element == 0) {
        refuse("unknown element type 0x" + std::to_string(type));
    }
    const std::size_t header = 4 + 4 * rank;
    if (bytes_up_to(header).size() < header) {
        refuse("its " + std::to_string(rank) + " dimensions are cut short");
    }
    shape_type shape(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        shape[i] = std::uint32_t(read_big_endian<std::int32_t>(bytes_up_to(header).data() + 4 + 4 * i));
    }
    if (!detail::allocatable(shape, element) || !detail::allocatable(shape, sizeof(T))) {
        refuse("its dimensions " + detail::format_shape(shape) + " are too large");
    }
    std::size_t count = 1;
    for (std::size_t dim : shape) {
        count *= dim;
    }
    const std::string& bytes = bytes_up_to(header + count * element);
    if (bytes.size() != header + count * element || (inflated && !inflated->at_end())) {
        refuse("dimensions " + detail::format_shape(shape) + " need " + std::to_string(count * element) +
               " bytes of data, it has " + (inflated && bytes.size() == header + count * element
                                                ? std::string("more")
                                                : std::to_string(bytes.size() - header)));
    }
    auto out = xt::xarray<T>::from_shape(shape);
    const char* data = bytes.data() + header;
    switch (type) {
    case 0x08: convert<T, std::uint8_t>(data, out, refuse); break;
    case 0x09: convert<T, std::int8_t>(data, out, refuse); break;
    case 0x0B: convert<T, std::int16_t>(data, out, refuse); break;
    case 0x0C: convert<T, std::int32_t>(data, out, refuse); break;
    case 0x0D: convert<T, float>(data, out, refuse); break;
    default: convert<T, double>(data, out, refuse); break;
    }
    return out;
}

image_dataset fashion_mnist(const std::filesystem::path& directory, source_location site)
{
    const std::string install = "install the Debian package dataset-fashion-mnist (apt-get install "
                                "dataset-fashion-mnist), which puts them in " +
                                std::string(default_fashion_mnist_directory);
    std::error_code ignored;
    if (!std::filesystem::exists(directory, ignored)) {
        detail::fail<argument_error>("fashion_mnist", site,
                                     "'" + directory.string() + "' does not exist: " + install +
                                         ", or pass the directory that holds the four .gz files");
    }
    if (!std::filesystem::is_directory(directory, ignored)) {
        detail::fail<argument_error>("fashion_mnist", site,
                                     "'" + directory.string() +
                                         "' is not a directory: pass the directory that holds the four .gz files");
    }
    const auto file = [&](const char* name) {
        const std::filesystem::path path = directory / name;
        if (!std::filesystem::exists(path, ignored)) {
            detail::fail<argument_error>("fashion_mnist", site,
                                         "'" + directory.string() + "' holds no " + name +
                                             " (Fashion-MNIST's files are train-images-idx3-ubyte.gz, "
                                             "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
                                             "t10k-labels-idx1-ubyte.gz: " +
                                             install + ")");
        }
        return path;
    };
    const auto images = [&](const char* name) {
        xt::xarray<float> pixels = read_idx<float>(file(name), site);
        if (pixels.dimension() != 3) {
            detail::fail<argument_error>("fashion_mnist", site,
                                         std::string(name) + " holds " + detail::format_shape(pixels.shape()) +
                                             ", not images (N, H, W)");
        }
        pixels /= 255.f;
        pixels.reshape({pixels.shape()[0], pixels.shape()[1], pixels.shape()[2], 1});
        return Tensor(std::move(pixels));
    };
    const auto labels = [&](const char* name, std::size_t expected) {
        xt::xarray<std::int64_t> classes = read_idx<std::int64_t>(file(name), site);
        if (classes.dimension() != 1 || classes.size() != expected) {
            detail::fail<argument_error>("fashion_mnist", site,
                                         std::string(name) + " holds " + detail::format_shape(classes.shape()) +
                                             " labels for " + std::to_string(expected) + " images");
        }
        for (std::int64_t label : classes) {
            if (label < 0 || label > 9) {
                detail::fail<argument_error>("fashion_mnist", site,
                                             std::string(name) + " holds the label " + std::to_string(label) +
                                                 ", not one of the 10 classes");
            }
        }
        return classes;
    };
    image_dataset data;
    data.train_images = images("train-images-idx3-ubyte.gz");
    data.train_labels = labels("train-labels-idx1-ubyte.gz", data.train_images.shape()[0]);
    data.test_images = images("t10k-images-idx3-ubyte.gz");
    data.test_labels = labels("t10k-labels-idx1-ubyte.gz", data.test_images.shape()[0]);
    return data;
}

template <class T>
xt::xarray<T> read_csv(const std::filesystem::path& path, csv_options options, source_location site)
{
    const std::string text = detail::read_regular_file("read_csv", path, site);
    const auto refuse = [&](std::size_t line, const std::string& why) {
        detail::fail<argument_error>("read_csv", site, "'" + path.string() + "' line " + std::to_string(line) + ": " + why);
    };
    std::vector<T> values;
    std::size_t columns = 0;
    std::size_t rows = 0;
    std::size_t line_number = 0;
    for (std::size_t start = 0; start < text.size();) {
        const std::size_t end = std::min(text.find('\n', start), text.size());
        std::string_view line(text.data() + start, end - start);
        start = end + 1;
        ++line_number;
        if (line.ends_with('\r')) {
            line.remove_suffix(1);
        }
        if ((options.header && line_number == 1) || line.find_first_not_of(" \t") == std::string_view::npos) {
            continue;
        }
        std::size_t fields = 0;
        for (std::size_t from = 0;;) {
            const std::size_t to = std::min(line.find(options.delimiter, from), line.size());
            std::string_view field = line.substr(from, to - from);
            const std::size_t first = field.find_first_not_of(" \t");
            const std::size_t last = field.find_last_not_of(" \t");
            field = first == std::string_view::npos ? std::string_view() : field.substr(first, last - first + 1);
            ++fields;
            if (field.empty()) {
                refuse(line_number, "field " + std::to_string(fields) + " is empty");
            }
            const std::optional<T> value = parse_number<T>(field);
            if (!value) {
                refuse(line_number, "field " + std::to_string(fields) + " ('" + detail::printable(field) +
                                        "') is not a number of type " + detail::dtype_name<T>());
            }
            values.push_back(*value);
            if (to == line.size()) {
                break;
            }
            from = to + 1;
        }
        if (rows == 0) {
            columns = fields;
        } else if (fields != columns) {
            refuse(line_number, "has " + std::to_string(fields) + " fields; the first row has " +
                                    std::to_string(columns));
        }
        ++rows;
    }
    auto out = xt::xarray<T>::from_shape({rows, columns});
    std::copy(values.begin(), values.end(), out.begin());
    return out;
}

template <class T>
xt::xarray<T> read_npy(const std::filesystem::path& path, source_location site)
{
    const std::string bytes = detail::read_regular_file("read_npy", path, site);
    return detail::converted<T>(detail::parse_npy("read_npy", bytes, path.string(), site), "read_npy", path.string(),
                                site);
}

template <class T>
std::map<std::string, xt::xarray<T>> read_npz(const std::filesystem::path& path, source_location site)
{
    const std::string bytes = detail::read_regular_file("read_npz", path, site);
    detail::npz_reader archive("read_npz", path, bytes, site);
    std::map<std::string, xt::xarray<T>> arrays;
    for (const std::string& entry : archive.names()) {
        // NumPy drops the suffix too: 'w' and 'w.npy' would be one array.
        const std::string name = entry.ends_with(".npy") ? entry.substr(0, entry.size() - 4) : entry;
        if (arrays.contains(name)) {
            detail::fail<argument_error>("read_npz", site,
                                         "'" + path.string() + "' holds two entries for the array '" +
                                             detail::printable(name) + "' ('" + detail::printable(name) + "' and '" +
                                             detail::printable(name) + ".npy')");
        }
        arrays.emplace(name, detail::converted<T>(detail::parse_npy("read_npz", *archive.entry(entry), name, site),
                                                  "read_npz", name, site));
    }
    return arrays;
}

#define GRADTAPE_INSTANTIATE_READERS(T)                                                                      \
    template xt::xarray<T> read_npy(const std::filesystem::path&, source_location);                     \
    template std::map<std::string, xt::xarray<T>> read_npz(const std::filesystem::path&, source_location);
GRADTAPE_INSTANTIATE_READERS(float)
GRADTAPE_INSTANTIATE_READERS(double)
GRADTAPE_INSTANTIATE_READERS(std::int64_t)
GRADTAPE_INSTANTIATE_READERS(std::uint8_t)
#undef GRADTAPE_INSTANTIATE_READERS

template xt::xarray<float> read_csv(const std::filesystem::path&, csv_options, source_location);
template xt::xarray<double> read_csv(const std::filesystem::path&, csv_options, source_location);
template xt::xarray<std::int64_t> read_csv(const std::filesystem::path&, csv_options, source_location);
template xt::xarray<float> read_idx(const std::filesystem::path&, source_location);
template xt::xarray<double> read_idx(const std::filesystem::path&, source_location);
template xt::xarray<std::int64_t> read_idx(const std::filesystem::path&, source_location);
template xt::xarray<std::uint8_t> read_idx(const std::filesystem::path&, source_location);

}  // namespace gradtape
