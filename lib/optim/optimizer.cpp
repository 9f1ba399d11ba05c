#include <gradtape/ops.hpp>
#include <gradtape/optim.hpp>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "io/conversions.hpp"
#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {

using detail::fail;

learning_rate_schedule::learning_rate_schedule(double constant) : rate_([constant](std::uint64_t) { return constant; })
{
}

learning_rate_schedule::learning_rate_schedule(std::function<double(std::uint64_t)> rate) : rate_(std::move(rate)) {}

learning_rate_schedule step_decay(double initial, std::uint64_t step_size, double gamma)
{
    if (step_size == 0) {
        throw argument_error("step_decay: step_size must be at least 1");
    }
    return learning_rate_schedule([=](std::uint64_t step) { return initial * std::pow(gamma, double(step / step_size)); });
}

learning_rate_schedule exponential_decay(double initial, std::uint64_t decay_steps, double decay_rate)
{
    if (decay_steps == 0) {
        throw argument_error("exponential_decay: decay_steps must be at least 1");
    }
    return learning_rate_schedule(
        [=](std::uint64_t step) { return initial * std::pow(decay_rate, double(step) / double(decay_steps)); });
}

learning_rate_schedule cosine_decay(double initial, std::uint64_t decay_steps, double alpha)
{
    if (decay_steps == 0) {
        throw argument_error("cosine_decay: decay_steps must be at least 1");
    }
    return learning_rate_schedule([=](std::uint64_t step) {
        const double progress = double(std::min(step, decay_steps)) / double(decay_steps);
        const double cosine = 0.5 * (1 + std::cos(std::numbers::pi * progress));
        return initial * ((1 - alpha) * cosine + alpha);
    });
}

learning_rate_schedule warmup(learning_rate_schedule after, std::uint64_t warmup_steps)
{
    return learning_rate_schedule([after = std::move(after), warmup_steps](std::uint64_t step) {
        const double rate = after(step);
        return step < warmup_steps ? rate * double(step + 1) / double(warmup_steps) : rate;
    });
}

template <dtype T>
std::pair<std::vector<basic_tensor<T>>, basic_tensor<T>> clip_by_global_norm(
    const std::vector<basic_tensor<T>>& gradients, T clip_norm, source_location site)
{
    if (!(clip_norm > 0)) {
        fail<argument_error>("clip_by_global_norm", site, "clip_norm must be > 0, got " + std::to_string(clip_norm));
    }
    basic_tensor<T> squares = T(0);
    for (const auto& gradient : gradients) {
        if (gradient.defined()) {
            squares = add(squares, reduce_sum(square(gradient, site), site), site);
        }
    }
    const basic_tensor<T> norm = sqrt(squares, site);
    // As tf.clip_by_global_norm: a non-finite norm makes every clipped
    // gradient NaN (norm - norm is NaN then, and 0 otherwise), so that the
    // broken step shows instead of being taken by some gradients only.
    const basic_tensor<T> scale =
        add(divide(basic_tensor<T>(clip_norm), maximum(norm, clip_norm, site), site), subtract(norm, norm, site), site);
    std::vector<basic_tensor<T>> clipped;
    clipped.reserve(gradients.size());
    for (const auto& gradient : gradients) {
        clipped.push_back(gradient.defined() ? multiply(gradient, scale, site) : gradient);
    }
    return {std::move(clipped), norm};
}

optimizer::optimizer(std::string_view name, learning_rate_schedule schedule)
    : name_(name), schedule_(std::move(schedule))
{
}

