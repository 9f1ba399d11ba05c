// The four arithmetic ops, and the update of SGD, on contiguous buffers, compiled for several
// instruction sets and chosen once, at the first call, for the machine that
// runs them: AVX-512, AVX2 or the x86-64 baseline (SSE2). The library's ABI
// and xt::xarray's allocator stay the baseline's, so a program built for any
// x86-64 machine links and runs unchanged.
//
// GRADTAPE_MAX_CPU_ISA=sse2|avx2|avx512 caps the choice (to reproduce a
// slower machine's numbers, or to test each path on one machine). The results
// are the same on every path: each element is one IEEE operation.
#pragma once

#include <cstddef>
#include <string_view>

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

// The instruction set the kernels run with on this machine: "avx512", "avx2"
// or "sse2" (on x86-64; "baseline" elsewhere).
std::string_view kernel_isa();

}  // namespace gradtape::detail
