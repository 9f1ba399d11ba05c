// One loop per op and layout, written once and compiled once per instruction
// set by inlining it into functions of that target (GCC's target attribute).
// The table of the machine's versions is chosen at the first call (isa.hpp).
#include "kernels/arithmetic.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <functional>

#include "core/dtypes.hpp"
#include "kernels/isa.hpp"

namespace gradtape::detail {
namespace {

template <class F, class T>
[[gnu::always_inline]] inline void same_loop(const T* a, const T* b, T* out, std::size_t n, F f)
{
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = f(a[i], b[i]);
    }
}

template <class F, class T>
[[gnu::always_inline]] inline void left_loop(T a, const T* b, T* out, std::size_t n, F f)
{
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = f(a, b[i]);
    }
}

template <class F, class T>
[[gnu::always_inline]] inline void right_loop(const T* a, T b, T* out, std::size_t n, F f)
{
    for (std::size_t i = 0; i < n; ++i) {
        out[i] = f(a[i], b);
    }
}

template <class T>
[[gnu::always_inline]] inline void subtract_scaled_loop(T* a, const T* b, T scale, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        a[i] -= scale * b[i];
    }
}

template <class T>
[[gnu::always_inline]] inline void multiply_add_loop(const T* __restrict a, const T* __restrict b, T* __restrict out,
                                                     std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        out[i] += a[i] * b[i];
    }
}

template <class T>
[[gnu::always_inline]] inline void combine_rows_loop(const T* weights, std::size_t rows, std::size_t cols, const T* in,
                                                     std::size_t in_stride, T* out, std::size_t out_stride, std::size_t n)
{
    for (std::size_t i = 0; i < rows; ++i) {
        T* __restrict row = out + i * out_stride;
        std::fill_n(row, n, T(0));
        for (std::size_t j = 0; j < cols; ++j) {
            const T weight = weights[i * cols + j];
            if (weight == T(0)) {
                continue;
            }
            const T* __restrict from = in + j * in_stride;
            for (std::size_t k = 0; k < n; ++k) {
                row[k] += weight * from[k];
            }
        }
    }
}

template <class T>
[[gnu::always_inline]] inline void adam_loop(T* __restrict weights, T* __restrict mean, T* __restrict variance,
                                             T* __restrict max_variance, const T* __restrict gradient, std::size_t n,
                                             const adam_coefficients<T>& k)
{
    const T keep_mean = T(1) - k.beta1;
    const T keep_variance = T(1) - k.beta2;
    for (std::size_t i = 0; i < n; ++i) {
        const T g = gradient[i];
        const T m = k.beta1 * mean[i] + keep_mean * g;
        const T v = k.beta2 * variance[i] + keep_variance * g * g;
        mean[i] = m;
        variance[i] = v;
        T second = v;
        if (max_variance != nullptr) {
            second = max_variance[i] > v ? max_variance[i] : v;
            max_variance[i] = second;
        }
        weights[i] -= k.step_size * m / (std::sqrt(second) / k.bias_correction2_sqrt + k.epsilon);
    }
}

// An exponent of all ones is an infinity or a NaN. Compared as integers, and
// or-ed without an early exit, so that it vectorises.
template <class T>
[[gnu::always_inline]] inline bool all_finite_loop(const T* __restrict values, std::size_t n)
{
    using bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    constexpr bits exponent = bits(sizeof(T) == 4 ? 0x7f800000u : 0x7ff0000000000000u);
    bits bad = 0;
    for (std::size_t i = 0; i < n; ++i) {
        bad |= bits((std::bit_cast<bits>(values[i]) & exponent) == exponent);
    }
    return bad == 0;
}

// Written without branches so that it vectorises: a window's winner is data,
// which a branch predictor cannot learn.
template <class T>
[[gnu::always_inline]] inline void keep_larger_loop(T* __restrict best, std::int64_t* __restrict from,
                                                    const T* __restrict candidates, std::int64_t first, std::size_t n)
{
    for (std::size_t i = 0; i < n; ++i) {
        const T candidate = candidates[i];
        const T current = best[i];
        const bool take = candidate > current || (candidate != candidate && current == current);
        best[i] = take ? candidate : current;
        from[i] = take ? first + std::int64_t(i) : from[i];
    }
}

