// Optimizers: they update trainable variables in place from their gradients,
// with the update rules of torch.optim; learning rates may follow a schedule.
//
//   gradtape::Adam opt({.learning_rate = gradtape::cosine_decay(1e-3, 1000)});
//   for (int step = 0; step < 1000; ++step) {
//       auto loss = opt.minimize([&] { return model_loss(); }, {w1, b1, w2, b2});
//   }
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "source_location.hpp"
#include "tape.hpp"
#include "variable.hpp"

namespace gradtape {

/// @cond INTERNAL
template <dtype T>
class basic_layer;
/// @endcond

namespace detail {
// Refuses (argument_error, naming it) a trainable variable the tape saw read
// that `variables`, those of `model`, do not hold: a layer never added.
template <dtype T>
void check_model_holds_all(const GradientTape& tape, const std::vector<basic_variable<T>>& variables,
                           const std::string& model, const source_location& site);

// Refuses a step of a model with nothing to train (no layers, or none with
// trainable variables), which would otherwise fail as a target no tape recorded.
template <dtype T>
void check_model_trains(const std::vector<basic_variable<T>>& variables, const std::string& model,
                        const source_location& site);

template <dtype T>
struct model_gradients {
    basic_tensor<T> loss;
    std::vector<basic_tensor<T>> gradients;
    std::vector<basic_variable<T>> variables;
};
// loss_fn's loss under a tape of its own, and its gradient for each
// trainable variable of `model` (which loss_fn's first call builds).
template <class LossFn, dtype T>
model_gradients<T> gradients_of_model(LossFn&& loss_fn, const basic_layer<T>& model, const source_location& site)
{
    GradientTape tape;
    basic_tensor<T> loss = loss_fn();
    std::vector<basic_variable<T>> variables = model.trainable_variables();
    check_model_holds_all(tape, variables, model.path(), site);
    check_model_trains(variables, model.path(), site);
    auto gradients = tape.gradient(loss, variables, {}, unconnected_gradients::none, site);
    return {std::move(loss), std::move(gradients), std::move(variables)};
}
}  // namespace detail

/// The state an optimizer keeps for one variable, by slot name, in float64
/// (which holds every float32 value and step count exactly).
using optimizer_slots = std::map<std::string, xt::xarray<double>>;

/// A learning rate as a function of the number of updates already applied.
/// A plain number converts to a constant schedule.
class learning_rate_schedule {
public:
    /// The same rate at every step.
    learning_rate_schedule(double constant);
    /// rate(step), step counting the updates already applied.
    explicit learning_rate_schedule(std::function<double(std::uint64_t step)> rate);
    /// The rate of the update after `step` updates.
    [[nodiscard]] double operator()(std::uint64_t step) const { return rate_(step); }

private:
    std::function<double(std::uint64_t)> rate_;
};

/// initial * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR.
[[nodiscard]] learning_rate_schedule step_decay(double initial, std::uint64_t step_size, double gamma);
/// initial * decay_rate^(step / decay_steps), as tf.keras.optimizers.schedules.ExponentialDecay.
[[nodiscard]] learning_rate_schedule exponential_decay(double initial, std::uint64_t decay_steps, double decay_rate);
/// From initial down to alpha * initial over decay_steps along half a cosine, then
/// flat, as tf.keras.optimizers.schedules.CosineDecay.
[[nodiscard]] learning_rate_schedule cosine_decay(double initial, std::uint64_t decay_steps, double alpha = 0);
/// after(step) scaled linearly from 1/warmup_steps up to 1 over the first warmup_steps updates.
[[nodiscard]] learning_rate_schedule warmup(learning_rate_schedule after, std::uint64_t warmup_steps);

/// Scales every gradient by clip_norm / max(global_norm, clip_norm), where
/// global_norm is the L2 norm of all of them together, as tf.clip_by_global_norm.
/// Returns the scaled gradients and the global norm before scaling.
template <dtype T>
[[nodiscard]] std::pair<std::vector<basic_tensor<T>>, basic_tensor<T>> clip_by_global_norm(
    const std::vector<basic_tensor<T>>& gradients, T clip_norm,
    source_location site = source_location::current());

#define GRADTAPE_MINIMIZE_TENSORS                                                                     \
    "gradtape: minimize trains variables or a model, not tensors: make each weight a variable, "      \
    "gt::Variable w(initial_value, \"w\"), or pass the model: opt.minimize(loss_fn, model)"

/// What every optimizer shares: the checks before an update, minimize, and
/// the count of updates that schedules read.
class optimizer {
public:
    virtual ~optimizer() = default;

