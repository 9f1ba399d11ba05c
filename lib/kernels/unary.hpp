// Elementwise functions of one buffer, written once with xsimd batches and
// compiled once per instruction set in its own translation unit (the flags of
// unary_avx2.cpp and unary_avx512.cpp are in lib/meson.build); the machine's
// version runs (isa.hpp). Each element is within a few ulps of the C
// library's function; the AVX-512 path evaluates with fused multiply-adds.
#pragma once

#include <cstddef>

namespace gradtape::detail {

// Not sin and cos: xsimd reduces their large arguments in a plain inline
// function, which the units compiled per architecture must not define.
enum class unary_function { exp, log, log1p, expm1, tanh, sqrt, sigmoid };

// out[i] = f(x[i]); out may be x.
template <class T>
void unary_kernel(unary_function f, const T* x, T* out, std::size_t n);

// The same for one xsimd architecture; defined in unary_impl.hpp and
// instantiated by the unit compiled for that architecture.
template <class Arch>
struct unary_math {
    template <class T>
    static void run(unary_function f, const T* x, T* out, std::size_t n);
};

}  // namespace gradtape::detail
