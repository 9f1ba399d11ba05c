// Random mutations (mutations.hpp) of valid data files, read by the library's
// readers: IDX (plain and gzipped), CSV, .npy and .npz (stored and
// deflated). Every read must either give exactly what an independent decoding
// of the mutant gives (for .npz, whose CRCs guard the data: values of the
// original arrays) or throw a gradtape::error; never crash, hang, throw
// anything else, or allocate more than 256 MiB beyond what the process held
// before it. The seeds are at most 4 KiB, so no honest reading of a mutant
// needs a thousandth of that: the bound catches sizes read from a header or
// a stream and believed. Usage: reader_fuzzer [mutants per seed].
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>
#include <zip.h>
#include <zlib.h>

#include <gradtape/gradtape.hpp>

#include "allocation_meter.hpp"
#include "mutations.hpp"

namespace gt = gradtape;

namespace {

constexpr std::size_t most_allocated = std::size_t{256} << 20;

// Values as doubles, with their shape: what a reader gave, or what the
// independent decoding of a file gives.
struct decoded {
    gt::shape_type shape;
    std::vector<double> values;

    bool operator==(const decoded& other) const
    {
        if (shape != other.shape || values.size() != other.values.size()) {
            return false;
        }
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (!(values[i] == other.values[i] || (std::isnan(values[i]) && std::isnan(other.values[i])))) {
                return false;
            }
        }
        return true;
    }
};

template <class T>
decoded as_decoded(const xt::xarray<T>& array)
{
    return {gt::shape_type(array.shape().begin(), array.shape().end()),
            std::vector<double>(array.begin(), array.end())};
}

// A reader under test: nothing when it refused, else what it read.
using reader = std::function<std::optional<decoded>(const std::filesystem::path&)>;
// The independent decoding of a file: nothing where the file is not valid,
// or holds a value the reader's type cannot hold.
using decoder = std::function<std::optional<decoded>(const std::string&)>;

template <class T>
reader read_with(xt::xarray<T> (*read)(const std::filesystem::path&, gt::source_location))
{
    return [read](const std::filesystem::path& path) { return std::optional(as_decoded(read(path, {}))); };
}

std::string gzipped(const std::string& bytes)
{
    z_stream stream{};
    deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    std::string out(deflateBound(&stream, uLong(bytes.size())) + 32, '\0');
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    stream.avail_in = uInt(bytes.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = uInt(out.size());
    deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}

// Every member of a gzip file inflated, as gzip reads it; nothing when it is not one.
std::optional<std::string> gunzipped(const std::string& bytes)
{
    std::string out;
    std::size_t at = 0;
    while (at < bytes.size()) {
        z_stream stream{};
        inflateInit2(&stream, 16 + MAX_WBITS);
        stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + at));
        stream.avail_in = uInt(bytes.size() - at);
        int status = Z_OK;
        char chunk[4096];
        while (status == Z_OK) {
            stream.next_out = reinterpret_cast<Bytef*>(chunk);
            stream.avail_out = sizeof chunk;
            status = inflate(&stream, Z_NO_FLUSH);
            out.append(chunk, sizeof chunk - stream.avail_out);
            if (out.size() > most_allocated) {
                status = Z_DATA_ERROR;
            }
        }
        at += stream.total_in;
        inflateEnd(&stream);
        if (status != Z_STREAM_END) {
            return std::nullopt;
        }
    }
    return out;
}

template <class Stored>
Stored big_endian(const char* bytes)
{
    std::uint64_t word = 0;
    for (std::size_t i = 0; i < sizeof(Stored); ++i) {
        word = (word << 8) | std::uint8_t(bytes[i]);
    }
    Stored value;
    if constexpr (sizeof(Stored) == 1) {
        value = Stored(word);
    } else {
        using unsigned_word = std::conditional_t<sizeof(Stored) == 2, std::uint16_t,
                                                 std::conditional_t<sizeof(Stored) == 4, std::uint32_t, std::uint64_t>>;
        const auto narrow = unsigned_word(word);
        std::memcpy(&value, &narrow, sizeof value);
    }
    return value;
}

