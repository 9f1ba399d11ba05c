// The dtypes every template of the library is explicitly instantiated for:
// GRADTAPE_FOR_EACH_DTYPE(X) expands to X(float) X(double), and
// GRADTAPE_FOR_EACH_DTYPE(X, a) to X(float, a) X(double, a).
#pragma once

#include <cstdint>

#define GRADTAPE_FOR_EACH_DTYPE(X, ...) X(float __VA_OPT__(, ) __VA_ARGS__) X(double __VA_OPT__(, ) __VA_ARGS__)

namespace gradtape::detail {

// NumPy's name of each element type the library reads or holds; a type
// without one does not compile.
template <class T>
constexpr const char* dtype_name() = delete;
#define GRADTAPE_DTYPE_NAME(T, NAME)      \
    template <>                           \
    constexpr const char* dtype_name<T>() \
    {                                     \
        return NAME;                      \
    }
GRADTAPE_DTYPE_NAME(float, "float32")
GRADTAPE_DTYPE_NAME(double, "float64")
GRADTAPE_DTYPE_NAME(std::int8_t, "int8")
GRADTAPE_DTYPE_NAME(std::int16_t, "int16")
GRADTAPE_DTYPE_NAME(std::int32_t, "int32")
GRADTAPE_DTYPE_NAME(std::int64_t, "int64")
GRADTAPE_DTYPE_NAME(std::uint8_t, "uint8")
GRADTAPE_DTYPE_NAME(std::uint64_t, "uint64")
#undef GRADTAPE_DTYPE_NAME

}  // namespace gradtape::detail
