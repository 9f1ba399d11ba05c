// error: gradtape: float32 and float64 tensors do not mix in one op: cast one
#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

int main()
{
    const gt::Tensor a = gt::ones<float>({3});
    const gt::Tensor64 b = gt::ones<double>({3});
    const auto sum = a + b;
}