// Whether a stored value is one of T's, written out here (NumPy's cast
// rules: an integer takes the whole part of a finite value in its range).
template <class T>
bool holds(double value)
{
    if constexpr (std::is_integral_v<T>) {
        const double high = std::ldexp(1.0, std::numeric_limits<T>::digits);
        const double low = std::is_signed_v<T> ? -high : 0;
        return std::isfinite(value) && std::trunc(value) >= low && std::trunc(value) < high;
    } else {
        return !std::isfinite(value) || std::abs(value) <= double(std::numeric_limits<T>::max());
    }
}

template <class T>
double cast(double value)
{
    return double(T(value));
}

// IDX: magic 0 0 type rank, big-endian dimensions and elements.
template <class T>
std::optional<decoded> decode_idx(std::string bytes)
{
    if (bytes.size() >= 2 && std::uint8_t(bytes[0]) == 0x1f && std::uint8_t(bytes[1]) == 0x8b) {
        const auto inflated = gunzipped(bytes);
        if (!inflated) {
            return std::nullopt;
        }
        bytes = *inflated;
    }
    if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0) {
        return std::nullopt;
    }
    const std::uint8_t type = std::uint8_t(bytes[2]);
    const std::size_t rank = std::uint8_t(bytes[3]);
    const std::size_t element = type == 8 || type == 9 ? 1 : type == 11 ? 2 : type == 12 || type == 13 ? 4 : type == 14 ? 8 : 0;
    if (element == 0 || bytes.size() < 4 + 4 * rank) {
        return std::nullopt;
    }
    decoded out;
    unsigned __int128 count = 1;
    for (std::size_t i = 0; i < rank; ++i) {
        out.shape.push_back(big_endian<std::uint32_t>(bytes.data() + 4 + 4 * i));
        count *= out.shape.back();
    }
    if (count * element != bytes.size() - 4 - 4 * rank) {
        return std::nullopt;
    }
    for (std::size_t i = 0; i < std::size_t(count); ++i) {
        const char* at = bytes.data() + 4 + 4 * rank + i * element;
        const double value = type == 8    ? big_endian<std::uint8_t>(at)
                             : type == 9  ? big_endian<std::int8_t>(at)
                             : type == 11 ? big_endian<std::int16_t>(at)
                             : type == 12 ? big_endian<std::int32_t>(at)
                             : type == 13 ? double(big_endian<float>(at))
                                          : big_endian<double>(at);
        if (!holds<T>(value)) {
            return std::nullopt;
        }
        out.values.push_back(cast<T>(value));
    }
    return out;
}

// CSV: lines of fields split by commas, blank lines skipped, each field a
// number strtod or strtoll reads whole (the reader takes no hexadecimal
// numbers, leading zeros aside, which this leaves to its refusals).
template <class T>
std::optional<decoded> decode_csv(const std::string& text)
{
    decoded out;
    std::size_t columns = 0;
    std::size_t rows = 0;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        std::size_t fields = 0;
        std::size_t from = 0;
        for (;;) {
            const std::size_t to = std::min(line.find(',', from), line.size());
            const std::string field = line.substr(from, to - from);
            const std::size_t first = field.find_first_not_of(" \t");
            if (first == std::string::npos) {
                return std::nullopt;
            }
            const std::string trimmed = field.substr(first, field.find_last_not_of(" \t") - first + 1);
            char* end = nullptr;
            errno = 0;
            double value = 0;
            if constexpr (std::is_integral_v<T>) {
                value = double(std::strtoll(trimmed.c_str(), &end, 10));
            } else {
                value = sizeof(T) == 4 ? double(std::strtof(trimmed.c_str(), &end)) : std::strtod(trimmed.c_str(), &end);
                if (errno == ERANGE && std::abs(value) >= 1) {
                    return std::nullopt;
                }
            }
            if (end != trimmed.c_str() + trimmed.size() || trimmed.find('\0') != std::string::npos ||
                (std::is_integral_v<T> && errno == ERANGE)) {
                return std::nullopt;
            }
            out.values.push_back(value);
            ++fields;
            if (to == line.size()) {
                break;
            }
            from = to + 1;
        }
        if (rows > 0 && fields != columns) {
            return std::nullopt;
        }
        columns = fields;
        ++rows;
    }
    out.shape = {rows, columns};
    return out;
}

