#include "kernels/isa.hpp"

#include <cstdlib>

namespace gradtape::detail {
namespace {

isa machine_isa()
{
#if defined(__x86_64__)
    // The levels' features by the names GCC and Clang both accept (GCC's
    // "x86-64-v4" is its own). The rest of x86-64-v3 (F16C, LZCNT, MOVBE)
    // comes with AVX2, FMA and BMI2 on every processor that has those.
    __builtin_cpu_init();
    const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
    const bool v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                    __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq") &&
                    __builtin_cpu_supports("avx512vl");
    isa best = v4 ? isa::avx512 : v3 ? isa::avx2 : isa::baseline;
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
