// custom_gradient: an op made of a caller's forward and backward functions;
// and recompute_grad, one whose backward runs the forward again.
#include <gradtape/random.hpp>
#include <gradtape/tape.hpp>

#include "core/dtypes.hpp"
#include "core/forward_core.hpp"
#include "layers/layer_node.hpp"
#include "ops/op.hpp"

namespace gradtape {

namespace {

// Its value comes from the caller's forward, so it is recorded, not applied.
template <dtype T>
struct custom_op {
    using value_type = T;
    static constexpr std::string_view name = "custom_gradient";
    static constexpr detail::saved saves = detail::saved::inputs_and_output;
    custom_backward<T> backward_function;
    custom_jvp<T> jvp_function;
    source_location site;

    std::vector<basic_tensor<T>> backward(const detail::backward_args<T, std::dynamic_extent>& args) const
    {
        const std::vector<basic_tensor<T>> inputs(args.inputs.begin(), args.inputs.end());
        std::vector<basic_tensor<T>> gradients = backward_function(args.grad, inputs, args.output);
        if (gradients.size() != inputs.size()) {
            detail::fail<argument_error>(name, site,
                                         "the backward function returned " + std::to_string(gradients.size()) +
                                             " gradients for " + std::to_string(inputs.size()) + " inputs");
        }
        return gradients;
    }

    basic_tensor<T> jvp(const detail::jvp_args<T, std::dynamic_extent>& args) const
    {
        if (!jvp_function) {
            return detail::transposed_tangent(*this, args);
        }
        basic_tensor<T> tangent =
            jvp_function(std::vector<basic_tensor<T>>(args.inputs.begin(), args.inputs.end()),
                         std::vector<basic_tensor<T>>(args.tangents.begin(), args.tangents.end()), args.output);
        if (tangent.defined() && tangent.shape() != args.output.shape()) {
            detail::fail<shape_error>(name, site,
                                      "the jvp function returned a tangent of shape " +
                                          detail::format_shape(tangent.shape()) + " for a result of shape " +
                                          detail::format_shape(args.output.shape()));
        }
        return tangent;
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>& inputs,
                                 const std::type_identity_t<custom_forward<T>>& forward,
                                 const std::type_identity_t<custom_backward<T>>& backward,
                                 const std::type_identity_t<custom_jvp<T>>& jvp, source_location site)
{
    basic_tensor<T> result;
    {
        // The caller's backward replaces the gradient of whatever forward does.
        const auto pause = stop_recording();
        result = forward(inputs);
    }
    if (!result.defined()) {
        detail::fail<argument_error>("custom_gradient", site, "the forward function returned an undefined tensor");
    }
    // A forward that returns an input (an identity with a custom gradient)
    // must still give the tape a new tensor, or the entry would feed itself.
    for (const auto& input : inputs) {
        if (input.id() == result.id()) {
            result = basic_tensor<T>(xt::xarray<T>(result.value()));
            break;
        }
    }
    return detail::record_list(custom_op<T>{backward, jvp, site}, site, std::move(result), inputs);
}

namespace {

// f's entry: its input first, then the reads of the variables f read. The
// backward pass reruns f on them, from the random state and in the training
// mode of the first run, under a tape of its own.
template <dtype T>
struct recompute_op {
    using value_type = T;
    static constexpr std::string_view name = "recompute_grad";
    static constexpr detail::saved saves = detail::saved::inputs;
    tensor_function<T> f;
    std::vector<std::uint64_t> random_state_before;
    bool training;
    source_location site;

    std::vector<basic_tensor<T>> backward(const detail::backward_args<T, std::dynamic_extent>& args) const
    {
        const std::vector<basic_tensor<T>> inputs(args.inputs.begin(), args.inputs.end());
        const std::vector<std::uint64_t> random_state_after = random_state();
        struct restore_random_state {
            const std::vector<std::uint64_t>& state;
            ~restore_random_state() { set_random_state(state); }
        } restore{random_state_after};
        set_random_state(random_state_before);
        GradientTape tape({.persistent = false, .watch_accessed_variables = false});
        for (const auto& input : inputs) {
            tape.watch(input);
        }
        const detail::layer_call_scope mode(training);
        const basic_tensor<T> again = f(inputs.front());
        return tape.gradient(again, inputs, args.grad, unconnected_gradients::none, site);
    }
};

template <dtype T>
basic_tensor<T> run_recomputed(const tensor_function<T>& f, const basic_tensor<T>& x, const source_location& site)
{
    constexpr std::string_view op = "recompute_grad";
    if (!x.defined()) {
        detail::fail<argument_error>(op, site, "the input is undefined");
    }
    recompute_op<T> entry{f, random_state(), detail::decide_training(std::nullopt), site};
    std::vector<detail::any_tensor> reads;
    basic_tensor<T> result;
    {
        const detail::variable_search search(reads);
        const detail::layer_call_scope mode(entry.training);
        const auto pause = stop_recording();
        result = f(x);
    }
    if (!result.defined()) {
        detail::fail<argument_error>(op, site, "the function returned an undefined tensor");
    }
    std::vector<basic_tensor<T>> inputs{x};
    for (const auto& read : reads) {
        if (const auto* variable = std::get_if<basic_tensor<T>>(&read); variable && variable->id() != x.id()) {
            inputs.push_back(*variable);
        }
    }
    // As in custom_gradient: an f that returns its input needs a new tensor.
    if (result.id() == x.id()) {
        result = basic_tensor<T>(xt::xarray<T>(result.value()));
    }
    return detail::record_list(entry, site, std::move(result), inputs);
}

}  // namespace

template <dtype T>
tensor_function<T> recompute_grad(tensor_function<T> f, source_location site)
{
    if (!f) {
        detail::fail<argument_error>("recompute_grad", site, "the function is empty");
    }
    return [f = std::move(f), site](const basic_tensor<T>& x) { return run_recomputed(f, x, site); };
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>&, const custom_forward<T>&,          \
                                             const custom_backward<T>&, const custom_jvp<T>&, source_location); \
    template tensor_function<T> recompute_grad(tensor_function<T>, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
