// Whether a number read from a file (an .npy, an IDX file, a checkpoint's
// slot) is a value of the type it is read into, checked before converting:
// converting a NaN, an infinity or an out-of-range value to an integer, or a
// finite double beyond float's range to float, is undefined behaviour, and
// NumPy calls such a cast invalid.
#pragma once

#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

namespace gradtape::detail {

// An integer takes finite values whose whole part is in its range (the
// fraction is dropped, as NumPy's astype drops it); a floating-point type
// takes NaN, the infinities, and finite values up to its largest.
template <class To, class From>
[[nodiscard]] bool fits(From value)
{
    if constexpr (std::is_integral_v<To> && std::is_integral_v<From>) {
        return std::in_range<To>(value);
    } else if constexpr (std::is_integral_v<To>) {
        // The bounds are powers of two, exact in any floating-point type:
        // [min, max + 1).
        constexpr From low = From(std::numeric_limits<To>::min());
        constexpr From high = From(std::numeric_limits<To>::max() / 2 + 1) * From(2);
        const From whole = std::trunc(value);
        return whole >= low && whole < high;
    } else if constexpr (std::is_floating_point_v<From> && sizeof(From) > sizeof(To)) {
        return !std::isfinite(value) || std::abs(value) <= From(std::numeric_limits<To>::max());
    } else {
        return true;
    }
}

}  // namespace gradtape::detail
