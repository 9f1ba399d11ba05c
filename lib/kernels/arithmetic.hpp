// Loops over contiguous buffers: the four arithmetic ops, the updates of SGD
// and Adam, the finiteness scan, and the inner loops of the convolutions and pools, compiled for
// several instruction sets and run with the machine's (isa.hpp). The
// library's ABI and xt::xarray's allocator stay the baseline's, so a program
// built for any x86-64 machine links and runs unchanged. The results are the
// same on every path: each operation is rounded on its own, as written.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gradtape::detail {

enum class arithmetic { add, subtract, multiply, divide };

// out[i] = a[i] op b[i]; out may be a or b, or neither.
template <class T>
void arithmetic_same(arithmetic op, const T* a, const T* b, T* out, std::size_t n);
// out[i] = a op b[i].
template <class T>
void arithmetic_scalar_left(arithmetic op, T a, const T* b, T* out, std::size_t n);
// out[i] = a[i] op b.
template <class T>
void arithmetic_scalar_right(arithmetic op, const T* a, T b, T* out, std::size_t n);

// a[i] -= scale * b[i], the plain gradient-descent update: the product is
// rounded, then the difference, as in the two separate operations.
template <class T>
void subtract_scaled(T* a, const T* b, T scale, std::size_t n);

// One Adam update of n weights, in the operations and order of
// torch.optim.Adam (lib/optim/adam.cpp): the moments first, then
//   weight -= step_size * mean / (sqrt(second) / bias_correction2_sqrt + epsilon)
// where second is the variance, or with AMSGrad (max_variance not null) the
// largest variance so far, kept in max_variance.
template <class T>
struct adam_coefficients {
    T beta1, beta2, step_size, bias_correction2_sqrt, epsilon;
};
template <class T>
void adam_update(T* weights, T* mean, T* variance, T* max_variance, const T* gradient, std::size_t n,
                 const adam_coefficients<T>& k);

// out[i] += a[i] * b[i], the product rounded, then the sum.
template <class T>
void multiply_add(const T* a, const T* b, T* out, std::size_t n);

// Whether no value is a NaN or an infinity.
template <class T>
[[nodiscard]] bool all_finite(const T* values, std::size_t n);

// out row i = the sum over j of weights[i * cols + j] times in row j, for i
// < rows: a small matrix applied along a tensor's leading axis, rows of n
// elements `in_stride` and `out_stride` apart. The zero weights cost nothing,
// so that sparse transforms (Winograd's) take only their nonzero terms.
template <class T>
void combine_rows(const T* weights, std::size_t rows, std::size_t cols, const T* in, std::size_t in_stride, T* out,
                  std::size_t out_stride, std::size_t n);

// One step of a max pool's scan: where candidates[i] is larger than best[i],
// or is NaN where best[i] is not, best[i] takes it and from[i] becomes
// first + i. A tie keeps the earlier element.
template <class T>
void keep_larger(T* best, std::int64_t* from, const T* candidates, std::int64_t first, std::size_t n);

}  // namespace gradtape::detail
