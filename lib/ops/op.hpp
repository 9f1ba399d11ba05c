// What every op file shares: turning a computed value, its inputs and a
// backward rule into a recorded op, and the helpers backward rules reuse.
#pragma once

#include <array>
#include <source_location>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include <xtensor/xtensor.hpp>

#include <gradtape/ops.hpp>

#include "../debug_hooks.hpp"
#include "../diagnostics.hpp"
#include "../dtypes.hpp"
#include "../tape_core.hpp"

namespace gradtape::detail {

template <class Gradient>
void store_gradient(any_tensor& slot, Gradient&& gradient)
{
    if (gradient.defined()) {
        slot = std::forward<Gradient>(gradient);
    }
}

// Returns `result` after recording it, on every tape of this thread that
// watches one of `inputs`, as the output of `op`. The backward rule takes the
// output's gradient, and optionally the input_mask of the inputs that need
// one; it returns the inputs' gradients: one tensor, or a std::array with one
// per input (an undefined tensor where none is needed). It is built only from
// gradtape ops, so that a tape outside the one computing a gradient records it.
template <dtype T, class Backward, class... Inputs>
basic_tensor<T> record_op(std::string_view op, const std::source_location& site, basic_tensor<T> result,
                          Backward&& backward, const Inputs&... inputs)
{
    result.node()->origin = site;
    const std::array<tape_input, sizeof...(Inputs)> tape_inputs{tape_input_of(inputs)...};
    recorder recording(tape_inputs);
    if (debugging_on()) {
        inspect_forward(op, site, tape_inputs, result, bool(recording));
    }
    if (!recording) {
        return result;
    }
    recording.record(
        op, site, tape_inputs, tape_input_of(result),
        [rule = std::forward<Backward>(backward)](const any_tensor& output_gradient, input_mask needed,
                                                 std::span<any_tensor> input_gradients) {
            const auto& grad = std::get<basic_tensor<T>>(output_gradient);
            auto gradients = [&] {
                if constexpr (std::is_invocable_v<const std::decay_t<Backward>&, const basic_tensor<T>&, input_mask>) {
                    return rule(grad, needed);
                } else {
                    return rule(grad);
                }
            }();
            if constexpr (requires { gradients.defined(); }) {
                store_gradient(input_gradients[0], std::move(gradients));
            } else {
                for (std::size_t i = 0; i < gradients.size(); ++i) {
                    store_gradient(input_gradients[i], std::move(gradients[i]));
                }
            }
        });
    return result;
}

// record_op for an op of any number of inputs of one dtype (concat): the
// backward rule returns a std::vector with one gradient per input.
template <dtype T, class Backward>
basic_tensor<T> record_op_of_list(std::string_view op, const std::source_location& site, basic_tensor<T> result,
                                  Backward&& backward, const std::vector<basic_tensor<T>>& inputs)
{
    result.node()->origin = site;
    std::vector<tape_input> tape_inputs;
    tape_inputs.reserve(inputs.size());
    for (const auto& input : inputs) {
        tape_inputs.push_back(tape_input_of(input));
    }
    recorder recording(tape_inputs);
    if (debugging_on()) {
        inspect_forward(op, site, tape_inputs, result, bool(recording));
    }
    if (!recording) {
        return result;
    }
    recording.record(op, site, tape_inputs, tape_input_of(result),
                     [rule = std::forward<Backward>(backward)](const any_tensor& output_gradient, input_mask needed,
                                                              std::span<any_tensor> input_gradients) {
                         auto gradients = rule(std::get<basic_tensor<T>>(output_gradient), needed);
                         for (std::size_t i = 0; i < gradients.size(); ++i) {
                             store_gradient(input_gradients[i], std::move(gradients[i]));
                         }
                     });
    return result;
}

// The gradient of a broadcast operand: `gradient` summed over the dimensions
// broadcasting added or stretched, so that it has `shape` again.
template <dtype T>
basic_tensor<T> sum_to_shape(const basic_tensor<T>& gradient, const shape_type& shape);

// Axes in [0, rank), in the given order, from axes that may count from the
// end; refuses out-of-range and repeated axes.
xt::svector<std::size_t, 4> normalize_axes(std::string_view op, const std::source_location& site,
                                           const axes_type& axes, std::size_t rank);

// A shape as reshape() takes it.
std::vector<std::ptrdiff_t> signed_shape(const shape_type& shape);

}  // namespace gradtape::detail
