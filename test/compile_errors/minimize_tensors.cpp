// error: gradtape: minimize trains variables or a model, not tensors
#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

int main()
{
    const gt::Tensor w = gt::ones<float>({3});
    gt::SGD optimizer(0.1);
    optimizer.minimize([&] { return gt::reduce_sum(w * w); }, {w});
}
