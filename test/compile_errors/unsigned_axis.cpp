// error: gradtape: axes are signed (std::ptrdiff_t), and -1 is the last
#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

int main()
{
    const gt::Tensor x = gt::ones<float>({2, 3});
    const gt::Tensor last = gt::reduce_sum(x, x.dimension() - 1);
}
