// The tile transforms of Winograd's minimal filtering (lib/ops/winograd.cpp),
// compiled for several instruction sets and run with the machine's (isa.hpp).
#pragma once

#include <cstddef>

namespace gradtape::detail {

// Which matrix M a transform applies, on both sides: out = M in M^T, tile by
// tile. B^T takes a 6x6 input patch to its transform and B takes it back;
// A^T takes a 6x6 product to the m x m output tile of F(m x m, r x r) and A
// takes an output tile's gradient back, for m = 4 (3x3 kernels) and m = 2
// (5x5 kernels).
enum class winograd_matrix { input, input_back, output_4, output_4_back, output_2, output_2_back };

// Rows and columns of a transform's output and input tiles.
constexpr std::size_t winograd_tile = 6;
constexpr std::size_t winograd_output_side(winograd_matrix kind)
{
    switch (kind) {
    case winograd_matrix::output_4: return 4;
    case winograd_matrix::output_2: return 2;
    default: return winograd_tile;
    }
}

// out(i, j)[k] = (M in M^T)(i, j)[k] for k < n, where element (i, j) of a
// tile is a run of n values (channels): at in + i * in_row + j * in_column,
// and at out + i * out_row + j * out_column.
template <class T>
void winograd_transform(winograd_matrix kind, const T* in, std::size_t in_row, std::size_t in_column, T* out,
                        std::size_t out_row, std::size_t out_column, std::size_t n);

}  // namespace gradtape::detail