// The switch sits outside the loops, so that each loop is one operation.
template <class Loop>
[[gnu::always_inline]] inline void dispatch(arithmetic op, Loop loop)
{
    switch (op) {
    case arithmetic::add: loop(std::plus<>()); break;
    case arithmetic::subtract: loop(std::minus<>()); break;
    case arithmetic::multiply: loop(std::multiplies<>()); break;
    case arithmetic::divide: loop(std::divides<>()); break;
    }
}

template <class T>
struct kernel_table {
    void (*same)(arithmetic, const T*, const T*, T*, std::size_t);
    void (*scalar_left)(arithmetic, T, const T*, T*, std::size_t);
    void (*scalar_right)(arithmetic, const T*, T, T*, std::size_t);
    void (*subtract_scaled)(T*, const T*, T, std::size_t);
    void (*keep_larger)(T*, std::int64_t*, const T*, std::int64_t, std::size_t);
    void (*combine_rows)(const T*, std::size_t, std::size_t, const T*, std::size_t, T*, std::size_t, std::size_t);
    void (*adam_update)(T*, T*, T*, T*, const T*, std::size_t, const adam_coefficients<T>&);
    void (*multiply_add)(const T*, const T*, T*, std::size_t);
    bool (*all_finite)(const T*, std::size_t);
};

