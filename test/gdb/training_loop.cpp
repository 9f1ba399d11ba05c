// A small training loop for the gdb test to stop in.
#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

// The gdb test breaks here, then looks at the caller's frame.
[[gnu::noinline]] void inspect_here()
{
    asm volatile("");
}

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
}
