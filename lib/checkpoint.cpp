// .npz reading and writing: a ZIP archive of .npy files, stored without
// compression (numpy.savez), with just the parts of both formats that needs.
#include <gradtape/checkpoint.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <unistd.h>

#include "diagnostics.hpp"

namespace gradtape {

using detail::fail;

namespace {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian machine");

std::uint32_t crc32(const char* data, std::size_t size)
{
    static const auto table = [] {
        std::array<std::uint32_t, 256> entries{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) {
                c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
            }
            entries[i] = c;
        }
        return entries;
    }();
    std::uint32_t crc = 0xFFFFFFFFU;
    for (std::size_t i = 0; i < size; ++i) {
        crc = table[(crc ^ std::uint8_t(data[i])) & 0xFFU] ^ (crc >> 8);
    }
    return crc ^ 0xFFFFFFFFU;
}

void put16(std::string& out, std::uint32_t value)
{
    out += char(value & 0xFF);
    out += char((value >> 8) & 0xFF);
}

void put32(std::string& out, std::uint32_t value)
{
    put16(out, value & 0xFFFF);
    put16(out, value >> 16);
}

std::uint32_t get16(const std::string& in, std::size_t at)
{
    return std::uint32_t(std::uint8_t(in[at])) | std::uint32_t(std::uint8_t(in[at + 1])) << 8;
}

std::uint32_t get32(const std::string& in, std::size_t at)
{
    return get16(in, at) | get16(in, at + 2) << 16;
}

template <dtype T>
std::string npy(const xt::xarray<T>& values)
{
    std::string shape = "(";
    for (std::size_t dim : values.shape()) {
        shape += std::to_string(dim) + ",";
    }
    if (values.dimension() > 1) {
        shape.pop_back();
    }
    shape += ")";
    std::string header = std::string("{'descr': '") + (sizeof(T) == 4 ? "<f4" : "<f8") +
                         "', 'fortran_order': False, 'shape': " + shape + ", }";
    // Magic (6) + version (2) + length (2) + header, padded with spaces to a multiple of 64, ending in '\n'.
    header.append(63 - (10 + header.size()) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += char(1);
    out += char(0);
    put16(out, std::uint32_t(header.size()));
    out += header;
    out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return out;
}

struct npy_array {
    std::string dtype;  // "<f4" or "<f8"
    shape_type shape;
    std::string data;
};

// The text after "'key':" in a .npy header's dictionary, with leading spaces
// skipped; empty when the key is absent.
std::string_view header_value(std::string_view header, std::string_view key)
{
    const std::string quoted = "'" + std::string(key) + "':";
    const std::size_t at = header.find(quoted);
    if (at == std::string_view::npos) {
        return {};
    }
    std::string_view rest = header.substr(at + quoted.size());
    return rest.substr(std::min(rest.find_first_not_of(' '), rest.size()));
}

npy_array parse_npy(const std::string& bytes, const std::string& name, const std::source_location& site)
{
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>("load_checkpoint", site, "array '" + name + "' is not a readable .npy: " + why);
    };
    if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
        refuse("no .npy magic");
    }
    const int major = bytes[6];
    const std::size_t length_bytes = major == 1 ? 2 : 4;
    if (bytes.size() < 8 + length_bytes) {
        refuse("truncated header");
    }
    const std::size_t header_length = length_bytes == 2 ? get16(bytes, 8) : get32(bytes, 8);
    const std::size_t data_start = 8 + length_bytes + header_length;
    if (data_start > bytes.size()) {
        refuse("truncated header");
    }
    const std::string_view header = std::string_view(bytes).substr(8 + length_bytes, header_length);
    npy_array array;
    const std::string_view descr = header_value(header, "descr");
    if (descr.size() < 2 || descr[0] != '\'' || descr.find('\'', 1) == std::string_view::npos) {
        refuse("no descr");
    }
    array.dtype = descr.substr(1, descr.find('\'', 1) - 1);
    if (array.dtype != "<f4" && array.dtype != "<f8") {
        refuse("dtype " + array.dtype + " is not float32 or float64");
    }
    if (header_value(header, "fortran_order").starts_with("True")) {
        refuse("Fortran order is not supported");
    }
    const std::string_view shape = header_value(header, "shape");
    if (!shape.starts_with('(') || shape.find(')') == std::string_view::npos) {
        refuse("no shape");
    }
    // A corrupt header may hold any numbers: the element count must not overflow.
    std::size_t count = 1;
    const std::string_view dims = shape.substr(1, shape.find(')') - 1);
    for (std::size_t at = dims.find_first_of("0123456789"); at != std::string_view::npos;
         at = dims.find_first_of("0123456789", at)) {
        std::size_t dim = 0;
        const auto [next, failure] = std::from_chars(dims.data() + at, dims.data() + dims.size(), dim);
        if (failure != std::errc() || (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim / 8)) {
            refuse("shape (" + std::string(dims) + ") is too large");
        }
        array.shape.push_back(dim);
        count *= dim;
        at = std::size_t(next - dims.data());
    }
    const std::size_t bytes_needed = count * (array.dtype == "<f4" ? 4 : 8);
    if (bytes.size() - data_start != bytes_needed) {
        refuse("it holds " + std::to_string(bytes.size() - data_start) + " bytes of data for shape " +
               detail::format_shape(array.shape) + ", which needs " + std::to_string(bytes_needed));
    }
    array.data = bytes.substr(data_start);
    return array;
}

