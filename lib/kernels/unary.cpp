#include "kernels/unary.hpp"

#include <xsimd/xsimd.hpp>

#include "core/dtypes.hpp"
#include "kernels/isa.hpp"

namespace gradtape::detail {

template <class T>
void unary_kernel(unary_function f, const T* x, T* out, std::size_t n)
{
#if defined(__x86_64__)
    switch (chosen_isa()) {
    case isa::avx512: return unary_math<xsimd::avx512bw>::run(f, x, out, n);
    case isa::avx2: return unary_math<xsimd::avx2>::run(f, x, out, n);
    case isa::baseline: break;
    }
#endif
    unary_math<xsimd::default_arch>::run(f, x, out, n);
}

#define GRADTAPE_INSTANTIATE(T) template void unary_kernel(unary_function, const T*, T*, std::size_t);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape::detail
