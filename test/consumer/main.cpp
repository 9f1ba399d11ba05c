// A program that uses gradtape as an outside project would: CI builds it
// against the installed library (pkg-config, CMake, and with clang-14, whose
// libstdc++ has no std::source_location) and as a Meson subproject.
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

#include <gradtape/gradtape.hpp>

int main()
{
    gradtape::Tensor64 x = 3.0;
    gradtape::GradientTape tape;
    tape.watch(x);
    const auto y = x * x * x;
    const double slope = tape.gradient(y, x).item();
    std::cout << "d(x^3)/dx at 3 = " << slope << '\n';

    // The error names this line, whichever compiler built this program.
    const std::string site = "main.cpp:" + std::to_string(__LINE__ + 3);
    std::string message;
    try {
        (void)gradtape::matmul(gradtape::ones<double>({2, 3}), gradtape::ones<double>({2, 3}));
    } catch (const std::exception& error) {
        message = error.what();
    }
    std::cout << message << '\n';
    const bool names_site = message.find(site) != std::string::npos;
    return slope == 27.0 && names_site ? EXIT_SUCCESS : EXIT_FAILURE;
}
