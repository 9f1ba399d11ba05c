// The dtypes every template of the library is explicitly instantiated for:
// GRADTAPE_FOR_EACH_DTYPE(X) expands to X(float) X(double), and
// GRADTAPE_FOR_EACH_DTYPE(X, a) to X(float, a) X(double, a).
#pragma once

#define GRADTAPE_FOR_EACH_DTYPE(X, ...) X(float __VA_OPT__(, ) __VA_ARGS__) X(double __VA_OPT__(, ) __VA_ARGS__)
