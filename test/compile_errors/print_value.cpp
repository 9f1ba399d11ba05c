// compiles: an xt::xarray prints without <xtensor/xio.hpp>
#include <iostream>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

int main()
{
    const gt::Tensor w = gt::ones<float>({3});
    std::cout << w.value() << '\n';
}
