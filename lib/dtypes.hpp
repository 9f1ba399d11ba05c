// The dtypes every template of the library is explicitly instantiated for:
// GRADTAPE_FOR_EACH_DTYPE(X) expands to X(float) X(double), and
// GRADTAPE_FOR_EACH_DTYPE(X, a) to X(float, a) X(double, a).
#pragma once

#define GRADTAPE_FOR_EACH_DTYPE(X, ...) X(float __VA_OPT__(, ) __VA_ARGS__) X(double __VA_OPT__(, ) __VA_ARGS__)

namespace gradtape::detail {

// NumPy's name of each dtype; a dtype without one does not compile.
template <class T>
constexpr const char* dtype_name() = delete;
template <>
constexpr const char* dtype_name<float>()
{
    return "float32";
}
template <>
constexpr const char* dtype_name<double>()
{
    return "float64";
}

}  // namespace gradtape::detail
