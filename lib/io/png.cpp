#include "io/png.hpp"

#include <array>
#include <stdexcept>

#include <zlib.h>

namespace gradtape::detail {

namespace {

// Rows of 3 pixels, top first, the leftmost pixel in the highest of 3 bits.
constexpr std::array<std::array<std::uint8_t, 5>, 10> digit_font{{
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1},
    {7, 4, 7, 1, 7}, {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7},
}};

void append_big_endian(std::string& out, std::uint32_t value)
{
    for (int shift = 24; shift >= 0; shift -= 8) {
        out += char((value >> shift) & 0xff);
    }
}

// Length, type, data and the CRC-32 of type and data.
void append_chunk(std::string& out, const char* type, const std::string& data)
{
    append_big_endian(out, std::uint32_t(data.size()));
    const std::string typed = std::string(type, 4) + data;
    out += typed;
    append_big_endian(out, std::uint32_t(crc32(0, reinterpret_cast<const Bytef*>(typed.data()), uInt(typed.size()))));
}

}  // namespace

void rgb_image::set(std::size_t x, std::size_t y, std::uint32_t colour)
{
    if (x < width && y < height) {
        std::uint8_t* pixel = pixels.data() + (y * width + x) * 3;
        pixel[0] = std::uint8_t(colour >> 16);
        pixel[1] = std::uint8_t(colour >> 8);
        pixel[2] = std::uint8_t(colour);
    }
}

void rgb_image::fill(std::size_t x, std::size_t y, std::size_t w, std::size_t h, std::uint32_t colour)
{
    for (std::size_t row = y; row < y + h; ++row) {
        for (std::size_t column = x; column < x + w; ++column) {
            set(column, row, colour);
        }
    }
}

void rgb_image::write_digits(std::size_t x, std::size_t y, const std::string& digits, std::size_t scale,
                             std::uint32_t colour)
{
    for (char digit : digits) {
        const auto& glyph = digit_font.at(std::size_t(digit - '0'));
        for (std::size_t row = 0; row < 5; ++row) {
            for (std::size_t column = 0; column < 3; ++column) {
                if ((glyph[row] >> (2 - column)) & 1U) {
                    fill(x + column * scale, y + row * scale, scale, scale, colour);
                }
            }
        }
        x += 4 * scale;
    }
}

std::string encode_png(const rgb_image& image)
{
    // Each row starts with its filter type, 0: the bytes as they are.
    std::string raw;
    raw.reserve(image.height * (1 + image.width * 3));
    for (std::size_t row = 0; row < image.height; ++row) {
        raw += char(0);
        raw.append(reinterpret_cast<const char*>(image.pixels.data()) + row * image.width * 3, image.width * 3);
    }
    uLongf packed_size = compressBound(uLong(raw.size()));
    std::string packed(packed_size, '\0');
    if (compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
                  uLong(raw.size()), Z_BEST_COMPRESSION) != Z_OK) {
        throw std::runtime_error("zlib could not compress the picture");
    }
    packed.resize(packed_size);

    std::string header;
    append_big_endian(header, std::uint32_t(image.width));
    append_big_endian(header, std::uint32_t(image.height));
    // 8 bits per sample, colour type 2 (RGB), deflate, adaptive filtering, no interlace.
    header += std::string{char(8), char(2), char(0), char(0), char(0)};
    std::string out = "\x89PNG\r\n\x1a\n";
    append_chunk(out, "IHDR", header);
    append_chunk(out, "IDAT", packed);
    append_chunk(out, "IEND", "");
    return out;
}

}  // namespace gradtape::detail
