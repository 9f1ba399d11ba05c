// The tutorial's second program: the same linear regression, with the
// gradient of the loss derived by hand and applied with assign_sub. Each step
// also asks the tape for the gradient and prints how far the two differ.
//
//   linear_regression_from_scratch [--seed N]
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <gradtape/gradtape.hpp>

#include <xtensor/xsort.hpp>

#include "tutorial_data.hpp"

namespace gt = gradtape;

int main(int argc, char** argv)
{
    std::uint64_t seed = 2;
    if (argc == 3 && std::string(argv[1]) == "--seed") {
        seed = std::stoull(argv[2]);
    } else if (argc != 1) {
        std::cerr << "usage: " << argv[0] << " [--seed N]\n";
        return 2;
    }
    constexpr int steps = 50;
    constexpr float learning_rate = 0.002f;

    const auto [x, y, input, target] = tutorial::make_data(seed);
    gt::Variable weights = tutorial::make_weights();
    for (int step = 0; step < steps; ++step) {
        gt::GradientTape tape;
        const gt::Tensor yhat = gt::matmul(input, weights);
        const gt::Tensor yerror = yhat - target;
        const gt::Tensor loss = 0.5f * gt::reduce_sum(yerror * yerror);
        // d loss / d weights = input^T (yhat - target), one row of the sum per weight.
        const gt::Tensor gradient = gt::reduce_sum(gt::transpose(input * yerror), {1}, true);
        const gt::Tensor taped = tape.gradient(loss, weights);
        const float difference = xt::amax(xt::abs(gradient.value() - taped.value()))();
        weights.assign_sub(learning_rate * gradient);
        std::printf("step %2d  loss %.4f  |hand-derived - tape| %.2e\n", step, double(loss.item()),
                    double(difference));
    }
    std::printf("fitted weights:  intercept %8.4f  slope %8.4f\n", double(weights.value()(0, 0)),
                double(weights.value()(1, 0)));
}
