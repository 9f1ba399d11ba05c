// The eight transforms, each with its matrix a compile-time constant: the
// products with zero entries are never formed (GCC may not drop 0 * x
// itself, which is NaN for an infinite x), and those with 1 and -1 fold to
// additions. Each runs over the n channels of a tile at the vector width of
// the instruction set it is compiled for.
#include "kernels/winograd.hpp"

#include <array>
#include <cstring>
#include <utility>

#include "core/dtypes.hpp"
#include "kernels/isa.hpp"

namespace gradtape::detail {

namespace {

template <std::size_t Rows, std::size_t Columns>
using table = std::array<std::array<double, Columns>, Rows>;

// Toom-Cook at the points 0, 1, -1, 2, -2 (and 1/2, -1/2 for the 8x8
// tiles) and infinity, as test/kernels/winograd_matrices.py derives them
// exactly (and checks here).
constexpr table<6, 6> input_transform_6{{
    {4, 0, -5, 0, 1, 0},
    {0, -4, -4, 1, 1, 0},
    {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0},
    {0, 2, -1, -2, 1, 0},
    {0, 4, 0, -5, 0, 1},
}};
constexpr table<4, 6> output_transform_6{{
    {1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 0},
    {0, 1, 1, 4, 4, 0},
    {0, 1, -1, 8, -8, 1},
}};
constexpr table<8, 8> input_transform_8{{
    {-1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1, 0},
    {0, 1, 1, -17.0 / 4, -17.0 / 4, 1, 1, 0},
    {0, -1, 1, 17.0 / 4, -17.0 / 4, -1, 1, 0},
    {0, 1.0 / 2, 1.0 / 4, -5.0 / 2, -5.0 / 4, 2, 1, 0},
    {0, -1.0 / 2, 1.0 / 4, 5.0 / 2, -5.0 / 4, -2, 1, 0},
    {0, 2, 4, -5.0 / 2, -5, 1.0 / 2, 1, 0},
    {0, -2, 4, 5.0 / 2, -5, -1.0 / 2, 1, 0},
    {0, -1, 0, 21.0 / 4, 0, -21.0 / 4, 0, 1},
}};
constexpr table<4, 8> output_transform_8{{
    {1, 1, 1, 1, 1, 1, 1, 0},
    {0, 1, -1, 2, -2, 1.0 / 2, -1.0 / 2, 0},
    {0, 1, 1, 4, 4, 1.0 / 4, 1.0 / 4, 0},
    {0, 1, -1, 8, -8, 1.0 / 8, -1.0 / 8, 1},
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

constexpr table<6, 6> input_transform_6_back = transposed(input_transform_6);
constexpr table<6, 4> output_transform_6_back = transposed(output_transform_6);
constexpr table<8, 8> input_transform_8_back = transposed(input_transform_8);
constexpr table<8, 4> output_transform_8_back = transposed(output_transform_8);

// A run of W channels of one tile element, as one vector of GCC's vector
// extension (one value for W = 1): each operation on it is an instruction of
// the kernel's instruction set, or several where its registers are
// narrower. GCC compiles the 8x8 transforms over arrays of W values to
// scalar code.
template <class T, std::size_t W>
struct lanes_of {
    typedef T type __attribute__((vector_size(W * sizeof(T))));
};
template <class T>
struct lanes_of<T, 1> {
    using type = T;
};
template <class T, std::size_t W>
using lanes = typename lanes_of<T, W>::type;

// Every helper here is always inlined, so that it is compiled for the
// instruction set of the kernel that calls it; vectors go by reference, as
// their passing in registers would depend on it.

// out += weight * term, or out = weight * term for a row's first term: a
// sum need not start from zero.
template <class T, class V>
[[gnu::always_inline]] inline void add_scaled(V& out, bool& started, double weight, const V& term)
{
    if (started) {
        out += T(weight) * term;
    } else {
        out = T(weight) * term;
        started = true;
    }
}

// out[i] = the sum over l of M[i][l] * v[l], taking only M's nonzero entries.
template <const auto& M, std::size_t I, class T, class V, std::size_t... L>
[[gnu::always_inline]] inline void row_times(const V* v, V& out, std::index_sequence<L...>)
{
    bool started = false;
    ((M[I][L] != 0 ? add_scaled<T>(out, started, M[I][L], v[L]) : void()), ...);
}

template <const auto& M, class T, class V, std::size_t... I>
[[gnu::always_inline]] inline void times_matrix(const V* v, V* out, std::index_sequence<I...>)
{
    (row_times<M, I, T>(v, out[I], std::make_index_sequence<M[0].size()>()), ...);
}

// out = M in M^T for channels k..k + W: the columns of `in` first, then the rows.
template <const auto& M, std::size_t W, class T>
[[gnu::always_inline]] inline void sandwich_lanes(const T* in, std::size_t in_row, std::size_t in_column, T* out,
                                                  std::size_t out_row, std::size_t out_column, std::size_t k)
{
    using V = lanes<T, W>;
    constexpr std::size_t rows = M.size();
    constexpr std::size_t columns = M[0].size();
    std::array<std::array<V, rows>, columns> half;  // half[j] = M times column j of in
    for (std::size_t j = 0; j < columns; ++j) {
        std::array<V, columns> column;
        for (std::size_t l = 0; l < columns; ++l) {
            std::memcpy(&column[l], in + l * in_row + j * in_column + k, sizeof(V));
        }
        times_matrix<M, T>(column.data(), half[j].data(), std::make_index_sequence<rows>());
    }
    for (std::size_t i = 0; i < rows; ++i) {
        std::array<V, columns> row;
        for (std::size_t j = 0; j < columns; ++j) {
            row[j] = half[j][i];
        }
        std::array<V, rows> result;
        times_matrix<M, T>(row.data(), result.data(), std::make_index_sequence<rows>());
        for (std::size_t j = 0; j < rows; ++j) {
            std::memcpy(out + i * out_row + j * out_column + k, &result[j], sizeof(V));
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
    case winograd_matrix::input_6:
        sandwich<input_transform_6>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::input_6_back:
        sandwich<input_transform_6_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_6:
        sandwich<output_transform_6>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_6_back:
        sandwich<output_transform_6_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::input_8:
        sandwich<input_transform_8>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::input_8_back:
        sandwich<input_transform_8_back>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_8:
        sandwich<output_transform_8>(in, in_row, in_column, out, out_row, out_column, n);
        break;
    case winograd_matrix::output_8_back:
        sandwich<output_transform_8_back>(in, in_row, in_column, out, out_row, out_column, n);
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
