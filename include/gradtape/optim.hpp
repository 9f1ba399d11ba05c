// Optimizers: they update trainable variables in place from their gradients.
//
//   gradtape::SGD opt(0.002);
//   for (int step = 0; step < 50; ++step) {
//       auto loss = opt.minimize([&] { return gradtape::l2_loss(gradtape::matmul(input, w) - target); }, {w});
//   }
#pragma once

#include <cstdint>
#include <source_location>
#include <type_traits>
#include <unordered_map>
#include <variant>
#include <vector>

#include "tape.hpp"
#include "variable.hpp"

namespace gradtape {

struct sgd_options {
    double learning_rate = 0.01;
    double momentum = 0;
    double dampening = 0;
    bool nesterov = false;
    double weight_decay = 0;
};

// Stochastic gradient descent with the update rule of torch.optim.SGD:
//   g = grad + weight_decay * w
//   b = g on the first step, else momentum * b + (1 - dampening) * g
//   g = g + momentum * b with nesterov, else b          (when momentum != 0)
//   w = w - learning_rate * g
class SGD {
public:
    SGD(double learning_rate);
    SGD(sgd_options options);

    // Checks every pair before it changes anything: the lists must have the
    // same length, each gradient the shape of its variable, each variable be
    // trainable. On error no variable is changed.
    template <dtype T>
    void apply_gradients(const std::vector<basic_tensor<T>>& gradients,
                         const std::vector<basic_variable<T>>& variables,
                         std::source_location site = std::source_location::current());

    // Runs loss_fn under a tape of its own, applies the gradient of the loss
    // to `variables` and returns the loss.
    template <class LossFn, dtype T = typename std::invoke_result_t<LossFn&>::value_type>
    basic_tensor<T> minimize(LossFn&& loss_fn, const std::vector<basic_variable<T>>& variables,
                             std::source_location site = std::source_location::current())
    {
        GradientTape tape;
        basic_tensor<T> loss = loss_fn();
        apply_gradients(tape.gradient(loss, variables, {}, site), variables, site);
        return loss;
    }

    [[nodiscard]] const sgd_options& options() const noexcept { return options_; }
    // How many times apply_gradients has updated the variables.
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }

private:
    sgd_options options_;
    std::uint64_t iterations_ = 0;
    std::unordered_map<tensor_id, std::variant<xt::xarray<float>, xt::xarray<double>>> momentum_buffers_;
};

}  // namespace gradtape
