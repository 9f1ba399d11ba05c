// The bytes a fuzzer's process holds from malloc (and so from operator new)
// and in tensors, and the most it held since the last reset, to hold each
// input's reading to a stated bound. allocation_meter.cpp interposes malloc;
// under AddressSanitizer, which owns malloc, nothing is measured and active()
// says so.
#pragma once

#include <cstddef>

namespace allocation_meter {

[[nodiscard]] bool active();
// Starts a new peak from what is held now.
void reset();
// The most held since reset(), beyond what was held then.
[[nodiscard]] std::size_t peak_growth();

}  // namespace allocation_meter
