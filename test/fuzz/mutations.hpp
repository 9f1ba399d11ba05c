// What the fuzzers share: files read and written whole, and random
// mutations of a valid file (flipped bits, overwritten bytes, truncations,
// insertions).
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

namespace fuzzing {

inline std::string read_bytes(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

inline std::string mutate(std::string bytes, std::mt19937_64& random)
{
    const auto position = [&] { return std::uniform_int_distribution<std::size_t>(0, bytes.size() - 1)(random); };
    const int changes = std::uniform_int_distribution<int>(1, 4)(random);
    for (int i = 0; i < changes && !bytes.empty(); ++i) {
        switch (std::uniform_int_distribution<int>(0, 3)(random)) {
        case 0:
            bytes[position()] ^= char(1U << std::uniform_int_distribution<int>(0, 7)(random));
            break;
        case 1:
            bytes[position()] = char(std::uniform_int_distribution<int>(0, 255)(random));
            break;
        case 2:
            bytes.resize(position());
            break;
        default:
            bytes.insert(position(), 1, char(std::uniform_int_distribution<int>(0, 255)(random)));
            break;
        }
    }
    return bytes;
}

}  // namespace fuzzing
