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
#include <source_location>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "tape.hpp"
#include "variable.hpp"

namespace gradtape {

template <dtype T>
class basic_layer;

namespace detail {
// Refuses (argument_error, naming it) a trainable variable the tape saw read
// that `variables`, those of `model`, do not hold: a layer never added.
template <dtype T>
void check_model_holds_all(const GradientTape& tape, const std::vector<basic_variable<T>>& variables,
                           const std::string& model, const std::source_location& site);

// Refuses a step of a model with nothing to train (no layers, or none with
// trainable variables), which would otherwise fail as a target no tape recorded.
template <dtype T>
void check_model_trains(const std::vector<basic_variable<T>>& variables, const std::string& model,
                        const std::source_location& site);

template <dtype T>
struct model_gradients {
    basic_tensor<T> loss;
    std::vector<basic_tensor<T>> gradients;
    std::vector<basic_variable<T>> variables;
};
// loss_fn's loss under a tape of its own, and its gradient for each
// trainable variable of `model` (which loss_fn's first call builds).
template <class LossFn, dtype T>
model_gradients<T> gradients_of_model(LossFn&& loss_fn, const basic_layer<T>& model, const std::source_location& site)
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

// The state an optimizer keeps for one variable, by slot name, in float64
// (which holds every float32 value and step count exactly).
using optimizer_slots = std::map<std::string, xt::xarray<double>>;

// A learning rate as a function of the number of updates already applied.
// A plain number converts to a constant schedule.
class learning_rate_schedule {
public:
    learning_rate_schedule(double constant);
    explicit learning_rate_schedule(std::function<double(std::uint64_t step)> rate);
    [[nodiscard]] double operator()(std::uint64_t step) const { return rate_(step); }

private:
    std::function<double(std::uint64_t)> rate_;
};

// initial * gamma^floor(step / step_size), as torch.optim.lr_scheduler.StepLR.
[[nodiscard]] learning_rate_schedule step_decay(double initial, std::uint64_t step_size, double gamma);
// initial * decay_rate^(step / decay_steps), as tf.keras.optimizers.schedules.ExponentialDecay.
[[nodiscard]] learning_rate_schedule exponential_decay(double initial, std::uint64_t decay_steps, double decay_rate);
// From initial down to alpha * initial over decay_steps along half a cosine, then
// flat, as tf.keras.optimizers.schedules.CosineDecay.
[[nodiscard]] learning_rate_schedule cosine_decay(double initial, std::uint64_t decay_steps, double alpha = 0);
// after(step) scaled linearly from 1/warmup_steps up to 1 over the first warmup_steps updates.
[[nodiscard]] learning_rate_schedule warmup(learning_rate_schedule after, std::uint64_t warmup_steps);

// Scales every gradient by clip_norm / max(global_norm, clip_norm), where
// global_norm is the L2 norm of all of them together, as tf.clip_by_global_norm.
// Returns the scaled gradients and the global norm before scaling.
template <dtype T>
[[nodiscard]] std::pair<std::vector<basic_tensor<T>>, basic_tensor<T>> clip_by_global_norm(
    const std::vector<basic_tensor<T>>& gradients, T clip_norm,
    std::source_location site = std::source_location::current());

// What every optimizer shares: the checks before an update, minimize, and
// the count of updates that schedules read.
class optimizer {
public:
    virtual ~optimizer() = default;

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
        apply_gradients(tape.gradient(loss, variables, {}, unconnected_gradients::none, site), variables, site);
        return loss;
    }

    // The same for the trainable variables of `model`, which loss_fn's first
    // call makes. A trainable variable the loss read that the model does not
    // hold (a layer never added to it) is an argument_error naming it, and
    // then nothing changes.
    template <class LossFn, dtype T>
    basic_tensor<T> minimize(LossFn&& loss_fn, const basic_layer<T>& model,
                             std::source_location site = std::source_location::current())
    {
        auto step = detail::gradients_of_model(loss_fn, model, site);
        apply_gradients(step.gradients, step.variables, site);
        return step.loss;
    }

    // How many times apply_gradients has updated the variables.
    [[nodiscard]] std::uint64_t iterations() const noexcept { return iterations_; }
    // Sets that count, as a checkpoint being resumed does; schedules follow it.
    void set_iterations(std::uint64_t iterations) noexcept { iterations_ = iterations; }

    // The state kept for `variable`, empty before its first update: SGD's
    // "momentum"; Adam's "m", "v", "v_max" (with amsgrad) and "steps".
    template <dtype T>
    [[nodiscard]] optimizer_slots slots(const basic_variable<T>& variable) const
    {
        return slots_of(variable.id());
    }
    // Replaces that state with what slots() gave (empty: none yet). A
    // missing slot, or one of another shape than the variable, is an
    // argument_error, and then nothing changes.
    template <dtype T>
    void set_slots(const basic_variable<T>& variable, const optimizer_slots& slots,
                   std::source_location site = std::source_location::current());
    // Throws as set_slots would, and changes nothing.
    template <dtype T>
    void check_slots(const basic_variable<T>& variable, const optimizer_slots& slots,
                     std::source_location site = std::source_location::current()) const;
    // Why set_slots would refuse `slots` for `variable`: a slot missing, of
    // another shape, or holding what no update can write there (a NaN, a
    // negative second moment, a step count that is not a count, a value the
    // variable's dtype cannot hold); nothing when it would take them.
    struct slot_problem {
        std::string slot;
        std::string why;
    };
    template <dtype T>
    [[nodiscard]] std::optional<slot_problem> slots_problem(const basic_variable<T>& variable,
                                                            const optimizer_slots& slots) const;
    // The learning rate the next update uses.
    [[nodiscard]] double learning_rate() const { return schedule_(iterations_); }

protected:
    optimizer(std::string_view name, learning_rate_schedule schedule);

