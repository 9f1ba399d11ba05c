#include <gradtape/optim.hpp>

#include <xtensor/xnoalias.hpp>

#include "../diagnostics.hpp"
#include "../dtypes.hpp"

namespace gradtape {

using detail::fail;

SGD::SGD(double learning_rate) : SGD(sgd_options{.learning_rate = learning_rate}) {}

SGD::SGD(sgd_options options) : options_(options)
{
    const auto refuse = [](const std::string& what) { throw argument_error("SGD: " + what); };
    if (!(options.learning_rate >= 0)) {
        refuse("learning_rate must be >= 0, got " + std::to_string(options.learning_rate));
    }
    if (!(options.momentum >= 0)) {
        refuse("momentum must be >= 0, got " + std::to_string(options.momentum));
    }
    if (!(options.weight_decay >= 0)) {
        refuse("weight_decay must be >= 0, got " + std::to_string(options.weight_decay));
    }
    if (options.nesterov && (options.momentum <= 0 || options.dampening != 0)) {
        refuse("nesterov needs momentum > 0 and dampening = 0");
    }
}

template <dtype T>
void SGD::apply_gradients(const std::vector<basic_tensor<T>>& gradients,
                          const std::vector<basic_variable<T>>& variables, std::source_location site)
{
    constexpr std::string_view op = "SGD.apply_gradients";
    if (gradients.size() != variables.size()) {
        fail<argument_error>(op, site,
                             std::to_string(gradients.size()) + " gradients for " + std::to_string(variables.size()) +
                                 " variables");
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
        const auto& variable = variables[i];
        if (!variable.trainable()) {
            fail<argument_error>(op, site, "variable '" + variable.name() + "' is not trainable");
        }
        if (!gradients[i].defined()) {
            fail<argument_error>(op, site, "the gradient for variable '" + variable.name() + "' is undefined");
        }
        if (gradients[i].shape() != variable.shape()) {
            fail<shape_error>(op, site,
                              "variable '" + variable.name() + "' has shape " + detail::format_shape(variable.shape()) +
                                  ", its gradient has shape " + detail::format_shape(gradients[i].shape()));
        }
    }

    // Every check above runs before the first variable changes, so that bad
    // input leaves all of them as they were.
    const bool uses_momentum = options_.momentum != 0;
    xt::xarray<T> step;
    const T learning_rate = T(options_.learning_rate);
    const T momentum = T(options_.momentum);
    const T weight_decay = T(options_.weight_decay);
    const T dampening = T(options_.dampening);
    for (std::size_t i = 0; i < variables.size(); ++i) {
        xt::xarray<T>& weights = variables[i].storage();
        const xt::xarray<T>& gradient = gradients[i].value();
        if (!uses_momentum && weight_decay == 0) {
            xt::noalias(weights) -= learning_rate * gradient;
            continue;
        }
        step = gradient + weight_decay * weights;
        if (uses_momentum) {
            auto [slot, first_step] = momentum_buffers_.try_emplace(variables[i].id(), xt::xarray<T>());
            auto& buffer = std::get<xt::xarray<T>>(slot->second);
            if (first_step) {
                buffer = step;
            } else {
                xt::noalias(buffer) = momentum * buffer + (T(1) - dampening) * step;
            }
            if (options_.nesterov) {
                xt::noalias(step) += momentum * buffer;
            } else {
                xt::noalias(step) = buffer;
            }
        }
        xt::noalias(weights) -= learning_rate * step;
    }
    ++iterations_;
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void SGD::apply_gradients(const std::vector<basic_tensor<T>>&, const std::vector<basic_variable<T>>&,  \
                                       std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