// .npy: magic, version 1.0 (seeds are), a header whose 'descr', 'shape'
// and 'fortran_order' are found by their keys, then the data.
template <class T>
std::optional<decoded> decode_npy(const std::string& bytes)
{
    if (bytes.size() < 10 || bytes.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) != 0) {
        return std::nullopt;
    }
    const std::size_t length = std::uint8_t(bytes[8]) | std::size_t(std::uint8_t(bytes[9])) << 8;
    if (10 + length > bytes.size()) {
        return std::nullopt;
    }
    const std::string header = bytes.substr(10, length);
    const std::size_t descr = header.find("'descr': '");
    const std::size_t shape = header.find("'shape': (");
    const bool fortran = header.find("'fortran_order': True") != std::string::npos;
    if (descr == std::string::npos || shape == std::string::npos ||
        (!fortran && header.find("'fortran_order': False") == std::string::npos)) {
        return std::nullopt;
    }
    const std::string type = header.substr(descr + 10, 3);
    decoded out;
    std::size_t at = shape + 10;
    while (at < header.size() && header[at] != ')') {
        char* end = nullptr;
        out.shape.push_back(std::strtoull(header.c_str() + at, &end, 10));
        if (end == header.c_str() + at) {
            return std::nullopt;
        }
        at = std::size_t(end - header.c_str());
        while (at < header.size() && (header[at] == ',' || header[at] == ' ')) {
            ++at;
        }
    }
    const std::size_t element = type == "<f8" || type == "<i8" || type == "<u8" ? 8
                                : type == "<f4" || type == "<i4"                ? 4
                                : type == "|u1"                                 ? 1
                                                                                : 0;
    unsigned __int128 count = 1;
    for (std::size_t dim : out.shape) {
        count *= dim;
    }
    if (element == 0 || count * element != bytes.size() - 10 - length) {
        return std::nullopt;
    }
    std::vector<double> stored;
    for (std::size_t i = 0; i < std::size_t(count); ++i) {
        const char* data = bytes.data() + 10 + length + i * element;
        double value = 0;
        const auto take = [&]<class E>(E) {
            E element_value;
            std::memcpy(&element_value, data, sizeof(E));
            value = double(element_value);
        };
        if (type == "<f8") {
            take(double{});
        } else if (type == "<f4") {
            take(float{});
        } else if (type == "<i8") {
            take(std::int64_t{});
        } else if (type == "<i4") {
            take(std::int32_t{});
        } else if (type == "<u8") {
            take(std::uint64_t{});
        } else {
            take(std::uint8_t{});
        }
        if (!holds<T>(value)) {
            return std::nullopt;
        }
        stored.push_back(cast<T>(value));
    }
    if (!fortran) {
        out.values = std::move(stored);
        return out;
    }
    // Column-major: the element at C index i sits at the reversed index's place.
    out.values.resize(stored.size());
    for (std::size_t i = 0; i < stored.size(); ++i) {
        std::size_t rest = i;
        std::size_t column_major = 0;
        for (std::size_t d = out.shape.size(); d-- > 0;) {
            const std::size_t index = rest % out.shape[d];
            rest /= out.shape[d];
            std::size_t inner = 1;
            for (std::size_t e = 0; e < d; ++e) {
                inner *= out.shape[e];
            }
            column_major += index * inner;
        }
        out.values[i] = stored[column_major];
    }
    return out;
}

std::string npy(const std::string& descr, const std::string& shape, const std::string& data)
{
    std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    header.append(63 - (10 + header.size()) % 64, ' ');
    header += '\n';
    return std::string("\x93NUMPY\x01\x00", 8) + char(header.size() & 0xff) + char(header.size() >> 8) + header + data;
}