// The kernels of one instruction set: ISA names it, TARGET is the attribute
// that compiles for it.
#define GRADTAPE_ARITHMETIC_KERNELS(ISA, TARGET)                                                                      \
    template <class T>                                                                                                 \
    TARGET void same_##ISA(arithmetic op, const T* a, const T* b, T* out, std::size_t n)             \
    {                                                                                                                  \
        dispatch(op, [&](auto f) { same_loop(a, b, out, n, f); });                                                     \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void left_##ISA(arithmetic op, T a, const T* b, T* out, std::size_t n)                    \
    {                                                                                                                  \
        dispatch(op, [&](auto f) { left_loop(a, b, out, n, f); });                                                     \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void right_##ISA(arithmetic op, const T* a, T b, T* out, std::size_t n)                   \
    {                                                                                                                  \
        dispatch(op, [&](auto f) { right_loop(a, b, out, n, f); });                                                    \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void subtract_scaled_##ISA(T* a, const T* b, T scale, std::size_t n)                                       \
    {                                                                                                                  \
        subtract_scaled_loop(a, b, scale, n);                                                                          \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void keep_larger_##ISA(T* best, std::int64_t* from, const T* candidates, std::int64_t first,              \
                                  std::size_t n)                                                                       \
    {                                                                                                                  \
        keep_larger_loop(best, from, candidates, first, n);                                                            \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void combine_rows_##ISA(const T* weights, std::size_t rows, std::size_t cols, const T* in,                 \
                                   std::size_t in_stride, T* out, std::size_t out_stride, std::size_t n)               \
    {                                                                                                                  \
        combine_rows_loop(weights, rows, cols, in, in_stride, out, out_stride, n);                                     \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void adam_update_##ISA(T* weights, T* mean, T* variance, T* max_variance, const T* gradient, std::size_t n, \
                                  const adam_coefficients<T>& k)                                                       \
    {                                                                                                                  \
        if (max_variance == nullptr) {                                                                                 \
            adam_loop<T>(weights, mean, variance, nullptr, gradient, n, k);                                            \
        } else {                                                                                                       \
            adam_loop<T>(weights, mean, variance, max_variance, gradient, n, k);                                       \
        }                                                                                                              \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET void multiply_add_##ISA(const T* a, const T* b, T* out, std::size_t n)                                     \
    {                                                                                                                  \
        multiply_add_loop(a, b, out, n);                                                                               \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    TARGET bool all_finite_##ISA(const T* values, std::size_t n)                                                      \
    {                                                                                                                  \
        return all_finite_loop(values, n);                                                                             \
    }                                                                                                                  \
    template <class T>                                                                                                 \
    constexpr kernel_table<T> ISA##_kernels{same_##ISA<T>,          left_##ISA<T>,        right_##ISA<T>,             \
                                            subtract_scaled_##ISA<T>, keep_larger_##ISA<T>, combine_rows_##ISA<T>,      \
                                            adam_update_##ISA<T>,    multiply_add_##ISA<T>, all_finite_##ISA<T>};

#if defined(__x86_64__)
GRADTAPE_ARITHMETIC_KERNELS(sse2, [[gnu::target("arch=x86-64")]])
GRADTAPE_ARITHMETIC_KERNELS(avx2, [[gnu::target("arch=x86-64-v3")]])
GRADTAPE_ARITHMETIC_KERNELS(avx512, [[gnu::target("arch=x86-64-v4")]])

template <class T>
const kernel_table<T>& kernels()
{
    switch (chosen_isa()) {
    case isa::avx512: return avx512_kernels<T>;
    case isa::avx2: return avx2_kernels<T>;
    case isa::baseline: break;
    }
    return sse2_kernels<T>;
}

#else
// Elsewhere, the compiler's baseline for the target.
GRADTAPE_ARITHMETIC_KERNELS(baseline, )

template <class T>
const kernel_table<T>& kernels()
{
    return baseline_kernels<T>;
}

#endif

#undef GRADTAPE_ARITHMETIC_KERNELS

}  // namespace

template <class T>
void arithmetic_same(arithmetic op, const T* a, const T* b, T* out, std::size_t n)
{
    kernels<T>().same(op, a, b, out, n);
}

template <class T>
void arithmetic_scalar_left(arithmetic op, T a, const T* b, T* out, std::size_t n)
{
    kernels<T>().scalar_left(op, a, b, out, n);
}

template <class T>
void arithmetic_scalar_right(arithmetic op, const T* a, T b, T* out, std::size_t n)
{
    kernels<T>().scalar_right(op, a, b, out, n);
}

template <class T>
void subtract_scaled(T* a, const T* b, T scale, std::size_t n)
{
    kernels<T>().subtract_scaled(a, b, scale, n);
}

template <class T>
void combine_rows(const T* weights, std::size_t rows, std::size_t cols, const T* in, std::size_t in_stride, T* out,
                  std::size_t out_stride, std::size_t n)
{
    kernels<T>().combine_rows(weights, rows, cols, in, in_stride, out, out_stride, n);
}

template <class T>
void multiply_add(const T* a, const T* b, T* out, std::size_t n)
{
    kernels<T>().multiply_add(a, b, out, n);
}

template <class T>
void adam_update(T* weights, T* mean, T* variance, T* max_variance, const T* gradient, std::size_t n,
                 const adam_coefficients<T>& k)
{
    kernels<T>().adam_update(weights, mean, variance, max_variance, gradient, n, k);
}

template <class T>
void keep_larger(T* best, std::int64_t* from, const T* candidates, std::int64_t first, std::size_t n)
{
    kernels<T>().keep_larger(best, from, candidates, first, n);
}

template <class T>
bool all_finite(const T* values, std::size_t n)
{
    return kernels<T>().all_finite(values, n);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void arithmetic_same(arithmetic, const T*, const T*, T*, std::size_t);                                   \
    template void arithmetic_scalar_left(arithmetic, T, const T*, T*, std::size_t);                                   \
    template void arithmetic_scalar_right(arithmetic, const T*, T, T*, std::size_t);                                  \
    template void subtract_scaled(T*, const T*, T, std::size_t);                                                      \
    template void keep_larger(T*, std::int64_t*, const T*, std::int64_t, std::size_t);                               \
    template void combine_rows(const T*, std::size_t, std::size_t, const T*, std::size_t, T*, std::size_t,           \
                               std::size_t);                                                                          \
    template void adam_update(T*, T*, T*, T*, const T*, std::size_t, const adam_coefficients<T>&);                  \
    template void multiply_add(const T*, const T*, T*, std::size_t);                                                 \
    template bool all_finite(const T*, std::size_t);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape::detail
