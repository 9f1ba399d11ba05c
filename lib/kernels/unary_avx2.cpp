// unary.hpp's functions for AVX2, compiled with -march=x86-64-v3.
#include "kernels/unary_impl.hpp"

namespace gradtape::detail {
GRADTAPE_INSTANTIATE_UNARY_MATH(xsimd::avx2)
}  // namespace gradtape::detail