template <class T>
std::string raw(const std::vector<T>& values)
{
    return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

std::string npz(const std::vector<std::pair<std::string, std::string>>& entries, bool deflated,
                const std::filesystem::path& scratch)
{
    int error = 0;
    zip_t* archive = zip_open(scratch.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
    for (const auto& [name, bytes] : entries) {
        const zip_int64_t index =
            zip_file_add(archive, name.c_str(), zip_source_buffer(archive, bytes.data(), bytes.size(), 0), 0);
        zip_set_file_compression(archive, zip_uint64_t(index), deflated ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
    }
    zip_close(archive);
    return fuzzing::read_bytes(scratch);
}

struct seed {
    std::string name;
    std::string bytes;
    reader read;
    decoder decode;
};

std::string idx(std::uint8_t type, const std::vector<std::uint32_t>& dims, const std::string& big_endian_data)
{
    std::string bytes{char(0), char(0), char(type), char(dims.size())};
    for (std::uint32_t dim : dims) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            bytes += char((dim >> shift) & 0xff);
        }
    }
    return bytes + big_endian_data;
}

}  // namespace

int main(int argc, char** argv)
{
    const long mutants = argc > 1 ? std::atol(argv[1]) : 2000;
    const auto directory = std::filesystem::temp_directory_path() / ("gradtape_readers_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory);
    const auto mutant = directory / "mutant";

    std::string pixels;
    for (int i = 0; i < 60; ++i) {
        pixels += char(i * 37);
    }
    const auto big_endian_floats = [](std::initializer_list<float> values) {
        std::string bytes;
        for (float value : values) {
            std::uint32_t word = 0;
            std::memcpy(&word, &value, 4);
            for (int shift = 24; shift >= 0; shift -= 8) {
                bytes += char((word >> shift) & 0xff);
            }
        }
        return bytes;
    };
    const std::string images = idx(0x08, {3, 4, 5}, pixels);
    const std::string values = idx(0x0D, {6}, big_endian_floats({0.5f, -1.25f, 3e38f, 1e-30f, 255.f, 7.f}));
    const std::string whole_values = idx(0x0D, {6}, big_endian_floats({0.5f, -1.25f, 3e9f, 1e-30f, 255.f, 7.f}));
    const std::string counts = idx(0x0C, {2, 3}, std::string("\0\0\0\1\0\0\0\xfe\0\0\0\0\0\0\0\7\0\0\0\x80\0\0\0\0", 24));
    const std::string csv = "1, 2.5,-3\n+4,5e-1 ,6\n\n7,8,9e2\n";
    const std::string doubles = npy("<f8", "(3, 4)", raw(std::vector<double>{0, 1.5, 2, 30, 1e-3, 7, 8, 9, 10, 11, 255, 0.5}));
    const std::string integers = npy("<i8", "(5,)", raw(std::vector<std::int64_t>{0, 1, 255, 128, 7}));
    const std::string bytes = npy("|u1", "(2, 2)", std::string("\1\2\3\4", 4));
    const std::vector<std::pair<std::string, std::string>> arrays{{"w.npy", doubles}, {"b.npy", bytes}};
    const std::vector<decoded> originals{*decode_npy<double>(doubles), *decode_npy<double>(bytes)};
    const auto npz_read = [&](auto read) {
        return [read, &originals](const std::filesystem::path& path) -> std::optional<decoded> {
            for (const auto& [name, array] : read(path, {})) {
                const decoded got = as_decoded(array);
                if (std::ranges::none_of(originals, [&](const decoded& original) { return original == got; })) {
                    return decoded{{0}, {}};
                }
            }
            return decoded{};
        };
    };
    // .npz: a value of an original array, or refused; the decoding side is the originals themselves.
    const decoder any_archive = [](const std::string&) { return std::optional(decoded{}); };

    const std::vector<seed> seeds{
        {"idx uint8", images, read_with<float>(gt::read_idx<float>), decode_idx<float>},
        {"idx uint8 as uint8", images, read_with<std::uint8_t>(gt::read_idx<std::uint8_t>), decode_idx<std::uint8_t>},
        {"idx float, gzipped", gzipped(values), read_with<double>(gt::read_idx<double>), decode_idx<double>},
        {"idx float as int64, gzipped", gzipped(whole_values), read_with<std::int64_t>(gt::read_idx<std::int64_t>),
         decode_idx<std::int64_t>},
        {"idx int32 as uint8, gzipped", gzipped(counts), read_with<std::uint8_t>(gt::read_idx<std::uint8_t>),
         decode_idx<std::uint8_t>},
        {"csv as float64", csv, [](const std::filesystem::path& p) { return std::optional(as_decoded(gt::read_csv<double>(p))); },
         decode_csv<double>},
        {"csv as float32", csv, [](const std::filesystem::path& p) { return std::optional(as_decoded(gt::read_csv<float>(p))); },
         decode_csv<float>},
        {"csv as int64", "1,2\n-3,+4\n", [](const std::filesystem::path& p) {
             return std::optional(as_decoded(gt::read_csv<std::int64_t>(p)));
         }, decode_csv<std::int64_t>},
        {"npy float64", doubles, read_with<double>(gt::read_npy<double>), decode_npy<double>},
        {"npy float64 as uint8", doubles, read_with<std::uint8_t>(gt::read_npy<std::uint8_t>), decode_npy<std::uint8_t>},
        {"npy int64 as uint8", integers, read_with<std::uint8_t>(gt::read_npy<std::uint8_t>), decode_npy<std::uint8_t>},
        {"npy uint8 as float32", bytes, read_with<float>(gt::read_npy<float>), decode_npy<float>},
        {"npz stored", npz(arrays, false, directory / "stored.npz"), npz_read(gt::read_npz<double>), any_archive},
        {"npz deflated", npz(arrays, true, directory / "deflated.npz"), npz_read(gt::read_npz<double>), any_archive},
    };

    std::mt19937_64 random(2026);
    long read = 0;
    long refused = 0;
    long wrong = 0;
    std::size_t largest = 0;
    for (const seed& s : seeds) {
        if (s.bytes.size() > 4096) {
            std::cerr << s.name << ": the seed is larger than the 4 KiB the bound assumes\n";
            return EXIT_FAILURE;
        }
        for (long i = 0; i <= mutants; ++i) {
            // Mutant 0 is the seed itself, which must read.
            const std::string bytes = i == 0 ? s.bytes : fuzzing::mutate(s.bytes, random);
            fuzzing::write_bytes(mutant, bytes);
            std::optional<decoded> got;
            std::string failure;
            allocation_meter::reset();
            try {
                got = s.read(mutant);
            } catch (const gt::error&) {
            } catch (const std::exception& e) {
                failure = std::string("threw a ") + typeid(e).name() + ": " + e.what();
            }
            largest = std::max(largest, allocation_meter::peak_growth());
            if (failure.empty() && allocation_meter::peak_growth() > most_allocated) {
                failure = "allocated " + std::to_string(allocation_meter::peak_growth()) + " bytes";
            }
            const std::optional<decoded> expected = s.decode(bytes);
            if (failure.empty() && got && (!expected || !(*got == *expected))) {
                failure = expected ? "read other values than the file holds" : "read a file that is not valid";
            }
            if (failure.empty() && i == 0 && !got) {
                failure = "refused the valid seed";
            }
            if (!failure.empty()) {
                ++wrong;
                std::cerr << s.name << ", mutant " << i << ": " << failure << "\n";
            }
            (got ? read : refused) += 1;
        }
    }
    std::filesystem::remove_all(directory);
    std::cout << seeds.size() << " seeds, " << mutants << " mutants each: " << read << " read as decoded, " << refused
              << " refused, " << wrong << " wrong; the largest allocation ";
    if (allocation_meter::active()) {
        std::cout << largest << " bytes (at most " << most_allocated << ")\n";
    } else {
        std::cout << "not measured (sanitizer)\n";
    }
    return wrong == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