    /// Checks every pair before it changes anything: the lists must have the
    /// same length, each gradient the shape of its variable, each variable be
    /// trainable. On error no variable is changed.
    template <dtype T>
    void apply_gradients(const std::vector<basic_tensor<T>>& gradients,
                         const std::vector<basic_variable<T>>& variables,
                         source_location site = source_location::current());

    /// Runs loss_fn under a tape of its own, applies the gradient of the loss
    /// to `variables` and returns the loss.
    template <class LossFn, dtype T = typename std::invoke_result_t<LossFn&>::value_type>
    basic_tensor<T> minimize(LossFn&& loss_fn, const std::vector<basic_variable<T>>& variables,
                             source_location site = source_location::current())
    {
        GradientTape tape;
        basic_tensor<T> loss = loss_fn();
        apply_gradients(tape.gradient(loss, variables, {}, unconnected_gradients::none, site), variables, site);
        return loss;
    }

    /// The same for the trainable variables of `model`, which loss_fn's first
    /// call makes. A trainable variable the loss read that the model does not
    /// hold (a layer never added to it) is an argument_error naming it, and
    /// then nothing changes.
    template <class LossFn, dtype T>
    basic_tensor<T> minimize(LossFn&& loss_fn, const basic_layer<T>& model,
                             source_location site = source_location::current())
    {
        auto step = detail::gradients_of_model(loss_fn, model, site);
        apply_gradients(step.gradients, step.variables, site);
        return step.loss;
    }

    /// @cond INTERNAL
    // Tensors where variables belong: refused with a message, where the
    // compiler would list the overloads that did not match.
    template <class LossFn, class Tensor>
        requires(std::same_as<Tensor, basic_tensor<typename Tensor::value_type>>)
    basic_tensor<typename Tensor::value_type> minimize(LossFn&&, std::initializer_list<Tensor>,
                                                       source_location = {})
    {
        static_assert(detail::dependent_false<Tensor>, GRADTAPE_MINIMIZE_TENSORS);
        return {};
    }
    template <class LossFn, dtype T>
    basic_tensor<T> minimize(LossFn&&, const std::vector<basic_tensor<T>>&, source_location = {})
    {
        static_assert(detail::dependent_false<T>, GRADTAPE_MINIMIZE_TENSORS);
        return {};
    }
    /// @endcond

    /// How many times apply_gradients has updated the variables.
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    /// Sets that count, as a checkpoint being resumed does; schedules follow it.
    void set_iterations(std::uint64_t iterations) noexcept { iterations_ = iterations; }

    /// The state kept for `variable`, empty before its first update: the
    /// slots each optimizer names below, in float64 (which holds every
    /// float32 value and step count exactly).
    template <dtype T>
    [[nodiscard]] optimizer_slots slots(const basic_variable<T>& variable) const
    {
        return slots_of(variable.id());
    }
    /// Replaces that state with what slots() gave (empty: none yet). A
    /// missing slot, or one of another shape than the variable, is an
    /// argument_error, and then nothing changes.
    template <dtype T>
    void set_slots(const basic_variable<T>& variable, const optimizer_slots& slots,
                   source_location site = source_location::current());
    /// Throws as set_slots would, and changes nothing.
    template <dtype T>
    void check_slots(const basic_variable<T>& variable, const optimizer_slots& slots,
                     source_location site = source_location::current()) const;
    /// Why set_slots would refuse `slots` for `variable`: a slot missing, of
    /// another shape, or holding what no update can write there (a NaN, a
    /// negative second moment, a step count that is not a count, a value the
    /// variable's dtype cannot hold); nothing when it would take them.
    struct slot_problem {
        std::string slot;  ///< The slot's name.
        std::string why;   ///< What is wrong with it, for the message.
    };
    /// Why set_slots would refuse these slots, if it would.
    template <dtype T>
    [[nodiscard]] std::optional<slot_problem> slots_problem(const basic_variable<T>& variable,
                                                            const optimizer_slots& slots) const;
    /// The learning rate the next update uses.
    [[nodiscard]] double learning_rate() const { return schedule_(iterations_); }

protected:
    /// name (a static string) appears in error messages: "SGD.apply_gradients".
    optimizer(std::string_view name, learning_rate_schedule schedule);