template <dtype T>
void optimizer::apply_gradients(const std::vector<basic_tensor<T>>& gradients,
                                const std::vector<basic_variable<T>>& variables, source_location site)
{
    const std::string op = std::string(name_) + ".apply_gradients";
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
            fail<argument_error>(op, site,
                                 "variable '" + variable.name() +
                                     "' has no gradient (an undefined tensor): the loss does not depend on it, or "
                                     "it was read before the tape existed; training would leave it unchanged");
        }
        if (gradients[i].shape() != variable.shape()) {
            fail<shape_error>(op, site,
                              "variable '" + variable.name() + "' has shape " + detail::format_shape(variable.shape()) +
                                  ", its gradient has shape " + detail::format_shape(gradients[i].shape()));
        }
    }
    detail::capture_session* session = detail::active_capture();
    if (session) [[unlikely]] {
        auto step = std::make_unique<recorded_update<T>>(*this, variables, site);
        for (const auto& gradient : gradients) {
            step->gradients.push_back(
                detail::input_slot(*session, detail::tensor_access::node(gradient), op, site, false));
        }
        step->reads = step->gradients;
        detail::add_step(*session, std::move(step));
    }
    const detail::recorded_write recorded(session);
    update_variables(variables, [&](std::size_t i) -> const xt::xarray<T>& {
        return detail::tensor_access::value(gradients[i]);
    }, site);
}

template <dtype T, class GradientOf>
void optimizer::update_variables(const std::vector<basic_variable<T>>& variables, const GradientOf& gradient_of,
                                 const source_location& site)
{
    // The schedule is read at every update: one that turns NaN, infinite or
    // negative at a later step would otherwise write that into every weight.
    const double rate = learning_rate();
    if (!std::isfinite(rate) || rate < 0) {
        fail<argument_error>(std::string(name_) + ".apply_gradients", site,
                             "the learning rate at step " + std::to_string(iterations_) + " is " +
                                 std::to_string(rate) + "; it must be finite and >= 0");
    }
    for (std::size_t i = 0; i < variables.size(); ++i) {
        // A state is made once: it holds arrays, and an update allocates nothing after its first.
        auto found = states_.find(variables[i].id());
        if (found == states_.end()) {
            found = states_.emplace(variables[i].id(), variable_state<T>{}).first;
        }
        auto& state = std::get<variable_state<T>>(found->second);
        ++state.steps;
        detail::write_variable(variables[i], site, [&](xt::xarray<T>& value) {
            update(value, gradient_of(i), state, rate);
        });
    }
    ++iterations_;
}

// apply_gradients as a replay step: the checks of its arguments hold for
// every replay of the signature; the rest runs again.
template <dtype T>
struct optimizer::recorded_update final : detail::replay_step {
    recorded_update(optimizer& updating, const std::vector<basic_variable<T>>& updated,
                    const source_location& where)
        : owner(updating), variables(updated), label(std::string(updating.name_) + ".apply_gradients")
    {
        name = label;
        site = where;
    }
    void run(std::span<detail::replay_slot> slots) override
    {
        owner.update_variables(variables, [&](std::size_t i) -> const xt::xarray<T>& {
            return detail::slot_value<T>(slots[gradients[i]]);
        }, site);
    }

    optimizer& owner;
    std::vector<basic_variable<T>> variables;
    std::vector<detail::slot_index> gradients;
    std::string label;
};

optimizer_slots optimizer::slots_of(tensor_id variable) const
{
    const auto found = states_.find(variable);
    if (found == states_.end()) {
        return {};
    }
    return std::visit(
        [this](const auto& state) {
            optimizer_slots slots;
            std::size_t array = 0;
            for (const auto& [name, shaped, values] : slot_specs()) {
                if (values == slot_values::update_count) {
                    slots.emplace(name, xt::xarray<double>(double(state.steps)));
                } else if (array < state.slots.size()) {
                    slots.emplace(name, xt::xarray<double>(state.slots[array++]));
                }
            }
            return slots;
        },
        found->second);
}

template <dtype T>
void optimizer::restore(tensor_id variable, const optimizer_slots& slots)
{
    if (slots.empty()) {
        states_.erase(variable);
        return;
    }
    variable_state<T> state;
    for (const auto& [name, shaped, values] : slot_specs()) {
        const xt::xarray<double>& given = slots.at(name);
        if (values == slot_values::update_count) {
            state.steps = std::uint64_t(given());
        } else {
            state.slots.emplace_back(xt::xarray<T>(given));
        }
    }
    states_.insert_or_assign(variable, std::move(state));
}

