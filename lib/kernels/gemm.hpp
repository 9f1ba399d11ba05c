// One row-major matrix product through BLAS (xtensor-blas's cxxblas over
// OpenBLAS), shared by matmul and the convolutions, and OpenBLAS's thread count.
#pragma once

#include <algorithm>
#include <cstddef>

// xblas.hpp defines xt::xarray: gradtape's allocator must be its default first.
#include <gradtape/memory.hpp>

#include <xtensor-blas/xblas.hpp>

// OpenBLAS's own; its cblas.h would clash with the one xtensor-blas brings.
extern "C" int openblas_get_num_threads(void);

namespace gradtape::detail {

// Products of at most this many multiply-adds run as a plain loop: a BLAS
// call costs about as much in its setup and packing alone (some 2,000
// instructions against the loop's two or three per multiply-add).
constexpr std::size_t small_product = 2048;

// c (m x n) = op(a) op(b) + beta c, with a stored as rows of a_cols and b as
// rows of b_cols; op transposes where asked.
template <class T>
void gemm(const T* a, std::size_t a_cols, bool transpose_a, const T* b, std::size_t b_cols, bool transpose_b, T* c,
          std::size_t m, std::size_t n, std::size_t k, T beta = T(0))
{
    if (m * n * k <= small_product) {
        // Each element of c summed over k in order, from 0.
        const std::size_t a_row = transpose_a ? 1 : a_cols;
        const std::size_t a_step = transpose_a ? a_cols : 1;
        const std::size_t b_column = transpose_b ? b_cols : 1;
        const std::size_t b_step = transpose_b ? 1 : b_cols;
        if (n == 1 && beta == T(0) && k < m) {
            // A matrix times a vector of few elements: the loop over c's
            // elements innermost, so that it, not k, is the long one.
            std::fill_n(c, m, T(0));
            for (std::size_t p = 0; p < k; ++p) {
                const T scale = b[p * b_step];
                const T* column = a + p * a_step;
                for (std::size_t i = 0; i < m; ++i) {
                    c[i] += column[i * a_row] * scale;
                }
            }
            return;
        }
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < n; ++j) {
                const T* x = a + i * a_row;
                const T* y = b + j * b_column;
                T sum = T(0);
                for (std::size_t p = 0; p < k; ++p, x += a_step, y += b_step) {
                    sum += *x * *y;
                }
                T& out = c[i * n + j];
                out = beta == T(0) ? sum : sum + beta * out;
            }
        }
        return;
    }
    using index = xt::blas_index_t;
    const auto flag = [](bool transposed) { return transposed ? cxxblas::Trans : cxxblas::NoTrans; };
    cxxblas::gemm<index>(cxxblas::StorageOrder::RowMajor, flag(transpose_a), flag(transpose_b), index(m), index(n),
                         index(k), T(1), a, index(a_cols), b, index(b_cols), beta, c, index(n));
}

// The threads OpenBLAS is given (OPENBLAS_NUM_THREADS, or
// openblas_set_num_threads): the library's own kernels use as many.
inline std::size_t blas_threads()
{
    return std::size_t(std::max(1, openblas_get_num_threads()));
}

}  // namespace gradtape::detail
