#include "kernels/isa.hpp"

#include <cstdlib>

namespace gradtape::detail {
namespace {

isa machine_isa()
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    isa best = isa::baseline;
    if (__builtin_cpu_supports("x86-64-v4")) {
        best = isa::avx512;
    } else if (__builtin_cpu_supports("x86-64-v3")) {
        best = isa::avx2;
    }
    const char* cap = std::getenv("GRADTAPE_MAX_CPU_ISA");
    const std::string_view wanted = cap ? cap : "";
    if (wanted == "sse2") {
        return isa::baseline;
    }
    if (wanted == "avx2" && best == isa::avx512) {
        return isa::avx2;
    }
    return best;
#else
    return isa::baseline;
#endif
}

}  // namespace

isa chosen_isa()
{
    static const isa chosen = machine_isa();
    return chosen;
}

std::string_view isa_name(isa chosen)
{
    switch (chosen) {
    case isa::avx512: return "avx512";
    case isa::avx2: return "avx2";
    case isa::baseline: break;
    }
#if defined(__x86_64__)
    return "sse2";
#else
    return "baseline";
#endif
}

}  // namespace gradtape::detail
