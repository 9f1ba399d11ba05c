// PNG images, encoded with zlib: the library's pictures (confusion matrices).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gradtape::detail {

// An RGB picture, rows from the top, 3 bytes per pixel.
struct rgb_image {
    rgb_image(std::size_t width, std::size_t height) : width(width), height(height), pixels(width * height * 3, 255) {}
    void set(std::size_t x, std::size_t y, std::uint32_t colour);
    // A filled rectangle; parts outside the picture are left out.
    void fill(std::size_t x, std::size_t y, std::size_t w, std::size_t h, std::uint32_t colour);
    // Decimal digits in a 3x5 pixel font magnified `scale` times, the top left at (x, y).
    void write_digits(std::size_t x, std::size_t y, const std::string& digits, std::size_t scale, std::uint32_t colour);

    std::size_t width;
    std::size_t height;
    std::vector<std::uint8_t> pixels;
};

// The bytes of a PNG file holding the picture (8-bit RGB, no interlace).
std::string encode_png(const rgb_image& image);

}  // namespace gradtape::detail
