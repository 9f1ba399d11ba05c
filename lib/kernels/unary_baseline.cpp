// unary.hpp's functions for the architecture the library is compiled for.
#include "kernels/unary_impl.hpp"

namespace gradtape::detail {
GRADTAPE_INSTANTIATE_UNARY_MATH(xsimd::default_arch)
}  // namespace gradtape::detail
