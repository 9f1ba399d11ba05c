// A program that uses gradtape as an outside project would: CI builds it
// against the installed library (pkg-config) and as a Meson subproject.
#include <cstdlib>
#include <iostream>

#include <gradtape/gradtape.hpp>

int main()
{
    gradtape::Tensor64 x = 3.0;
    gradtape::GradientTape tape;
    tape.watch(x);
    const auto y = x * x * x;
    const double slope = tape.gradient(y, x).item();
    std::cout << "d(x^3)/dx at 3 = " << slope << '\n';
    return slope == 27.0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
