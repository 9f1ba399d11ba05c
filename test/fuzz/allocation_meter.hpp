// The bytes a process holds from malloc (and so from operator new) and in
// tensors, and the most it held since the last reset, to hold a fuzzer's
// reading of each input to a stated bound; and how many blocks malloc and its
// kin handed out, for the bench's allocations per replayed step.
// allocation_meter.cpp interposes malloc; under AddressSanitizer, which owns
// malloc, nothing is measured and active() says so.
#pragma once

#include <cstddef>
#include <cstdint>

namespace allocation_meter {

[[nodiscard]] bool active();
// Starts a new peak from what is held now.
void reset();
// The most held since reset(), beyond what was held then.
[[nodiscard]] std::size_t peak_growth();
// The blocks malloc, calloc, realloc and the aligned allocations have handed
// out since the process began.
[[nodiscard]] std::uint64_t blocks();

}  // namespace allocation_meter