    /// What an update can leave in a slot.
    enum class slot_values { finite, non_negative, update_count };
    /// One slot of a variable's state, as slot_specs() declares it.
    struct slot_spec {
        std::string name;    ///< Its name in checkpoints and slots().
        bool shaped;         ///< Shaped like the variable, or else a scalar.
        slot_values values;  ///< What set_slots accepts in it.
    };
    /// One variable's state: the slots that hold arrays, in slot_specs()'s
    /// order and the variable's own dtype (as torch keeps them), empty before
    /// its first update; and the count of its updates, this one included.
    template <dtype T>
    struct variable_state {
        std::vector<xt::xarray<T>> slots;  ///< The slots, in slot_specs()'s order.
        std::uint64_t steps = 0;           ///< This variable's updates, this one included.
        /// Room for an update's intermediate values (a decayed gradient),
        /// of the variable's shape once used: an update allocates nothing
        /// after the first. Not part of the state a checkpoint keeps.
        xt::xarray<T> scratch;
        /// The scratch array, resized to `shape` if it is not already.
        xt::xarray<T>& scratch_of(const shape_type& shape)
        {
            if (scratch.shape() != shape) {
                scratch.resize(shape);
            }
            return scratch;
        }
    };

private:
    template <class Rule>
    friend class optimizer_rule;
    /// One variable's update, after the checks; optimizer_rule forwards both
    /// dtypes to its rule's step<T>.
    virtual void update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, variable_state<float>& state,
                        double learning_rate) = 0;
    virtual void update(xt::xarray<double>& weights, const xt::xarray<double>& gradient,
                        variable_state<double>& state, double learning_rate) = 0;
    /// The slots a variable's state has once it is updated.
    [[nodiscard]] virtual std::vector<slot_spec> slot_specs() const = 0;

    [[nodiscard]] optimizer_slots slots_of(tensor_id variable) const;
    template <dtype T>
    void restore(tensor_id variable, const optimizer_slots& slots);
    /// apply_gradients once its arguments are checked: the learning rate's
    /// check, then each variable's update, gradient_of(i) giving the ith
    /// gradient's value. A capture's replay calls it too (capture.hpp).
    template <dtype T, class GradientOf>
    void update_variables(const std::vector<basic_variable<T>>& variables, const GradientOf& gradient_of,
                          const source_location& site);
    template <dtype T>
    struct recorded_update;

    std::string_view name_;
    learning_rate_schedule schedule_;
    std::uint64_t iterations_ = 0;
    std::unordered_map<tensor_id, std::variant<variable_state<float>, variable_state<double>>> states_;
};

/// An optimizer written as its rule: Rule::step<T>(weights, gradient, state,
/// learning_rate), one function for float and double, and Rule::slot_specs().
template <class Rule>
class optimizer_rule : public optimizer {
protected:
    using optimizer::optimizer;

private:
    void update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, variable_state<float>& state,
                double learning_rate) final
    {
        static_cast<Rule&>(*this).step(weights, gradient, state, learning_rate);
    }
    void update(xt::xarray<double>& weights, const xt::xarray<double>& gradient, variable_state<double>& state,
                double learning_rate) final
    {
        static_cast<Rule&>(*this).step(weights, gradient, state, learning_rate);
    }
};

/// SGD's hyperparameters, torch.optim.SGD's names and defaults.
struct sgd_options {
    learning_rate_schedule learning_rate = 0.01;  ///< A number or a schedule.
    double momentum = 0;                          ///< 0: plain gradient descent.
    double dampening = 0;                         ///< Damps the gradient's share of the momentum buffer.
    bool nesterov = false;                        ///< Nesterov momentum (needs momentum, no dampening).
    double weight_decay = 0;                      ///< L2 penalty, added to the gradient.
};

/// Stochastic gradient descent with the update rule of torch.optim.SGD:
///   g = grad + weight_decay * w
///   b = g on the first step, else momentum * b + (1 - dampening) * g
///   g = g + momentum * b with nesterov, else b          (when momentum != 0)
///   w = w - learning_rate * g
/// Its slot: "momentum" (b), with momentum.
class SGD final : public optimizer_rule<SGD> {
public:
    /// Plain SGD at this rate.
    SGD(double learning_rate, source_location site = source_location::current());
    /// SGD with these options; a negative or NaN hyperparameter is an argument_error.
    SGD(sgd_options options, source_location site = source_location::current());

    /// The hyperparameters.
    [[nodiscard]] const sgd_options& options() const noexcept { return options_; }

private:
    friend class optimizer_rule<SGD>;
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate);
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;

    sgd_options options_;
};

/// Adam's and AdamW's hyperparameters, torch.optim.Adam's names and defaults.
struct adam_options {
    learning_rate_schedule learning_rate = 0.001;  ///< A number or a schedule.
    double beta1 = 0.9;                            ///< Decay of the first moment.
    double beta2 = 0.999;                          ///< Decay of the second moment.
    double epsilon = 1e-8;                         ///< Added to the denominator.
    double weight_decay = 0;                       ///< L2 penalty (Adam) or decoupled decay (AdamW).
    bool amsgrad = false;                          ///< Divide by the largest second moment seen.
};

