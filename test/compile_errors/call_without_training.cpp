// error: overrid
// also: write call(const Tensor& x, bool training)
#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

class doubler : public gt::Model {
public:
    doubler() : gt::Model("doubler") {}
    gt::Tensor call(const gt::Tensor& x) override { return x * 2.0f; }
};

int main()
{
    doubler model;
    const gt::Tensor y = model(gt::ones<float>({2, 3}));
}