    // One variable's update, after the checks; `state` is this optimizer's slot for the variable.
    virtual void update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, tensor_id variable,
                        double learning_rate) = 0;
    virtual void update(xt::xarray<double>& weights, const xt::xarray<double>& gradient, tensor_id variable,
                        double learning_rate) = 0;
    [[nodiscard]] virtual optimizer_slots slots_of(tensor_id variable) const = 0;
    // What an update can leave in a slot.
    enum class slot_values { finite, non_negative, update_count };
    struct slot_spec {
        std::string name;
        bool shaped;  // like the variable, or else a scalar
        slot_values values;
    };
    // The slots a variable's state has once it is updated.
    [[nodiscard]] virtual std::vector<slot_spec> slot_specs() const = 0;
    // After the checks of set_slots.
    virtual void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<float>) = 0;
    virtual void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<double>) = 0;

private:
    std::string_view name_;
    learning_rate_schedule schedule_;
    std::uint64_t iterations_ = 0;
};

struct sgd_options {
    learning_rate_schedule learning_rate = 0.01;
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
class SGD final : public optimizer {
public:
    SGD(double learning_rate, std::source_location site = std::source_location::current());
    SGD(sgd_options options, std::source_location site = std::source_location::current());

    [[nodiscard]] const sgd_options& options() const noexcept { return options_; }

private:
    void update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, tensor_id variable,
                double learning_rate) override;
    void update(xt::xarray<double>& weights, const xt::xarray<double>& gradient, tensor_id variable,
                double learning_rate) override;
    [[nodiscard]] optimizer_slots slots_of(tensor_id variable) const override;
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;
    void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<float>) override;
    void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<double>) override;
    template <dtype T>
    void restore_as(tensor_id variable, const optimizer_slots& slots);
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, tensor_id variable, double learning_rate);

    sgd_options options_;
    // In the variable's own dtype, as torch keeps them.
    std::unordered_map<tensor_id, std::variant<xt::xarray<float>, xt::xarray<double>>> momentum_buffers_;
};

struct adam_options {
    learning_rate_schedule learning_rate = 0.001;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double epsilon = 1e-8;
    double weight_decay = 0;
    bool amsgrad = false;
};

// Adam with the update rule of torch.optim.Adam (weight_decay adds
// weight_decay * w to the gradient); AdamW decays the weights directly, as
// torch.optim.AdamW: w = w * (1 - learning_rate * weight_decay) before the step.
//   m = beta1 m + (1 - beta1) g,  v = beta2 v + (1 - beta2) g^2  (amsgrad: v_max = max(v_max, v))
//   w = w - learning_rate / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + epsilon)
class Adam : public optimizer {
public:
    Adam(double learning_rate = 0.001, std::source_location site = std::source_location::current());
    Adam(adam_options options, std::source_location site = std::source_location::current());

    [[nodiscard]] const adam_options& options() const noexcept { return options_; }

protected:
    Adam(std::string_view name, adam_options options, bool decoupled_weight_decay, std::source_location site);

private:
    template <dtype T>
    struct moments {
        std::uint64_t steps = 0;
        xt::xarray<T> mean;
        xt::xarray<T> variance;
        xt::xarray<T> max_variance;
    };
    void update(xt::xarray<float>& weights, const xt::xarray<float>& gradient, tensor_id variable,
                double learning_rate) override;
    void update(xt::xarray<double>& weights, const xt::xarray<double>& gradient, tensor_id variable,
                double learning_rate) override;
    [[nodiscard]] optimizer_slots slots_of(tensor_id variable) const override;
    [[nodiscard]] std::vector<slot_spec> slot_specs() const override;
    void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<float>) override;
    void restore(tensor_id variable, const optimizer_slots& slots, std::type_identity<double>) override;
    template <dtype T>
    void restore_as(tensor_id variable, const optimizer_slots& slots);
    template <dtype T>
    void step(xt::xarray<T>& weights, const xt::xarray<T>& gradient, tensor_id variable, double learning_rate);

    adam_options options_;
    bool decoupled_weight_decay_;
    std::unordered_map<tensor_id, std::variant<moments<float>, moments<double>>> moments_;
};

class AdamW final : public Adam {
public:
    // torch.optim.AdamW's default weight_decay is 0.01.
    AdamW(adam_options options = {.weight_decay = 0.01}, std::source_location site = std::source_location::current());
};

}  // namespace gradtape
