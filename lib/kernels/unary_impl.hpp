// unary.hpp's loop for one xsimd architecture, included by the translation
// unit compiled for it. Nothing here may call a function that is not a
// template on Arch (std::copy, say): the linker keeps one copy of such a
// function for the whole library, and it could be this unit's, compiled with
// instructions another machine lacks. The kernel_symbols test checks it.
#pragma once

#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "kernels/unary.hpp"

namespace gradtape::detail {

template <class Arch>
template <class T>
void unary_math<Arch>::run(unary_function f, const T* x, T* out, std::size_t n)
{
    using batch = xsimd::batch<T, Arch>;
    constexpr std::size_t width = batch::size;
    const auto apply = [f](const batch& v) -> batch {
        switch (f) {
        case unary_function::exp: return xsimd::exp(v);
        case unary_function::log: return xsimd::log(v);
        case unary_function::log1p: return xsimd::log1p(v);
        case unary_function::expm1: return xsimd::expm1(v);
        case unary_function::tanh: return xsimd::tanh(v);
        case unary_function::sqrt: return xsimd::sqrt(v);
        case unary_function::sigmoid: return batch(T(1)) / (batch(T(1)) + xsimd::exp(-v));
        }
        return v;
    };
    std::size_t i = 0;
    for (; i + width <= n; i += width) {
        apply(batch::load_unaligned(x + i)).store_unaligned(out + i);
    }
    // The last partial batch goes through the same code, padded with zeros,
    // so that every element is computed alike.
    if (i < n) {
        alignas(64) T tail[width] = {};
        for (std::size_t k = 0; i + k < n; ++k) {
            tail[k] = x[i + k];
        }
        apply(batch::load_aligned(tail)).store_aligned(tail);
        for (std::size_t k = 0; i + k < n; ++k) {
            out[i + k] = tail[k];
        }
    }
}

#define GRADTAPE_INSTANTIATE_UNARY_MATH(ARCH)                                                                          \
    template void unary_math<ARCH>::run<float>(unary_function, const float*, float*, std::size_t);                   \
    template void unary_math<ARCH>::run<double>(unary_function, const double*, double*, std::size_t);

}  // namespace gradtape::detail
