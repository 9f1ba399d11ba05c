#include <gradtape/optim.hpp>

#include <cmath>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape {

RMSprop::RMSprop(double learning_rate, source_location site)
    : RMSprop(rmsprop_options{.learning_rate = learning_rate}, site)
{
}

RMSprop::RMSprop(rmsprop_options options, source_location site)
    : optimizer_rule("RMSprop", options.learning_rate), options_(std::move(options))
{
    const auto refuse = [&site](const std::string& what) { detail::fail<argument_error>("RMSprop", site, what); };
    if (!(options_.learning_rate(0) >= 0)) {
        refuse("learning_rate must be >= 0, got " + std::to_string(options_.learning_rate(0)));
    }
    if (!(options_.alpha >= 0 && options_.alpha <= 1)) {
        refuse("alpha must be in [0, 1], got " + std::to_string(options_.alpha));
    }
    if (!(options_.epsilon >= 0) || !(options_.weight_decay >= 0) || !(options_.momentum >= 0)) {
        refuse("epsilon, weight_decay and momentum must be >= 0");
    }
}

std::vector<optimizer::slot_spec> RMSprop::slot_specs() const
{
    std::vector<slot_spec> specs{{"square_avg", true, slot_values::non_negative}};
    if (options_.momentum > 0) {
        specs.push_back({"momentum_buffer", true, slot_values::finite});
    }
    if (options_.centered) {
        specs.push_back({"grad_avg", true, slot_values::finite});
    }
    return specs;
}

// Element by element, each operation rounded on its own, in torch's order.
template <dtype T>
void RMSprop::step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state,
                   double learning_rate)
{
    const bool momentum = options_.momentum > 0;
    if (state.slots.empty()) {
        state.slots.assign(1 + std::size_t(momentum) + std::size_t(options_.centered), xt::zeros<T>(weights.shape()));
    }
    const T rate = T(learning_rate);
    const T alpha = T(options_.alpha);
    const T decay = T(options_.weight_decay);
    const T epsilon = T(options_.epsilon);
    const T mu = T(options_.momentum);
    T* w = weights.data();
    const T* grad = gradient.data();
    T* square_avg = state.slots[0].data();
    T* buffer = momentum ? state.slots[1].data() : nullptr;
    T* grad_avg = options_.centered ? state.slots.back().data() : nullptr;
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const T g = decay != 0 ? grad[i] + decay * w[i] : grad[i];
        square_avg[i] = alpha * square_avg[i] + (T(1) - alpha) * (g * g);
        T variance = square_avg[i];
        if (grad_avg != nullptr) {
            grad_avg[i] = alpha * grad_avg[i] + (T(1) - alpha) * g;
            variance -= grad_avg[i] * grad_avg[i];
        }
        const T scaled = g / (std::sqrt(variance) + epsilon);
        if (buffer != nullptr) {
            buffer[i] = mu * buffer[i] + scaled;
            w[i] -= rate * buffer[i];
        } else {
            w[i] -= rate * scaled;
        }
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void RMSprop::step(xt::xarray<T>&, const xt::xarray<T>&, variable_state<T>&, double);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape
