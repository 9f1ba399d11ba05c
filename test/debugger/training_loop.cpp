// A small training loop for the gdb and LLDB tests to stop in.
#include <cstdint>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

// The debugger tests break here, then look at the caller's frame.
[[gnu::noinline]] void inspect_here()
{
    asm volatile("");
}

// A model written as a class prints under its own class name.
class scaler : public gt::Model {
public:
    scaler() : gt::Model("scaler") {}
    gt::Tensor call(const gt::Tensor& x, bool) override { return x * scale_; }

private:
    gt::Variable scale_ = add_weight("scale", {4}, {.initializer = "ones"});
};

int main()
{
    gt::Variable w(gt::fill<float>({2, 1}, 0.25f), "weights");
    const gt::Tensor input = gt::ones<float>({4, 2});
    const gt::Tensor target = gt::ones<float>({4, 1});
    gt::SGD optimizer(0.01);
    for (int step = 0; step < 3; ++step) {
        gt::GradientTape tape;
        const gt::Tensor loss = gt::l2_loss(gt::matmul(input, w) - target);
        inspect_here();
        optimizer.apply_gradients(tape.gradient(loss, {w}), {w});
    }

    gt::Sequential model({gt::Dense(3, {.activation = "relu"}), gt::Dense(2, {.name = "logits"})}, "net");
    model.build({1, 4});
    const gt::Dense unbuilt(5);
    scaler scaled;
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(2000) % 10;
    const xt::xarray<std::int64_t> few = xt::xarray<std::int64_t>({{1, 2, 3}, {4, 5, 6}});
    gt::GradientTape tape;
    const gt::Tensor out = model(gt::ones<float>({1, 4}));
    inspect_here();
    (void)out;
    (void)unbuilt;
    (void)scaled;
    (void)labels;
    (void)few;
}
