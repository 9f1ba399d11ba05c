// The tile transforms of Winograd's minimal filtering (lib/ops/winograd.cpp),
// compiled for several instruction sets and run with the machine's (isa.hpp).
#pragma once

#include <cstddef>

namespace gradtape::detail {

// Which matrix M a transform applies, on both sides: out = M in M^T, tile by
// tile. For F(4x4, 3x3) over 6x6 tiles and F(4x4, 5x5) over 8x8 ones, B^T
// takes an input patch to its transform and B takes it back; A^T takes a
// tile's products to its 4x4 output tile and A takes an output tile's
// gradient back.
enum class winograd_matrix { input_6, input_6_back, output_6, output_6_back, input_8, input_8_back, output_8, output_8_back };

// out(i, j)[k] = (M in M^T)(i, j)[k] for k < n, where element (i, j) of a
// tile is a run of n values (channels): at in + i * in_row + j * in_column,
// and at out + i * out_row + j * out_column.
template <class T>
void winograd_transform(winograd_matrix kind, const T* in, std::size_t in_row, std::size_t in_column, T* out,
                        std::size_t out_row, std::size_t out_column, std::size_t n);

}  // namespace gradtape::detail
