// The six transforms, each with its matrix a compile-time constant: the
// products with zero entries are never formed (GCC may not drop 0 * x
// itself, which is NaN for an infinite x), and those with 1 and -1 fold to
// additions. Each runs over the n channels of a tile at the vector width of
// the instruction set it is compiled for.
#include "winograd.hpp"

#include <algorithm>
#include <array>
#include <utility>

#include "../dtypes.hpp"
#include "isa.hpp"

namespace gradtape::detail {

namespace {

template <std::size_t Rows, std::size_t Columns>
using table = std::array<std::array<double, Columns>, Rows>;

// Toom-Cook at the points 0, 1, -1, 2, -2 and infinity, as
// test/kernels/winograd_matrices.py derives them exactly (and checks here).
constexpr table<6, 6> input_transform{{
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1},
}};
constexpr table<4, 6> output_transform_4{{
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1},
}};
constexpr table<2, 6> output_transform_2{{
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 1},
}};

template <std::size_t Rows, std::size_t Columns>
constexpr table<Columns, Rows> transposed(const table<Rows, Columns>& m)
{
    table<Columns, Rows> t{};
    for (std::size_t i = 0; i < Rows; ++i) {
        for (std::size_t j = 0; j < Columns; ++j) {
            t[j][i] = m[i][j];
        }
    }
    return t;
}

constexpr table<6, 6> input_transform_back = transposed(input_transform);
constexpr table<6, 4> output_transform_4_back = transposed(output_transform_4);
constexpr table<6, 2> output_transform_2_back = transposed(output_transform_2);

// A run of W channels of one tile element, W a vector's width: the loops
// over it have a constant trip count and no memory to alias, so that the
// compiler turns each into vector instructions.
template <class T, std::size_t W>
using lanes = std::array<T, W>;

// Every helper here is always inlined, so that it is compiled for the
// instruction set of the kernel that calls it.
template <class T, std::size_t W>
[[gnu::always_inline]] inline void add_scaled(lanes<T, W>& out, T weight, const lanes<T, W>& term)
{
    for (std::size_t w = 0; w < W; ++w) {
        out[w] += weight * term[w];
    }
}

// out[i] = the sum over l of M[i][l] * v[l], taking only M's nonzero entries.
template <const auto& M, std::size_t I, class T, std::size_t W, std::size_t... L>
[[gnu::always_inline]] inline void row_times(const lanes<T, W>* v, lanes<T, W>& out, std::index_sequence<L...>)
{
    for (std::size_t w = 0; w < W; ++w) {
        out[w] = T(0);
    }
    ((M[I][L] != 0 ? add_scaled(out, T(M[I][L]), v[L]) : void()), ...);
}

template <const auto& M, class T, std::size_t W, std::size_t... I>
[[gnu::always_inline]] inline void times_matrix(const lanes<T, W>* v, lanes<T, W>* out, std::index_sequence<I...>)
{
    (row_times<M, I>(v, out[I], std::make_index_sequence<M[0].size()>()), ...);
}

// out = M in M^T for channels k..k + W: the columns of `in` first, then the rows.
template <const auto& M, std::size_t W, class T>
[[gnu::always_inline]] inline void sandwich_lanes(const T* in, std::size_t in_row, std::size_t in_column, T* out,
                                                  std::size_t out_row, std::size_t out_column, std::size_t k)
{
    constexpr std::size_t rows = M.size();
    constexpr std::size_t columns = M[0].size();
    std::array<std::array<lanes<T, W>, columns>, columns> d;  // d[j][l] = in(l, j): in's columns as rows
    for (std::size_t l = 0; l < columns; ++l) {
        for (std::size_t j = 0; j < columns; ++j) {
            std::copy_n(in + l * in_row + j * in_column + k, W, d[j][l].begin());
        }
    }
    std::array<std::array<lanes<T, W>, rows>, columns> half;  // half[j] = M times column j of in
    for (std::size_t j = 0; j < columns; ++j) {
        times_matrix<M>(d[j].data(), half[j].data(), std::make_index_sequence<rows>());
    }
    for (std::size_t i = 0; i < rows; ++i) {
        std::array<lanes<T, W>, columns> row;
        for (std::size_t j = 0; j < columns; ++j) {
            row[j] = half[j][i];
        }
        std::array<lanes<T, W>, rows> result;
        times_matrix<M>(row.data(), result.data(), std::make_index_sequence<rows>());
        for (std::size_t j = 0; j < rows; ++j) {
            std::copy_n(result[j].begin(), W, out + i * out_row + j * out_column + k);
        }
    }
}

// A 64-byte vector's worth of channels at a time, then one at a time.
template <const auto& M, class T>
[[gnu::always_inline]] inline void sandwich(const T* in, std::size_t in_row, std::size_t in_column, T* out,
                                            std::size_t out_row, std::size_t out_column, std::size_t n)
{
    constexpr std::size_t width = 64 / sizeof(T);
    std::size_t k = 0;
    for (; k + width <= n; k += width) {
        sandwich_lanes<M, width>(in, in_row, in_column, out, out_row, out_column, k);
    }
    for (; k < n; ++k) {
        sandwich_lanes<M, 1>(in, in_row, in_column, out, out_row, out_column, k);
    }
}

template <class T>
[[gnu::always_inline]] inline void transform(winograd_matrix kind, const T* in, std::size_t in_row,
                                             std::size_t in_column, T* out, std::size_t out_row,
                                             std::size_t out_column, std::size_t n)
{
    switch (kind) {
    case winograd_matrix::input:
        sandwich<input_transform>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::input_back:
        sandwich<input_transform_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_4:
        sandwich<output_transform_4>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_4_back:
        sandwich<output_transform_4_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_2:
        sandwich<output_transform_2>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_2_back:
        sandwich<output_transform_2_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    }
}

#define GRADTAPE_WINOGRAD_KERNEL(ISA, TARGET)                                                                         \
    template <class T>                                                                                                 \
    TARGET void transform_##ISA(winograd_matrix kind, const T* in, std::size_t in_row, std::size_t in_column, T* out, \
                                std::size_t out_row, std::size_t out_column, std::size_t n)                            \
    {                                                                                                                  \
        transform(kind, in, in_row, in_column, out, out_row, out_column, n);                                           \
    }

#if defined(__x86_64__)
GRADTAPE_WINOGRAD_KERNEL(sse2, [[gnu::target("arch=x86-64")]])
GRADTAPE_WINOGRAD_KERNEL(avx2, [[gnu::target("arch=x86-64-v3")]])
GRADTAPE_WINOGRAD_KERNEL(avx512, [[gnu::target("arch=x86-64-v4")]])

template <class T>
auto chosen_transform()
{
    switch (chosen_isa()) {
    case isa::avx512: return &transform_avx512<T>;
    case isa::avx2: return &transform_avx2<T>;
    case isa::baseline: break;
    }
    return &transform_sse2<T>;
}
#else
GRADTAPE_WINOGRAD_KERNEL(baseline, )

template <class T>
auto chosen_transform()
{
    return &transform_baseline<T>;
}
#endif

#undef GRADTAPE_WINOGRAD_KERNEL

}  // namespace

template <class T>
void winograd_transform(winograd_matrix kind, const T* in, std::size_t in_row, std::size_t in_column, T* out,
                        std::size_t out_row, std::size_t out_column, std::size_t n)
{
    static const auto chosen = chosen_transform<T>();
    chosen(kind, in, in_row, in_column, out, out_row, out_column, n);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void winograd_transform(winograd_matrix, const T*, std::size_t, std::size_t, T*, std::size_t,            \
                                     std::size_t, std::size_t);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape::detail
