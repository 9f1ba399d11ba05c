// The instruction set the kernels run with, chosen once, at the first call,
// for the machine that runs them: on x86-64 the best of AVX-512
// (x86-64-v4), AVX2 (x86-64-v3) and the baseline (SSE2) that the CPU has,
// capped by GRADTAPE_MAX_CPU_ISA=sse2|avx2|avx512; elsewhere the baseline.
#pragma once

#include <string_view>

namespace gradtape::detail {

enum class isa { baseline, avx2, avx512 };

isa chosen_isa();

// "avx512", "avx2", and "sse2" for the x86-64 baseline ("baseline" elsewhere).
std::string_view isa_name(isa chosen);

}  // namespace gradtape::detail
