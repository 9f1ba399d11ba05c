// lib/datasets.cpp: IDX files written here byte by byte, plain and gzipped,
// read back; malformed ones refused; and Fashion-MNIST as Debian installs it.
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include "support.hpp"

namespace gt = gradtape;
using Catch::Matchers::Contains;
using support::scratch_directory;

namespace {

// An IDX file: zero, zero, type, rank, the dimensions as big-endian 32-bit
// numbers, then the elements, big-endian.
std::string idx_bytes(std::uint8_t type, const std::vector<std::uint32_t>& dims, const std::vector<std::uint8_t>& data)
{
    std::string bytes{char(0), char(0), char(type), char(dims.size())};
    for (std::uint32_t dim : dims) {
        for (int shift = 24; shift >= 0; shift -= 8) {
            bytes += char((dim >> shift) & 0xff);
        }
    }
    bytes.append(data.begin(), data.end());
    return bytes;
}

std::filesystem::path write(const std::filesystem::path& path, const std::string& bytes, bool gzipped = false)
{
    if (gzipped) {
        gzFile file = gzopen(path.c_str(), "wb");
        REQUIRE(file != nullptr);
        REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
        REQUIRE(gzclose(file) == Z_OK);
    } else {
        std::ofstream(path, std::ios::binary) << bytes;
    }
    return path;
}

}  // namespace

TEST_CASE("read_idx reads every IDX element type, plain or gzipped", "[datasets]")
{
    scratch_directory scratch;
    // 2 x 3 unsigned bytes, 0..255 as stored.
    const std::string pixels = idx_bytes(0x08, {2, 3}, {0, 1, 2, 253, 254, 255});
    for (bool gzipped : {false, true}) {
        const auto path = write(scratch.path / (gzipped ? "pixels.gz" : "pixels"), pixels, gzipped);
        const auto read = gt::read_idx<std::int64_t>(path);
        REQUIRE((read == xt::xarray<std::int64_t>{{0, 1, 2}, {253, 254, 255}}));
        REQUIRE((gt::read_idx<float>(path) == xt::xarray<float>{{0, 1, 2}, {253, 254, 255}}));
    }
    // Signed bytes, 16- and 32-bit integers, float and double, big-endian.
    REQUIRE((gt::read_idx<std::int64_t>(write(scratch.path / "s8", idx_bytes(0x09, {2}, {0xff, 0x80}))) ==
             xt::xarray<std::int64_t>{-1, -128}));
    REQUIRE((gt::read_idx<std::int64_t>(write(scratch.path / "s16", idx_bytes(0x0B, {1}, {0x12, 0x34}))) ==
             xt::xarray<std::int64_t>{0x1234}));
    REQUIRE((gt::read_idx<std::int64_t>(write(scratch.path / "s32", idx_bytes(0x0C, {1}, {0xff, 0xff, 0xff, 0xfe}))) ==
             xt::xarray<std::int64_t>{-2}));
    // 1.5f is 0x3fc00000; -0.25 is 0xbfd0000000000000.
    REQUIRE((gt::read_idx<float>(write(scratch.path / "f32", idx_bytes(0x0D, {1}, {0x3f, 0xc0, 0, 0}))) ==
             xt::xarray<float>{1.5f}));
    REQUIRE((gt::read_idx<double>(write(scratch.path / "f64", idx_bytes(0x0E, {1}, {0xbf, 0xd0, 0, 0, 0, 0, 0, 0}))) ==
             xt::xarray<double>{-0.25}));
}

