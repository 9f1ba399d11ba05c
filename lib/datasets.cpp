#include <gradtape/datasets.hpp>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <zlib.h>

#include <gradtape/error.hpp>

#include "diagnostics.hpp"
#include "files.hpp"

namespace gradtape {

namespace {

// The bytes of a gzip stream, inflated by zlib, refused beyond `limit`.
std::string inflate_gzip(const std::string& compressed, std::size_t limit, const std::filesystem::path& path,
                         const std::source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        detail::fail<argument_error>("read_idx", site, "'" + path.string() + "': " + why);
    };
    z_stream stream{};
    // 16 + MAX_WBITS: a gzip header and trailer, checked with its CRC.
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK) {
        refuse("zlib cannot start inflating");
    }
    struct end_stream {
        z_stream& stream;
        ~end_stream() { inflateEnd(&stream); }
    } ending{stream};
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    stream.avail_in = uInt(std::min<std::size_t>(compressed.size(), std::numeric_limits<uInt>::max()));
    std::string out;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (out.size() >= limit) {
            refuse("it inflates to more than " + std::to_string(limit) + " bytes");
        }
        const std::size_t done = out.size();
        out.resize(std::min(limit, std::max<std::size_t>(done * 2, 1 << 16)));
        stream.next_out = reinterpret_cast<Bytef*>(out.data() + done);
        stream.avail_out = uInt(std::min<std::size_t>(out.size() - done, std::numeric_limits<uInt>::max()));
        status = inflate(&stream, Z_NO_FLUSH);
        out.resize(done + (out.size() - done - stream.avail_out));
        if (status != Z_OK && status != Z_STREAM_END) {
            refuse(std::string("not a valid gzip stream (") + (stream.msg ? stream.msg : "zlib error") + ")");
        }
    }
    return out;
}

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

template <class T, class Stored>
void convert(const char* data, xt::xarray<T>& out)
{
    for (std::size_t i = 0; i < out.size(); ++i) {
        out.flat(i) = T(read_big_endian<Stored>(data + i * sizeof(Stored)));
    }
}

}  // namespace

template <class T>
xt::xarray<T> read_idx(const std::filesystem::path& path, std::source_location site)
{
    const auto refuse = [&](const std::string& why) {
        detail::fail<argument_error>("read_idx", site, "'" + path.string() + "' is not an IDX file: " + why);
    };
    std::string bytes = detail::read_regular_file("read_idx", path, site);
    // gzip's magic number; an IDX file starts with two zero bytes instead.
    if (bytes.size() >= 2 && std::uint8_t(bytes[0]) == 0x1f && std::uint8_t(bytes[1]) == 0x8b) {
        // Nothing of the IDX format is bigger than 4 GiB of elements times 8 bytes.
        bytes = inflate_gzip(bytes, std::size_t{1} << 36, path, site);
    }
    if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) {
        refuse("it does not start with the magic bytes 0, 0, type, rank");
    }
    const auto type = std::uint8_t(bytes[2]);
    const std::size_t rank = std::uint8_t(bytes[3]);
    const std::size_t element = type == 0x08 || type == 0x09 ? 1 : type == 0x0B ? 2 : type == 0x0C || type == 0x0D ? 4
                              : type == 0x0E                 ? 8
                                                             : 0;
    if (element == 0) {
        refuse("unknown element type 0x" + std::to_string(type));
    }
    if (bytes.size() < 4 + 4 * rank) {
        refuse("its " + std::to_string(rank) + " dimensions are cut short");
    }
    shape_type shape(rank);
    for (std::size_t i = 0; i < rank; ++i) {
        shape[i] = std::uint32_t(read_big_endian<std::int32_t>(bytes.data() + 4 + 4 * i));
    }
    if (!detail::allocatable(shape, element) || !detail::allocatable(shape, sizeof(T))) {
        refuse("its dimensions " + detail::format_shape(shape) + " are too large");
    }
    std::size_t count = 1;
    for (std::size_t dim : shape) {
        count *= dim;
    }
    const std::size_t header = 4 + 4 * rank;
    if (bytes.size() != header + count * element) {
        refuse("dimensions " + detail::format_shape(shape) + " need " + std::to_string(count * element) +
               " bytes of data, it has " + std::to_string(bytes.size() - header));
    }
    auto out = xt::xarray<T>::from_shape(shape);
    const char* data = bytes.data() + header;
    switch (type) {
    case 0x08: convert<T, std::uint8_t>(data, out); break;
    case 0x09: convert<T, std::int8_t>(data, out); break;
    case 0x0B: convert<T, std::int16_t>(data, out); break;
    case 0x0C: convert<T, std::int32_t>(data, out); break;
    case 0x0D: convert<T, float>(data, out); break;
    default: convert<T, double>(data, out); break;
    }
    return out;
}

image_dataset fashion_mnist(const std::filesystem::path& directory, std::source_location site)
{
    const auto file = [&](const char* name) {
        const std::filesystem::path path = directory / name;
        std::error_code ignored;
        if (!std::filesystem::exists(path, ignored)) {
            detail::fail<argument_error>("fashion_mnist", site,
                                         "'" + path.string() +
                                             "' is missing: install the Debian package dataset-fashion-mnist "
                                             "(apt-get install dataset-fashion-mnist), or pass the directory of "
                                             "the four .gz files");
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
xt::xarray<T> read_csv(const std::filesystem::path& path, csv_options options, std::source_location site)
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
            // from_chars takes no leading '+'.
            const std::string_view digits = field.starts_with('+') ? field.substr(1) : field;
            T value{};
            const auto [next, failure] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
            if (failure != std::errc() || next != digits.data() + digits.size()) {
                refuse(line_number, "field " + std::to_string(fields) + " ('" + std::string(field) +
                                        "') is not a number of type " + (std::is_integral_v<T> ? "int64" :
                                                                         sizeof(T) == 4 ? "float32" : "float64"));
            }
            values.push_back(value);
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

template xt::xarray<float> read_csv(const std::filesystem::path&, csv_options, std::source_location);
template xt::xarray<double> read_csv(const std::filesystem::path&, csv_options, std::source_location);
template xt::xarray<std::int64_t> read_csv(const std::filesystem::path&, csv_options, std::source_location);
template xt::xarray<float> read_idx(const std::filesystem::path&, std::source_location);
template xt::xarray<double> read_idx(const std::filesystem::path&, std::source_location);
template xt::xarray<std::int64_t> read_idx(const std::filesystem::path&, std::source_location);
template xt::xarray<std::uint8_t> read_idx(const std::filesystem::path&, std::source_location);

}  // namespace gradtape
