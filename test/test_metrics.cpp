// lib/metrics.cpp: accuracy, the confusion matrix, and its picture read back
// through zlib as a PNG decoder would.
#include <cmath>
#include <sstream>
#include <fstream>
#include <iterator>
#include <string>

#include <zlib.h>

#include "support.hpp"

namespace gt = gradtape;
using Catch::Matchers::Contains;
using support::scratch_directory;

namespace {

std::uint32_t big_endian(const std::string& bytes, std::size_t at)
{
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i) {
        value = (value << 8) | std::uint8_t(bytes[at + i]);
    }
    return value;
}

struct decoded_png {
    std::uint32_t width = 0;
    std::uint32_t height = 0;
    std::string rows;  // each: a filter byte, then RGB
};

// Walks the chunks, checking each CRC, and inflates the image data.
decoded_png decode(const std::string& file)
{
    REQUIRE(file.substr(0, 8) == "\x89PNG\r\n\x1a\n");
    decoded_png png;
    std::string packed;
    for (std::size_t at = 8; at < file.size();) {
        const std::uint32_t length = big_endian(file, at);
        const std::string type = file.substr(at + 4, 4);
        const std::string typed = file.substr(at + 4, 4 + length);
        REQUIRE(big_endian(file, at + 8 + length) ==
                crc32(0, reinterpret_cast<const Bytef*>(typed.data()), uInt(typed.size())));
        if (type == "IHDR") {
            png.width = big_endian(file, at + 8);
            png.height = big_endian(file, at + 12);
            REQUIRE(file.substr(at + 16, 5) == std::string{char(8), char(2), char(0), char(0), char(0)});
        } else if (type == "IDAT") {
            packed += file.substr(at + 8, length);
        }
        at += 12 + length;
    }
    png.rows.resize(png.height * (1 + png.width * 3));
    uLongf size = png.rows.size();
    REQUIRE(uncompress(reinterpret_cast<Bytef*>(png.rows.data()), &size, reinterpret_cast<const Bytef*>(packed.data()),
                       uLong(packed.size())) == Z_OK);
    REQUIRE(size == png.rows.size());
    return png;
}

std::array<int, 3> pixel(const decoded_png& png, std::size_t x, std::size_t y)
{
    const std::size_t at = y * (1 + png.width * 3) + 1 + x * 3;
    return {std::uint8_t(png.rows[at]), std::uint8_t(png.rows[at + 1]), std::uint8_t(png.rows[at + 2])};
}

}  // namespace

TEST_CASE("accuracy counts the predictions equal to their labels", "[metrics]")
{
    const xt::xarray<std::int64_t> labels{0, 1, 2, 1};
    REQUIRE(gt::accuracy(labels, xt::xarray<std::int64_t>{0, 2, 2, 1}) == 0.75);
    const gt::Tensor64 logits(xt::xarray<double>{{5, 1, 0}, {0, 1, 3}, {0, 0, 9}, {-1, 2, 1}});
    REQUIRE(gt::accuracy(labels, logits) == 0.75);
    REQUIRE(std::isnan(gt::accuracy(xt::xarray<std::int64_t>::from_shape({0}), xt::xarray<std::int64_t>::from_shape({0}))));
    REQUIRE_THROWS_WITH(gt::accuracy(labels, xt::xarray<std::int64_t>{0, 1}),
                        Contains("accuracy") && Contains("(4,)") && Contains("(2,)"));
}

TEST_CASE("a confusion matrix counts label-prediction pairs, prints them and draws them", "[metrics]")
{
    gt::confusion_matrix matrix(3, {"cat", "dog", "bird"});
    matrix.add({0, 0, 0, 0, 1, 1, 2}, {0, 0, 0, 1, 1, 1, 0});
    REQUIRE((matrix.counts() == xt::xarray<std::int64_t>{{3, 1, 0}, {0, 2, 0}, {1, 0, 0}}));
    REQUIRE(matrix.total() == 7);
    REQUIRE(matrix.accuracy() == Approx(5.0 / 7.0));
    std::ostringstream printed;
    printed << matrix;
    REQUIRE_THAT(printed.str(), Contains("  cat |     3     1     0 | 0.750") && Contains(" bird |     1     0     0 | 0.000") &&
                                    Contains("accuracy 0.7143 over 7 examples"));
    const auto counted = matrix.counts();
    REQUIRE_THROWS_WITH(matrix.add({0, 3}, {0, 0}), Contains("label 3 is not a class in [0, 3)"));
    REQUIRE_THROWS_WITH(matrix.add({0, 1}, {-1, 0}), Contains("prediction -1"));
    REQUIRE((matrix.counts() == counted));
    REQUIRE_THROWS_AS(gt::confusion_matrix(3, {"a", "b"}), gt::argument_error);

    scratch_directory scratch;
    const auto file = scratch.path / "confusion.png";
    matrix.write_png(file);
    std::ifstream in(file, std::ios::binary);
    const decoded_png png = decode(std::string(std::istreambuf_iterator<char>(in), {}));
    // Three 40-pixel squares after a 28-pixel margin for the class numbers, and 20 pixels after.
    REQUIRE(png.width == 28 + 3 * 40 + 20);
    REQUIRE(png.height == png.width);
    // Each square shaded from white (0%) to (8, 48, 107) (100%) by its share of the row.
    const auto shade = [](double share) {
        return std::array<int, 3>{int(std::lround(255 + (8 - 255) * share)), int(std::lround(255 + (48 - 255) * share)),
                                  int(std::lround(255 + (107 - 255) * share))};
    };
    const auto corner = [&](std::size_t label, std::size_t prediction) {
        return pixel(png, 28 + prediction * 40 + 1, 28 + label * 40 + 1);
    };
    REQUIRE(corner(0, 0) == shade(0.75));
    REQUIRE(corner(0, 1) == shade(0.25));
    REQUIRE(corner(1, 1) == shade(1.0));
    REQUIRE(corner(2, 0) == shade(1.0));
    REQUIRE(corner(2, 2) == shade(0.0));
    // The square of 100% carries white digits, the one of 25% black ones.
    const auto has = [&](std::size_t label, std::size_t prediction, std::array<int, 3> colour) {
        for (std::size_t y = 0; y < 40; ++y) {
            for (std::size_t x = 0; x < 40; ++x) {
                if (pixel(png, 28 + prediction * 40 + x, 28 + label * 40 + y) == colour) {
                    return true;
                }
            }
        }
        return false;
    };
    REQUIRE(has(1, 1, {255, 255, 255}));
    REQUIRE(has(0, 1, {0, 0, 0}));
    REQUIRE_FALSE(has(2, 2, {0, 0, 0}));
}
