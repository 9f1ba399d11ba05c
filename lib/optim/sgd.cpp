#include <gradtape/optim.hpp>

#include <xtensor/xnoalias.hpp>

#include "core/diagnostics.hpp"
#include "kernels/arithmetic.hpp"

namespace gradtape {

SGD::SGD(double learning_rate, std::source_location site)
    : SGD(sgd_options{.learning_rate = learning_rate}, site)
{
}

SGD::SGD(sgd_options options, std::source_location site)
    : optimizer("SGD", options.learning_rate), options_(std::move(options))
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

void SGD::update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, tensor_id variable,
                 double learning_rate)
{
    step(weights, gradient, variable, learning_rate);
}

void SGD::update(xt::xarray<double>& weights, const xt::xarray<double>& gradient, tensor_id variable,
                 double learning_rate)
{
    step(weights, gradient, variable, learning_rate);
}

optimizer_slots SGD::slots_of(tensor_id variable) const
{
    const auto found = momentum_buffers_.find(variable);
    if (found == momentum_buffers_.end()) {
        return {};
    }
    return std::visit([](const auto& buffer) { return optimizer_slots{{"momentum", xt::xarray<double>(buffer)}}; },
                      found->second);
}

std::vector<optimizer::slot_spec> SGD::slot_specs() const
{
    if (options_.momentum == 0) {
        return {};
    }
    return {{"momentum", true, slot_values::finite}};
}

void SGD::restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<float>)
{
    restore_as<float>(variable, slots);
}

void SGD::restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<double>)
{
    restore_as<double>(variable, slots);
}

template <dtype T>
void SGD::restore_as(tensor_id variable, const optimizer_slots& slots)
{
    const auto found = slots.find("momentum");
    if (found == slots.end()) {
        momentum_buffers_.erase(variable);
        return;
    }
    momentum_buffers_.insert_or_assign(variable, xt::xarray<T>(found->second));
}

template <dtype T>
void SGD::step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, tensor_id variable, double learning_rate)
{
    const T rate = T(learning_rate);
    const T momentum = T(options_.momentum);
    const T weight_decay = T(options_.weight_decay);
    if (momentum == 0 && weight_decay == 0) {
        detail::subtract_scaled(weights.data(), gradient.data(), rate, weights.size());
        return;
    }
    xt::xarray<T> direction = gradient + weight_decay * weights;
    if (momentum != 0) {
        auto [slot, first_step] = momentum_buffers_.try_emplace(variable, xt::xarray<T>());
        auto& buffer = std::get<xt::xarray<T>>(slot->second);
        if (first_step) {
            buffer = direction;
        } else {
            xt::noalias(buffer) = momentum * buffer + (T(1) - T(options_.dampening)) * direction;
        }
        if (options_.nesterov) {
            xt::noalias(direction) += momentum * buffer;
        } else {
            xt::noalias(direction) = buffer;
        }
    }
    detail::subtract_scaled(weights.data(), direction.data(), rate, weights.size());
}

}  // namespace gradtape
