// unary.hpp's functions for AVX-512, compiled with -march=x86-64-v4.
#include "kernels/unary_impl.hpp"

namespace gradtape::detail {
GRADTAPE_INSTANTIATE_UNARY_MATH(xsimd::avx512bw)
}  // namespace gradtape::detail
