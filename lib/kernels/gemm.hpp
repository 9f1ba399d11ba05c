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

// c (m x n) = op(a) op(b) + beta c, with a stored as rows of a_cols and b as
// rows of b_cols; op transposes where asked.
template <class T>
void gemm(const T* a, std::size_t a_cols, bool transpose_a, const T* b, std::size_t b_cols, bool transpose_b, T* c,
          std::size_t m, std::size_t n, std::size_t k, T beta = T(0))
{
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