template <dtype T>
void optimizer::set_slots(const basic_variable<T>& variable, const optimizer_slots& slots, source_location site)
{
    check_slots(variable, slots, site);
    restore<T>(variable.id(), slots);
}

template <dtype T>
void optimizer::check_slots(const basic_variable<T>& variable, const optimizer_slots& slots,
                            source_location site) const
{
    if (const auto problem = slots_problem(variable, slots)) {
        fail<argument_error>(std::string(name_) + ".set_slots", site, problem->why);
    }
}

template <dtype T>
std::optional<optimizer::slot_problem> optimizer::slots_problem(const basic_variable<T>& variable,
                                                                const optimizer_slots& slots) const
{
    if (slots.empty()) {
        return std::nullopt;
    }
    for (const auto& [slot, shaped, values] : slot_specs()) {
        const auto found = slots.find(slot);
        const std::string named = "slot '" + slot + "' of variable '" + variable.name() + "'";
        if (found == slots.end()) {
            return slot_problem{slot, "variable '" + variable.name() + "' has no slot '" + slot + "'"};
        }
        const shape_type expected = shaped ? variable.shape() : shape_type{};
        const shape_type given(found->second.shape().begin(), found->second.shape().end());
        if (given != expected) {
            return slot_problem{slot, named + " has shape " + detail::format_shape(given) + ", not " +
                                          detail::format_shape(expected)};
        }
        const auto bad = std::ranges::find_if(found->second, [&](double value) {
            switch (values) {
            case slot_values::finite: return !std::isfinite(value) || !detail::fits<T>(value);
            case slot_values::non_negative: return !(value >= 0) || !std::isfinite(value) || !detail::fits<T>(value);
            case slot_values::update_count: return !(value >= 1 && value <= 0x1p53 && std::trunc(value) == value);
            }
            return true;
        });
        if (bad != found->second.end()) {
            const char* holds = values == slot_values::finite         ? "finite values"
                                : values == slot_values::non_negative ? "finite values >= 0"
                                                                      : "a count of updates (a whole number from 1)";
            return slot_problem{slot, named + " holds " + std::to_string(*bad) + " where an update leaves " +
                                          holds + " of " + detail::dtype_name<T>()};
        }
    }
    return std::nullopt;
}

template <dtype T>
void detail::check_model_holds_all(const GradientTape& tape, const std::vector<basic_variable<T>>& variables,
                                   const std::string& model, const source_location& site)
{
    for (const auto& [id, name] : tape.accessed_variables(site)) {
        if (std::ranges::none_of(variables, [id](const auto& variable) { return variable.id() == id; })) {
            fail<argument_error>("minimize", site,
                                 "the loss read trainable variable '" + name + "', which model '" + model +
                                     "' does not hold: add its layer to the model (or make it not trainable)");
        }
    }
}

template <dtype T>
void detail::check_model_trains(const std::vector<basic_variable<T>>& variables, const std::string& model,
                                const source_location& site)
{
    if (variables.empty()) {
        fail<argument_error>("minimize", site,
                             "model '" + model +
                                 "' has no trainable variables: it holds no layers, or none with variables to train");
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void detail::check_model_trains(const std::vector<basic_variable<T>>&, const std::string&,            \
                                             const source_location&);                                          \
    template void optimizer::apply_gradients(const std::vector<basic_tensor<T>>&,                                   \
                                             const std::vector<basic_variable<T>>&, source_location);          \
    template std::pair<std::vector<basic_tensor<T>>, basic_tensor<T>> clip_by_global_norm(                          \
        const std::vector<basic_tensor<T>>&, T, source_location);                                               \
    template void optimizer::set_slots(const basic_variable<T>&, const optimizer_slots&, source_location);       \
    template void optimizer::check_slots(const basic_variable<T>&, const optimizer_slots&, source_location)      \
        const;                                                                                                      \
    template std::optional<optimizer::slot_problem> optimizer::slots_problem(const basic_variable<T>&,              \
                                                                             const optimizer_slots&) const;         \
    template void detail::check_model_holds_all(const GradientTape&, const std::vector<basic_variable<T>>&,         \
                                                const std::string&, const source_location&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