TEST_CASE("read_idx refuses malformed files, naming the file and the fault", "[datasets][errors]")
{
    scratch_directory scratch;
    const auto refused = [&](const std::string& name, const std::string& bytes, const std::string& fault,
                             bool gzipped = false) {
        INFO(name);
        const auto path = write(scratch.path / name, bytes, gzipped);
        REQUIRE_THROWS_AS(gt::read_idx<float>(path), gt::argument_error);
        REQUIRE_THROWS_WITH(gt::read_idx<float>(path), Contains("read_idx") && Contains(name) && Contains(fault));
    };
    refused("magic", std::string("\x01\x00\x08\x01\x00\x00\x00\x01\x07", 9), "magic");
    refused("type", idx_bytes(0x07, {1}, {0}), "unknown element type");
    refused("rank", std::string("\x00\x00\x08\x03\x00\x00\x00\x01", 8), "cut short");
    refused("short", idx_bytes(0x08, {2, 3}, {1, 2, 3, 4, 5}), "need 6 bytes of data, it has 5");
    refused("long", idx_bytes(0x08, {2}, {1, 2, 3}), "need 2 bytes of data, it has 3");
    refused("huge", idx_bytes(0x08, {0xffffffff, 0xffffffff, 0xffffffff}, {}), "too large");
    // A gzip stream whose data was damaged fails zlib's checks.
    const std::string good = idx_bytes(0x08, {4}, {1, 2, 3, 4});
    write(scratch.path / "damaged", good, true);
    std::string damaged;
    {
        std::ifstream in(scratch.path / "damaged", std::ios::binary);
        damaged.assign(std::istreambuf_iterator<char>(in), {});
    }
    damaged[damaged.size() - 6] = char(damaged[damaged.size() - 6] ^ 0x55);
    refused("damaged", damaged, "not a valid gzip stream");
    // Bytes after the gzip stream that are no further member.
    std::string trailing;
    write(scratch.path / "trailing", good, true);
    {
        std::ifstream in(scratch.path / "trailing", std::ios::binary);
        trailing.assign(std::istreambuf_iterator<char>(in), {});
    }
    refused("trailing", trailing + "junk", "4 bytes after the gzip stream are not another gzip member");
    // Two members are one stream, as gzip reads them: here the data's second half.
    const std::string whole = idx_bytes(0x08, {4}, {1, 2, 3, 4});
    write(scratch.path / "first", whole.substr(0, 10), true);
    write(scratch.path / "second", whole.substr(10), true);
    std::string members;
    for (const char* part : {"first", "second"}) {
        std::ifstream in(scratch.path / part, std::ios::binary);
        members.append(std::istreambuf_iterator<char>(in), {});
    }
    const auto joined = write(scratch.path / "members", members);
    REQUIRE((gt::read_idx<float>(joined) == xt::xarray<float>{1, 2, 3, 4}));
    REQUIRE_THROWS_WITH(gt::read_idx<float>(scratch.path / "nothing"), Contains("cannot open"));
}

TEST_CASE("fashion_mnist reads Debian's dataset-fashion-mnist: 60,000 and 10,000 balanced images", "[datasets]")
{
    const std::filesystem::path directory = "/usr/share/datasets/fashion-mnist";
    if (!std::filesystem::exists(directory / "train-images-idx3-ubyte.gz")) {
        WARN("skipped: the Debian package dataset-fashion-mnist is not installed");
        return;
    }
    const gt::image_dataset data = gt::fashion_mnist();
    REQUIRE(data.train_images.shape() == gt::shape_type{60000, 28, 28, 1});
    REQUIRE(data.test_images.shape() == gt::shape_type{10000, 28, 28, 1});
    REQUIRE(xt::amin(data.train_images.value())() == 0.f);
    REQUIRE(xt::amax(data.train_images.value())() == 1.f);
    // Every class has 6,000 training images and 1,000 test images.
    std::array<int, 10> train{}, test{};
    for (std::int64_t label : data.train_labels) {
        ++train[std::size_t(label)];
    }
    for (std::int64_t label : data.test_labels) {
        ++test[std::size_t(label)];
    }
    for (std::size_t c = 0; c < 10; ++c) {
        REQUIRE(train[c] == 6000);
        REQUIRE(test[c] == 1000);
    }
    // The first training image is an ankle boot (class 9).
    REQUIRE(data.train_labels(0) == 9);
}

