// The dtypes every template of the library is explicitly instantiated for:
// GRADTAPE_FOR_EACH_DTYPE(X) expands to X(float) X(double).
#pragma once

#define GRADTAPE_FOR_EACH_DTYPE(X) X(float) X(double)