// The stored files of an uncompressed ZIP archive, by name, from its central directory.
std::map<std::string, std::string> read_zip(const std::filesystem::path& path, const std::source_location& site)
{
    std::ifstream file(path, std::ios::binary);
    if (!file) {
        fail<argument_error>("load_checkpoint", site, "cannot open '" + path.string() + "'");
    }
    const std::string archive((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    const auto refuse = [&](const std::string& why) {
        fail<argument_error>("load_checkpoint", site, "'" + path.string() + "' is not a readable .npz: " + why);
    };
    const std::size_t end_record = archive.size() < 22 ? std::string::npos : archive.rfind("PK\x05\x06");
    if (end_record == std::string::npos || end_record + 22 > archive.size()) {
        refuse("no end of central directory (truncated?)");
    }
    const std::size_t entries = get16(archive, end_record + 10);
    std::size_t at = get32(archive, end_record + 16);
    std::map<std::string, std::string> files;
    for (std::size_t i = 0; i < entries; ++i) {
        if (at + 46 > archive.size() || get32(archive, at) != 0x02014b50U) {
            refuse("a damaged central directory");
        }
        const std::uint32_t method = get16(archive, at + 10);
        const std::size_t compressed = get32(archive, at + 20);
        const std::size_t name_length = get16(archive, at + 28);
        const std::size_t extra_length = get16(archive, at + 30);
        const std::size_t comment_length = get16(archive, at + 32);
        const std::size_t local = get32(archive, at + 42);
        const std::string name = archive.substr(at + 46, name_length);
        if (method != 0) {
            refuse("'" + name + "' is compressed (numpy.savez_compressed); save with numpy.savez");
        }
        if (compressed == 0xFFFFFFFFU || local == 0xFFFFFFFFU) {
            refuse("'" + name + "' needs ZIP64, which is not supported");
        }
        if (local + 30 > archive.size() || get32(archive, local) != 0x04034b50U) {
            refuse("a damaged entry for '" + name + "'");
        }
        const std::size_t data = local + 30 + get16(archive, local + 26) + get16(archive, local + 28);
        if (data + compressed > archive.size()) {
            refuse("'" + name + "' is cut short (truncated file)");
        }
        files[name] = archive.substr(data, compressed);
        at += 46 + name_length + extra_length + comment_length;
    }
    return files;
}

std::string zip(const std::vector<std::pair<std::string, std::string>>& files)
{
    std::string out;
    std::string directory;
    for (const auto& [name, contents] : files) {
        const std::uint32_t crc = crc32(contents.data(), contents.size());
        const auto offset = std::uint32_t(out.size());
        const auto common = [&](std::string& record) {
            put16(record, 20);  // version needed: 2.0
            put16(record, 0);   // flags
            put16(record, 0);   // stored
            put16(record, 0);   // time
            put16(record, 0x21);  // date: 1980-01-01
            put32(record, crc);
            put32(record, std::uint32_t(contents.size()));
            put32(record, std::uint32_t(contents.size()));
            put16(record, std::uint32_t(name.size()));
            put16(record, 0);  // extra length
        };
        put32(out, 0x04034b50U);
        common(out);
        out += name;
        out += contents;

        put32(directory, 0x02014b50U);
        put16(directory, 20);  // version made by
        common(directory);
        put16(directory, 0);  // comment length
        put16(directory, 0);  // disk
        put16(directory, 0);  // internal attributes
        put32(directory, 0);  // external attributes
        put32(directory, offset);
        directory += name;
    }
    const auto directory_offset = std::uint32_t(out.size());
    out += directory;
    put32(out, 0x06054b50U);
    put16(out, 0);
    put16(out, 0);
    put16(out, std::uint32_t(files.size()));
    put16(out, std::uint32_t(files.size()));
    put32(out, std::uint32_t(directory.size()));
    put32(out, directory_offset);
    put16(out, 0);
    return out;
}

template <dtype T, class Stored>
xt::xarray<T> convert(const npy_array& array)
{
    auto values = xt::xarray<T>::from_shape(array.shape);
    const auto* stored = reinterpret_cast<const Stored*>(array.data.data());
    std::copy_n(stored, values.size(), values.data());
    return values;
}

void sync_to_disk(const std::filesystem::path& path)
{
    const int descriptor = ::open(path.c_str(), O_RDONLY);
    if (descriptor >= 0) {
        ::fsync(descriptor);
        ::close(descriptor);
    }
}

template <dtype T>
void save(const std::filesystem::path& path, const std::vector<basic_variable<T>>& variables,
          const std::source_location& site)
{
    std::set<std::string> names;
    std::vector<std::pair<std::string, std::string>> files;
    for (const auto& variable : variables) {
        if (!names.insert(variable.name()).second) {
            fail<argument_error>("save_checkpoint", site, "two variables are named '" + variable.name() + "'");
        }
        files.emplace_back(variable.name() + ".npy", npy(variable.value()));
    }
    const std::string archive = zip(files);
    std::filesystem::path temporary = path;
    temporary += ".partial";
    {
        std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
        out.write(archive.data(), std::streamsize(archive.size()));
        out.flush();
        if (!out) {
            std::error_code ignored;
            std::filesystem::remove(temporary, ignored);
            fail<argument_error>("save_checkpoint", site, "cannot write '" + temporary.string() + "'");
        }
    }
    // The bytes reach the disk before the rename makes them the checkpoint,
    // and the rename reaches it before save_checkpoint returns.
    sync_to_disk(temporary);
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) {
        fail<argument_error>("save_checkpoint", site,
                             "cannot replace '" + path.string() + "': " + error.message());
    }
    sync_to_disk(path.has_parent_path() ? path.parent_path() : std::filesystem::path("."));
}

template <dtype T>
void load(const std::filesystem::path& path, const std::vector<basic_variable<T>>& variables,
          const std::source_location& site)
{
    const std::map<std::string, std::string> files = read_zip(path, site);
    std::vector<xt::xarray<T>> values;
    for (const auto& variable : variables) {
        const auto found = files.find(variable.name() + ".npy");
        if (found == files.end()) {
            fail<argument_error>("load_checkpoint", site,
                                 "'" + path.string() + "' has no array named '" + variable.name() + "'");
        }
        const npy_array array = parse_npy(found->second, variable.name(), site);
        if (array.shape != variable.shape()) {
            fail<shape_error>("load_checkpoint", site,
                              "array '" + variable.name() + "' has shape " + detail::format_shape(array.shape) +
                                  ", the variable " + detail::format_shape(variable.shape()));
        }
        values.push_back(array.dtype == "<f4" ? convert<T, float>(array) : convert<T, double>(array));
    }
    // Only once every array is read and checked does any variable change.
    for (std::size_t i = 0; i < variables.size(); ++i) {
        variables[i].storage() = std::move(values[i]);
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