TEST_CASE("read_idx inflates only the data its header declares, and refuses what its type cannot hold",
          "[datasets][errors]")
{
    scratch_directory scratch;
    // A header declaring 4 bytes, then 64 MiB of zeros (64 KiB gzipped): read
    // as it inflates, the reader stops after the declared 4 and one more.
    std::string bomb = idx_bytes(0x08, {4}, {1, 2, 3, 4});
    bomb.append(std::size_t{64} << 20, '\0');
    const auto path = write(scratch.path / "bomb", bomb, true);
    REQUIRE(std::filesystem::file_size(path) < (std::size_t{1} << 20));
    const auto start = std::chrono::steady_clock::now();
    REQUIRE_THROWS_WITH(gt::read_idx<float>(path), Contains("need 4 bytes of data, it has more"));
    // Inflating the 64 MiB takes tens of milliseconds; stopping, far less.
    INFO("refused after " << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s");

    // A NaN, a fraction's whole part out of range and a negative number are no
    // uint8; a NaN label is no int64 (it was read as -9223372036854775808).
    const std::uint8_t nan[] = {0x7f, 0xc0, 0, 0};
    REQUIRE_THROWS_WITH(gt::read_idx<std::int64_t>(write(scratch.path / "nan", idx_bytes(0x0D, {1}, {nan, nan + 4}))),
                        Contains("element 0 (nan) is not a value of int64"));
    const auto wide = write(scratch.path / "wide", idx_bytes(0x0C, {2}, {0, 0, 0, 7, 0, 0, 1, 44}));
    REQUIRE_THROWS_WITH(gt::read_idx<std::uint8_t>(wide), Contains("element 1 (300) is not a value of uint8"));
    REQUIRE((gt::read_idx<std::int64_t>(wide) == xt::xarray<std::int64_t>{7, 300}));
    const auto negative = write(scratch.path / "negative", idx_bytes(0x09, {1}, {0xff}));
    REQUIRE_THROWS_WITH(gt::read_idx<std::uint8_t>(negative), Contains("element 0 (-1) is not a value of uint8"));
}

TEST_CASE("fashion_mnist names the package when its files are missing", "[datasets][errors]")
{
    REQUIRE_THROWS_AS(gt::fashion_mnist("/nonexistent"), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::fashion_mnist("/nonexistent"),
                        Contains("fashion_mnist") && Contains("dataset-fashion-mnist") && Contains("test_datasets.cpp:"));
    // A file given for the directory, or a directory without the files, is named as such.
    scratch_directory scratch;
    const auto file = write(scratch.path / "file.gz", "not a directory");
    REQUIRE_THROWS_WITH(gt::fashion_mnist(file), Contains("file.gz' is not a directory"));
    REQUIRE_THROWS_WITH(gt::fashion_mnist(scratch.path), Contains("holds no train-images-idx3-ubyte.gz"));
}

namespace {

std::filesystem::path write_text(const std::filesystem::path& path, const std::string& text)
{
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

}  // namespace

TEST_CASE("read_csv reads a table of numbers, with or without a header", "[datasets]")
{
    scratch_directory scratch;
    const auto plain = write_text(scratch.path / "plain.csv", "1, 2.5,-3\r\n+4,5e-1 ,6\n\n");
    REQUIRE((gt::read_csv<double>(plain) == xt::xarray<double>{{1, 2.5, -3}, {4, 0.5, 6}}));
    const auto labelled = write_text(scratch.path / "labelled.tsv", "x\ty\n7\t8\n9\t10");
    REQUIRE((gt::read_csv<std::int64_t>(labelled, {.delimiter = '\t', .header = true}) ==
             xt::xarray<std::int64_t>{{7, 8}, {9, 10}}));
    REQUIRE(gt::read_csv<float>(write_text(scratch.path / "empty.csv", "")).shape() == gt::shape_type{0, 0});
    // A value too small for the type is a number, rounded as strtod rounds it.
    const auto tiny = write_text(scratch.path / "tiny.csv", "1e-50,-1e-400,1e-40\n");
    const xt::xarray<float> small = gt::read_csv<float>(tiny);
    REQUIRE(small(0, 0) == 0.f);
    REQUIRE((small(0, 1) == 0.f && std::signbit(small(0, 1))));
    REQUIRE(small(0, 2) == std::strtof("1e-40", nullptr));
    REQUIRE(small(0, 2) > 0.f);
    REQUIRE(gt::read_csv<double>(tiny)(0, 1) == 0.0);
}

TEST_CASE("read_csv names the file, line and field of what it cannot read", "[datasets][errors]")
{
    scratch_directory scratch;
    const auto short_row = write_text(scratch.path / "short.csv", "1,2,3\n4,5\n");
    REQUIRE_THROWS_WITH(gt::read_csv<double>(short_row),
                        Contains("read_csv") && Contains("short.csv' line 2: has 2 fields; the first row has 3") &&
                            Contains("test_datasets.cpp"));
    const auto missing = write_text(scratch.path / "missing.csv", "1,2,3\n4,,6\n");
    REQUIRE_THROWS_WITH(gt::read_csv<double>(missing), Contains("line 2: field 2 is empty"));
    const auto word = write_text(scratch.path / "word.csv", "1,2\n3,four\n");
    REQUIRE_THROWS_WITH(gt::read_csv<float>(word), Contains("line 2: field 2 ('four') is not a number of type float32"));
    const auto fraction = write_text(scratch.path / "fraction.csv", "1,2.5\n");
    REQUIRE_THROWS_WITH(gt::read_csv<std::int64_t>(fraction), Contains("('2.5') is not a number of type int64"));
    // One sign only: '+-5' is not -5.
    const auto signs = write_text(scratch.path / "signs.csv", "+-5\n");
    REQUIRE_THROWS_WITH(gt::read_csv<double>(signs), Contains("('+-5') is not a number of type float64"));
    REQUIRE_THROWS_AS(gt::read_csv<std::int64_t>(signs), gt::argument_error);
    // A value beyond the type's range is no number of it; a NUL in a field
    // does not cut the message short.
    REQUIRE_THROWS_WITH(gt::read_csv<float>(write_text(scratch.path / "large.csv", "1e39\n")),
                        Contains("('1e39') is not a number of type float32"));
    REQUIRE_THROWS_WITH(gt::read_csv<double>(write_text(scratch.path / "nul.csv", std::string("1\0x", 3) + "\n")),
                        Contains("('1\\x00x') is not a number of type float64"));
    REQUIRE_THROWS_AS(gt::read_csv<double>(scratch.path / "absent.csv"), gt::argument_error);
}
