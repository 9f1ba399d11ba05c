#include <gradtape/optim.hpp>

#include <cmath>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape {

Adagrad::Adagrad(double learning_rate, source_location site)
    : Adagrad(adagrad_options{.learning_rate = learning_rate}, site)
{
}

Adagrad::Adagrad(adagrad_options options, source_location site)
    : optimizer_rule("Adagrad", options.learning_rate), options_(std::move(options))
{
    const auto refuse = [&site](const std::string& what) { detail::fail<argument_error>("Adagrad", site, what); };
    if (!(options_.learning_rate(0) >= 0)) {
        refuse("learning_rate must be >= 0, got " + std::to_string(options_.learning_rate(0)));
    }
    if (!(options_.lr_decay >= 0) || !(options_.weight_decay >= 0) || !(options_.initial_accumulator_value >= 0) ||
        !(options_.epsilon >= 0)) {
        refuse("lr_decay, weight_decay, initial_accumulator_value and epsilon must be >= 0");
    }
}

std::vector<optimizer::slot_spec> Adagrad::slot_specs() const
{
    return {{"sum", true, slot_values::non_negative}, {"steps", false, slot_values::update_count}};
}

// Element by element, each operation rounded on its own, in torch's order.
template <dtype T>
void Adagrad::step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state,
                   double learning_rate)
{
    if (state.slots.empty()) {
        state.slots.push_back(xt::xarray<T>::from_shape(weights.shape()));
        state.slots[0].fill(T(options_.initial_accumulator_value));
    }
    const T rate = T(learning_rate / (1 + double(state.steps - 1) * options_.lr_decay));
    const T decay = T(options_.weight_decay);
    const T epsilon = T(options_.epsilon);
    T* w = weights.data();
    const T* grad = gradient.data();
    T* sum = state.slots[0].data();
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const T g = decay != 0 ? grad[i] + decay * w[i] : grad[i];
        sum[i] += g * g;
        w[i] -= rate * (g / (std::sqrt(sum[i]) + epsilon));
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void Adagrad::step(xt::xarray<T>&, const xt::xarray<T>&, variable_state<T>&, double);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape
