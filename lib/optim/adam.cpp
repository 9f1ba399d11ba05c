#include <gradtape/optim.hpp>

#include <xtensor/xnoalias.hpp>

#include <cmath>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "kernels/arithmetic.hpp"

namespace gradtape {

Adam::Adam(double learning_rate, source_location site)
    : Adam(adam_options{.learning_rate = learning_rate}, site)
{
}

Adam::Adam(adam_options options, source_location site) : Adam("Adam", std::move(options), false, site) {}

Adam::Adam(std::string_view name, adam_options options, bool decoupled_weight_decay, source_location site)
    : optimizer_rule(name, options.learning_rate), options_(std::move(options)),
      decoupled_weight_decay_(decoupled_weight_decay)
{
    const auto refuse = [name, &site](const std::string& what) { detail::fail<argument_error>(name, site, what); };
    if (!(options_.learning_rate(0) >= 0)) {
        refuse("learning_rate must be >= 0, got " + std::to_string(options_.learning_rate(0)));
    }
    if (!(options_.beta1 >= 0 && options_.beta1 < 1) || !(options_.beta2 >= 0 && options_.beta2 < 1)) {
        refuse("beta1 and beta2 must be in [0, 1), got " + std::to_string(options_.beta1) + " and " +
               std::to_string(options_.beta2));
    }
    if (!(options_.epsilon >= 0) || !(options_.weight_decay >= 0)) {
        refuse("epsilon and weight_decay must be >= 0");
    }
}

AdamW::AdamW(adam_options options, source_location site) : Adam("AdamW", std::move(options), true, site) {}

std::vector<optimizer::slot_spec> Adam::slot_specs() const
{
    std::vector<slot_spec> specs{{"m", true, slot_values::finite},
                                 {"v", true, slot_values::non_negative},
                                 {"steps", false, slot_values::update_count}};
    if (options_.amsgrad) {
        specs.push_back({"v_max", true, slot_values::non_negative});
    }
    return specs;
}

template <dtype T>
void Adam::step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate)
{
    if (state.slots.empty()) {
        state.slots.assign(options_.amsgrad ? 3 : 2, xt::zeros<T>(weights.shape()));
    }
    const std::uint64_t t = state.steps;
    const T beta1 = T(options_.beta1);
    const T beta2 = T(options_.beta2);
    const T decay = T(options_.weight_decay);
    if (decoupled_weight_decay_ && decay != 0) {
        weights *= T(1) - T(learning_rate) * decay;
    }
    const bool coupled_decay = !decoupled_weight_decay_ && decay != 0;
    const T* decayed = nullptr;
    if (coupled_decay) {
        xt::xarray<T>& scratch = state.scratch_of(gradient.shape());
        xt::noalias(scratch) = gradient + decay * weights;
        decayed = scratch.data();
    }
    const T bias_correction1 = T(1 - std::pow(options_.beta1, double(t)));
    const detail::adam_coefficients<T> coefficients{
        .beta1 = beta1,
        .beta2 = beta2,
        .step_size = T(learning_rate) / bias_correction1,
        .bias_correction2_sqrt = T(std::sqrt(1 - std::pow(options_.beta2, double(t)))),
        .epsilon = T(options_.epsilon),
    };
    detail::adam_update(weights.data(), state.slots[0].data(), state.slots[1].data(),
                        options_.amsgrad ? state.slots[2].data() : nullptr,
                        coupled_decay ? decayed : gradient.data(), weights.size(), coefficients);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void Adam::step(xt::xarray<T>&, const xt::xarray<T>&, variable_state<T>&, double);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape
