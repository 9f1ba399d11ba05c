#include <gradtape/optim.hpp>

#include <xtensor/xnoalias.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "kernels/arithmetic.hpp"

namespace gradtape {

SGD::SGD(double learning_rate, source_location site)
    : SGD(sgd_options{.learning_rate = learning_rate}, site)
{
}

SGD::SGD(sgd_options options, source_location site)
    : optimizer_rule("SGD", options.learning_rate), options_(std::move(options))
{
    const auto refuse = [&site](const std::string& what) { detail::fail<argument_error>("SGD", site, what); };
    if (!(options_.learning_rate(0) >= 0)) {
        refuse("learning_rate must be >= 0, got " + std::to_string(options_.learning_rate(0)));
    }
    if (!(options_.momentum >= 0)) {
        refuse("momentum must be >= 0, got " + std::to_string(options_.momentum));
    }
    if (!(options_.weight_decay >= 0)) {
        refuse("weight_decay must be >= 0, got " + std::to_string(options_.weight_decay));
    }
    if (options_.nesterov && (options_.momentum <= 0 || options_.dampening != 0)) {
        refuse("nesterov needs momentum > 0 and dampening = 0");
    }
}

std::vector<optimizer::slot_spec> SGD::slot_specs() const
{
    if (options_.momentum == 0) {
        return {};
    }
    return {{"momentum", true, slot_values::finite}};
}

template <dtype T>
void SGD::step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate)
{
    const T rate = T(learning_rate);
    const T momentum = T(options_.momentum);
    const T weight_decay = T(options_.weight_decay);
    if (momentum == 0 && weight_decay == 0) {
        detail::subtract_scaled(weights.data(), gradient.data(), rate, weights.size());
        return;
    }
    xt::xarray<T>& direction = state.scratch_of(gradient.shape());
    xt::noalias(direction) = gradient + weight_decay * weights;
    if (momentum != 0) {
        if (state.slots.empty()) {
            state.slots.push_back(direction);
        } else {
            xt::xarray<T>& buffer = state.slots[0];
            xt::noalias(buffer) = momentum * buffer + (T(1) - T(options_.dampening)) * direction;
        }
        const xt::xarray<T>& buffer = state.slots[0];
        if (options_.nesterov) {
            xt::noalias(direction) += momentum * buffer;
        } else {
            xt::noalias(direction) = buffer;
        }
    }
    detail::subtract_scaled(weights.data(), direction.data(), rate, weights.size());
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void SGD::step(xt::xarray<T>&, const xt::xarray<T>&, variable_state<T>&, double);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape
