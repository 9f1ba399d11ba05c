// What every op file shares: turning a computed value, its inputs and a
// backward rule into a recorded op, and the helpers backward rules reuse.
#pragma once

#include <array>
#include <concepts>
#include <source_location>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include <xtensor/xnoalias.hpp>
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

// Note [The op contract]
// An op is a struct whose data members are its attributes (an exponent, the
// axes of a reduction) and which provides, for N inputs of dtype T:
//
//   using value_type = T;
//   static constexpr std::string_view name;
//   static constexpr saved saves;   which of its inputs and output backward reads
//   shape_type shape(const std::source_location& site, const shape_type&... inputs) const;
//       validates the inputs and gives the output's shape, throwing the error
//       that names the op, the shapes and the site;
//   void forward(xt::xarray<T>& out, const xt::xarray<T>&... inputs) const;
//       writes the value into `out`, already of that shape;
//   std::array<basic_tensor<T>, N> backward(const backward_args<T, N>& args) const;
//       the gradient of each input that args.needed asks for (undefined
//       otherwise), written with gradtape ops so that an outer tape records
//       it. A gradient may keep the dimensions broadcasting added: the core
//       sums them away and checks the result against the input (tape.cpp).
//
// apply() runs them in that order. The parts are separate so that later
// modes can call them apart: forward-mode differentiation adds a member
//   basic_tensor<T> jvp(const jvp_args<T, N>&) const
// (the output's tangent from the inputs' tangents, in the same ops), and a
// captured step replays shape() and forward() on buffers allocated once, with
// the op object itself as the record of what to run.
enum class saved : unsigned { nothing = 0, inputs = 1, output = 2, inputs_and_output = 3 };

constexpr bool saves_inputs(saved s)
{
    return (unsigned(s) & unsigned(saved::inputs)) != 0;
}
constexpr bool saves_output(saved s)
{
    return (unsigned(s) & unsigned(saved::output)) != 0;
}

// What a backward rule reads: the output's gradient, the inputs and the
// output (each undefined unless the op saves it), and which inputs need a
// gradient.
template <dtype T, std::size_t N>
struct backward_args {
    const basic_tensor<T>& grad;
    const std::array<basic_tensor<T>, N>& inputs;
    const basic_tensor<T>& output;
    input_mask needed;
};

// A recorded op: the op object (its attributes) and the tensors its backward
// reads, made only once some tape records the op.
template <class Op, dtype T, std::size_t N>
struct saved_op {
    Op op;
    std::array<basic_tensor<T>, N> inputs;
    basic_tensor<T> output;

    void operator()(const any_tensor& output_gradient, input_mask needed, std::span<any_tensor> input_gradients) const
    {
        auto gradients = op.backward(backward_args<T, N>{std::get<basic_tensor<T>>(output_gradient), inputs, output, needed});
        for (std::size_t i = 0; i < N; ++i) {
            store_gradient(input_gradients[i], std::move(gradients[i]));
        }
    }
};

// Runs `op` on `inputs` eagerly (Note [The op contract]) and records it on
// every tape of this thread that watches one of them.
template <class Op, std::derived_from<basic_tensor<typename Op::value_type>>... Inputs>
basic_tensor<typename Op::value_type> apply(const Op& op, const std::source_location& site, const Inputs&... inputs)
{
    using T = typename Op::value_type;
    constexpr std::size_t n = sizeof...(Inputs);
    const shape_type shape = op.shape(site, inputs.shape()...);
    check_allocatable(Op::name, site, shape, sizeof(T));
    auto value = xt::xarray<T>::from_shape(shape);
    op.forward(value, inputs.value()...);
    basic_tensor<T> result(std::move(value));
    result.node()->origin = site;

    const std::array<tape_input, n> tape_inputs{tape_input_of(inputs)...};
    recorder recording(tape_inputs);
    if (debugging_on()) {
        inspect_forward(Op::name, site, tape_inputs, result, bool(recording));
    }
    if (recording) {
        saved_op<Op, T, n> entry{op, {}, {}};
        if constexpr (saves_inputs(Op::saves)) {
            entry.inputs = {basic_tensor<T>(inputs)...};
        }
        if constexpr (saves_output(Op::saves)) {
            entry.output = result;
        }
        recording.record(Op::name, site, tape_inputs, tape_input_of(result), std::move(entry));
    }
    return result;
}

// The shape rule of an elementwise op of two operands: NumPy broadcasting.
// (apply() checks the byte count of the result.)
template <class Op>
struct broadcasting {
    shape_type shape(const std::source_location& site, const shape_type& a, const shape_type& b) const
    {
        return broadcast_shape(Op::name, site, a, b, 1);
    }
};

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

// Axes in [0, rank), in the given order, from axes that may count from the
// end; refuses out-of-range and repeated axes.
xt::svector<std::size_t, 4> normalize_axes(std::string_view op, const std::source_location& site,
                                           const axes_type& axes, std::size_t rank);

// A shape as reshape() takes it.
std::vector<std::ptrdiff_t> signed_shape(const shape_type& shape);

}  // namespace gradtape::detail