/// Adam with the update rule of torch.optim.Adam (weight_decay adds
/// weight_decay * w to the gradient); AdamW decays the weights directly, as
/// torch.optim.AdamW: w = w * (1 - learning_rate * weight_decay) before the step.
///   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2  (amsgrad: v_max = max(v_max, v))
///   w = w - learning_rate / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + epsilon)
/// Its slots: "m", "v", "v_max" (with amsgrad) and "steps" (t).
class Adam : public optimizer_rule<Adam> {
public:
    /// Adam at this rate.
    Adam(double learning_rate = 0.001, source_location site = source_location::current());
    /// Adam with these options; a hyperparameter out of range is an argument_error.
    Adam(adam_options options, source_location site = source_location::current());

    /// The hyperparameters.
    [[nodiscard]] const adam_options& options() const noexcept { return options_; }

protected:
    /// For AdamW: its name, and the decay applied to the weights.
    Adam(std::string_view name, adam_options options, bool decoupled_weight_decay, source_location site);

private:
    friend class optimizer_rule<Adam>;
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate);
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;

    adam_options options_;
    bool decoupled_weight_decay_;
};

/// Adam with decoupled weight decay, as torch.optim.AdamW (see Adam).
class AdamW final : public Adam {
public:
    /// torch.optim.AdamW's default weight_decay is 0.01.
    AdamW(adam_options options = {.weight_decay = 0.01}, source_location site = source_location::current());
};

/// RMSprop's hyperparameters, torch.optim.RMSprop's names and defaults.
struct rmsprop_options {
    learning_rate_schedule learning_rate = 0.01;  ///< A number or a schedule.
    double alpha = 0.99;                          ///< Decay of the squared-gradient average.
    double epsilon = 1e-8;                        ///< Added to the denominator.
    double weight_decay = 0;                      ///< L2 penalty, added to the gradient.
    double momentum = 0;                          ///< 0: no momentum buffer.
    bool centered = false;                        ///< Divide by the variance rather than the second moment.
};

/// RMSprop with the update rule of torch.optim.RMSprop:
///   g = grad + weight_decay * w
///   v = alpha v + (1 - alpha) g^2;  a = alpha a + (1 - alpha) g, and v~ = v - a^2 (centered), else v~ = v
///   b = momentum b + g / (sqrt(v~) + epsilon), w = w - learning_rate * b (momentum > 0)
///   w = w - learning_rate * g / (sqrt(v~) + epsilon) (otherwise)
/// Its slots: "square_avg" (v), "momentum_buffer" (b, with momentum) and
/// "grad_avg" (a, centered).
class RMSprop final : public optimizer_rule<RMSprop> {
public:
    /// RMSprop at this rate.
    RMSprop(double learning_rate = 0.01, source_location site = source_location::current());
    /// RMSprop with these options; a hyperparameter out of range is an argument_error.
    RMSprop(rmsprop_options options, source_location site = source_location::current());

    /// The hyperparameters.
    [[nodiscard]] const rmsprop_options& options() const noexcept { return options_; }

private:
    friend class optimizer_rule<RMSprop>;
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate);
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;

    rmsprop_options options_;
};

/// Adagrad's hyperparameters, torch.optim.Adagrad's names and defaults.
struct adagrad_options {
    learning_rate_schedule learning_rate = 0.01;  ///< A number or a schedule.
    double lr_decay = 0;                          ///< The rate divided by 1 + (t - 1) lr_decay.
    double weight_decay = 0;                      ///< L2 penalty, added to the gradient.
    double initial_accumulator_value = 0;         ///< Where the sum of squares starts.
    double epsilon = 1e-10;                       ///< Added to the denominator.
};

/// Adagrad with the update rule of torch.optim.Adagrad:
///   g = grad + weight_decay * w;  s = s + g^2 (s starts at initial_accumulator_value)
///   w = w - learning_rate / (1 + (t - 1) lr_decay) * g / (sqrt(s) + epsilon)
/// Its slots: "sum" (s) and "steps" (t).
class Adagrad final : public optimizer_rule<Adagrad> {
public:
    /// Adagrad at this rate.
    Adagrad(double learning_rate = 0.01, source_location site = source_location::current());
    /// Adagrad with these options; a hyperparameter out of range is an argument_error.
    Adagrad(adagrad_options options, source_location site = source_location::current());

    /// The hyperparameters.
    [[nodiscard]] const adagrad_options& options() const noexcept { return options_; }

private:
    friend class optimizer_rule<Adagrad>;
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, variable_state<T>& state, double learning_rate);
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;

    adagrad_options options_;
};

}  // namespace gradtape
