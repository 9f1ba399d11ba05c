// What every op file shares: the op contract (Note [The op contract]), which
// runs an op and records it, and the helpers backward rules reuse.
#pragma once

#include <algorithm>
#include <array>
#include <concepts>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <gradtape/ops.hpp>
#include <gradtape/source_location.hpp>
#include <gradtape/tape.hpp>

#include "debug/debug_hooks.hpp"
#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/forward_core.hpp"
#include "core/tape_core.hpp"

#include <xtensor/xnoalias.hpp>
#include <xtensor/xtensor.hpp>

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
// axes of a reduction) and which provides, for N inputs:
//
//   using value_type = T;               the output's dtype (and the inputs',
//   using input_type = U;               unless it says otherwise, as cast does)
//   static constexpr std::string_view name;
//   static constexpr saved saves;       which of inputs and output backward reads
//   shape_type shape(const source_location& site, const shape_type&... inputs) const;
//       validates the inputs and gives the output's shape, throwing the error
//       that names the op, the shapes and the site; or gives a plan for the
//       kernel, which holds that shape (output_shape()), so that the kernel
//       does not work out again what the rule did (a convolution's geometry);
//   void forward(xt::xarray<T>& out, const xt::xarray<U>&... inputs) const;
//   void forward(const Plan& plan, xt::xarray<T>& out, const xt::xarray<U>&... inputs) const;
//       writes the value into `out`, already of that shape: one call of a
//       kernel (lib/kernels/) where the op has one;
//   static constexpr bool selects = true;    only for an op whose elements
//       each come from one element of its input (max_pool2d, top_k): its
//       forward then also writes, for each output element, the flat index of
//       the input element it took (its routes), and its backward reads them as
//       args.routes;
//   static constexpr bool recorded = false;  only for an op no gradient
//       flows through (a mask, stop_gradient, dropout's draws), which then
//       has no backward: no tape records it, but a capture replays it;
//   std::array<basic_tensor<U>, N> backward(const backward_args<T, N, U>& args) const;
//       the gradient of each input that args.needed asks for (undefined
//       otherwise), written with gradtape ops so that an outer tape records
//       it. A gradient may keep the dimensions broadcasting added: the core
//       sums them away and checks the result against the input (tape.cpp).
//   and its tangent rule (Note [Tangent rules]): a family, or a jvp member.
//
// apply() runs them in that order, then record(), and while a capture
// records (capture.hpp) adds the kernel as a replay step. An op of a list of
// inputs (concat) takes spans and returns a vector, through apply_list(); an
// op whose value comes from elsewhere (custom_gradient) calls record_list()
// itself. Everything a backward rule reads is an attribute, a saved tensor or
// the routes: nothing is kept in the op object by its forward. A kernel reads
// only its inputs and attributes, and a replay runs it on new inputs with
// the attributes it had: an attribute holds no value of the data, but for
// integer indices shared through share_indices (core/capture_core.hpp).
enum class saved : unsigned { nothing = 0, inputs = 1, output = 2, inputs_and_output = 3 };

constexpr bool saves_inputs(saved s)
{
    return (unsigned(s) & unsigned(saved::inputs)) != 0;
}
constexpr bool saves_output(saved s)
{
    return (unsigned(s) & unsigned(saved::output)) != 0;
}

template <class Op>
struct input_dtype {
    using type = typename Op::value_type;
};
template <class Op>
    requires requires { typename Op::input_type; }
struct input_dtype<Op> {
    using type = typename Op::input_type;
};
template <class Op>
using input_dtype_t = typename input_dtype<Op>::type;

// The routes of a selecting op (Note [The op contract]), shared by its
// record and the pick and place ops of its gradients (ops/routes.hpp).
using routes_type = std::shared_ptr<const xt::xarray<std::int64_t>>;

template <class Op>
concept selecting = requires { requires Op::selects; };

// An op no gradient flows through (a comparison's mask, stop_gradient):
// `static constexpr bool recorded = false;` and no backward. It runs
// through apply() all the same, so that a capture replays it.
template <class Op>
concept unrecorded = requires { requires !Op::recorded; };

// What a backward rule reads: the output's gradient, the inputs and the
// output (each undefined unless the op saves it), the inputs' shapes, which
// inputs need a gradient, and a selecting op's routes. N is
// std::dynamic_extent for a list op.
template <dtype T, std::size_t N, dtype U = T>
struct backward_args {
    const basic_tensor<T>& grad;
    std::span<const basic_tensor<U>, N> inputs;
    std::span<const tensor_description> described;
    const basic_tensor<T>& output;
    input_mask needed;
    const routes_type& routes;

    [[nodiscard]] const shape_type& input_shape(std::size_t i) const { return described[i].shape; }
    [[nodiscard]] std::size_t input_count() const { return described.size(); }
};

template <class Element, std::size_t N>
using fixed_or_list = std::conditional_t<N == std::dynamic_extent, std::vector<Element>, std::array<Element, N>>;

// A recorded op: the op object (its attributes) and the tensors its backward
// reads, made only once some tape records the op.
template <class Op, std::size_t N>
struct saved_op {
    using T = typename Op::value_type;
    using U = input_dtype_t<Op>;
    Op op;
    fixed_or_list<basic_tensor<U>, N> inputs;
    basic_tensor<T> output;
    routes_type routes;

    void operator()(const any_tensor& output_gradient, input_mask needed,
                    std::span<const tensor_description> described, std::span<any_tensor> input_gradients) const
    {
        auto gradients = op.backward(backward_args<T, N, U>{std::get<basic_tensor<T>>(output_gradient),
                                                            std::span<const basic_tensor<U>, N>(inputs), described,
                                                            output, needed, routes});
        for (std::size_t i = 0; i < std::min(gradients.size(), input_gradients.size()); ++i) {
            store_gradient(input_gradients[i], std::move(gradients[i]));
        }
    }

    void held_arrays(std::vector<std::pair<const void*, std::size_t>>& arrays) const
    {
        const auto add = [&](const auto& tensor) {
            if (tensor.defined()) {
                arrays.emplace_back(tensor_access::value(tensor).data(),
                                    tensor.size() * sizeof(typename std::decay_t<decltype(tensor)>::value_type));
            }
        };
        for (const auto& input : inputs) {
            add(input);
        }
        add(output);
        if (routes) {
            arrays.emplace_back(routes->data(), routes->size() * sizeof(std::int64_t));
        }
    }
};

// Shows the op to this thread's forward observers (defined below, after
// apply()). Out of line and cold: an op that no observer sees should not
// carry its code in the instruction cache.
template <class Op, std::size_t N>
[[gnu::noinline, gnu::cold]] void observe_forward(const Op& op, const source_location& site,
                     std::span<const basic_tensor<input_dtype_t<Op>>, N> inputs,
                     const basic_tensor<typename Op::value_type>& result, const routes_type& routes);

// Records `result`, the output of `op` on `inputs`, on every tape of this
// thread that watches one of them; what backward reads is kept only then.
// Forward observers see the op afterwards, so that a tape records a
// tangent's ops after the op whose output they read.
template <class Op, std::size_t N>
basic_tensor<typename Op::value_type> record(const Op& op, const source_location& site,
                                             basic_tensor<typename Op::value_type> result,
                                             std::array<basic_tensor<input_dtype_t<Op>>, N>&& inputs,
                                             routes_type routes = nullptr)
{
    const bool observed = forward_observers.load(std::memory_order_relaxed) != 0;
    tensor_access::node(result)->origin = site;
    std::array<tape_input, N> tape_inputs;
    for (std::size_t i = 0; i < N; ++i) {
        tape_inputs[i] = tape_input_of(inputs[i]);
    }
    if constexpr (unrecorded<Op>) {
        if (debugging_on()) {
            inspect_forward(Op::name, site, tape_inputs, result, run_by::no_tape);
        }
    } else {
        recorder recording(tape_inputs);
        if (debugging_on()) {
            inspect_forward(Op::name, site, tape_inputs, result, recording ? run_by::tape : run_by::no_tape);
        }
        if (recording) {
            saved_op<Op, N> entry{op, {}, {}, observed ? routes : std::move(routes)};
            if constexpr (saves_inputs(Op::saves)) {
                if (observed) [[unlikely]] {
                    entry.inputs = inputs;
                } else {
                    entry.inputs = std::move(inputs);
                }
            }
            if constexpr (saves_output(Op::saves)) {
                entry.output = result;
            }
            recording.record(Op::name, site, tape_inputs, tape_input_of(result), std::move(entry));
        }
    }
    if (observed) [[unlikely]] {
        observe_forward<Op, N>(op, site, inputs, result, routes);
    }
    return result;
}

// The output's shape from a shape rule's result: the shape, or a plan's.
inline const shape_type& output_shape_of(const shape_type& shape)
{
    return shape;
}
template <class Plan>
shape_type output_shape_of(const Plan& plan)
{
    return plan.output_shape();
}

// An op's kernel as a replay step: the op object (its attributes), the plan
// its shape rule gave, and the slots of its inputs and output (Note [Reads
// while capturing]).
struct no_plan {};

template <class Op, class Plan, std::size_t N>
struct op_step final : replay_step {
    using T = typename Op::value_type;
    using U = input_dtype_t<Op>;
    Op op;
    Plan plan;
    std::array<slot_index, N> inputs;
    slot_index output;
    std::shared_ptr<xt::xarray<std::int64_t>> routes;

    op_step(const Op& o, Plan p) : op(o), plan(std::move(p)) {}

    void inspect(std::span<replay_slot> slots) const override
    {
        std::array<tape_input, N> described;
        for (std::size_t i = 0; i < N; ++i) {
            const auto& node = *static_cast<const tensor_node<U>*>(slots[inputs[i]].get());
            described[i] = {node.id, node.variable.get(), &node.value.shape(), dtype_name<U>()};
        }
        inspect_forward(name, site, described,
                        tensor_access::adopt(std::static_pointer_cast<tensor_node<T>>(slots[output])), run_by::replay);
    }

    void run(std::span<replay_slot> slots) override
    {
        xt::xarray<T>& out = slot_value<T>(slots[output]);
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            const auto forward = [&](const auto&... planned) {
                if constexpr (selecting<Op>) {
                    op.forward(planned..., out, *routes, slot_value<U>(slots[inputs[I]])...);
                } else {
                    op.forward(planned..., out, slot_value<U>(slots[inputs[I]])...);
                }
            };
            if constexpr (std::is_same_v<Plan, no_plan>) {
                forward();
            } else {
                forward(plan);
            }
        }(std::make_index_sequence<N>{});
    }
};

template <class Op, class Plan, std::size_t N>
void capture_op(capture_session& session, const Op& op, const source_location& site, Plan plan,
                const std::array<basic_tensor<input_dtype_t<Op>>, N>& inputs, const std::array<bool, N>& of_variables,
                const basic_tensor<typename Op::value_type>& result, std::shared_ptr<xt::xarray<std::int64_t>> routes)
{
    auto step = std::make_unique<op_step<Op, Plan, N>>(op, std::move(plan));
    step->name = Op::name;
    for (std::size_t i = 0; i < N; ++i) {
        step->inputs[i] = input_slot(session, tensor_access::node(inputs[i]), Op::name, site, of_variables[i]);
        step->reads.push_back(step->inputs[i]);
    }
    step->output = output_slot(session, tensor_access::node(result));
    step->writes.push_back(step->output);
    step->routes = std::move(routes);
    step->site = site;
    add_step(session, std::move(step));
}

// Runs `op` on `inputs` eagerly (Note [The op contract]) and records it,
// giving the value and, for a selecting op, its routes. The inputs are read
// first: a variable's value is then held by the op, and a write to the
// variable elsewhere cannot free it under the kernel.
template <class Op, std::derived_from<basic_tensor<input_dtype_t<Op>>>... Inputs>
std::pair<basic_tensor<typename Op::value_type>, routes_type> apply_routed(const Op& op,
                                                                           const source_location& site,
                                                                           const Inputs&... inputs)
{
    using T = typename Op::value_type;
    std::array<basic_tensor<input_dtype_t<Op>>, sizeof...(Inputs)> read{basic_tensor<input_dtype_t<Op>>(inputs)...};
    const auto planned = std::apply([&](const auto&... in) { return op.shape(site, in.shape()...); }, read);
    constexpr bool has_plan = !std::is_same_v<std::decay_t<decltype(planned)>, shape_type>;
    const shape_type& shape = output_shape_of(planned);
    check_allocatable(Op::name, site, shape, sizeof(T));
    try {
        auto node = make_node_of_shape<T>(shape);
        xt::xarray<T>& value = node->value;
        std::shared_ptr<xt::xarray<std::int64_t>> routes;
        if constexpr (selecting<Op>) {
            routes = make_bookkept<xt::xarray<std::int64_t>>(xt::xarray<std::int64_t>::from_shape(shape));
        }
        std::apply(
            [&](const auto&... in) {
                const auto run = [&](auto&&... plan) {
                    if constexpr (selecting<Op>) {
                        op.forward(plan..., value, *routes, tensor_access::value(in)...);
                    } else {
                        op.forward(plan..., value, tensor_access::value(in)...);
                    }
                };
                if constexpr (has_plan) {
                    run(planned);
                } else {
                    run();
                }
            },
            read);
        if (capture_session* session = active_capture()) [[unlikely]] {
            basic_tensor<T> result = record(op, site, tensor_access::adopt(std::move(node)), std::array(read), routes);
            const std::array<bool, sizeof...(Inputs)> of_variables{tensor_access::node(inputs)->is_variable_storage...};
            if constexpr (has_plan) {
                capture_op(*session, op, site, planned, read, of_variables, result, routes);
            } else {
                capture_op(*session, op, site, no_plan{}, read, of_variables, result, routes);
            }
            return {std::move(result), std::move(routes)};
        }
        basic_tensor<T> result = record(op, site, tensor_access::adopt(std::move(node)), std::move(read), routes);
        return {std::move(result), std::move(routes)};
    } catch (const std::bad_alloc&) {
        fail_out_of_memory(Op::name, site, shape, dtype_name<T>(), sizeof(T));
    }
}

template <class Op, std::derived_from<basic_tensor<input_dtype_t<Op>>>... Inputs>
basic_tensor<typename Op::value_type> apply(const Op& op, const source_location& site, const Inputs&... inputs)
{
    return apply_routed(op, site, inputs...).first;
}

// record() for an op of a list of inputs.
template <class Op>
basic_tensor<typename Op::value_type> record_list(const Op& op, const source_location& site,
                                                  basic_tensor<typename Op::value_type> result,
                                                  const std::vector<basic_tensor<input_dtype_t<Op>>>& inputs)
{
    tensor_access::node(result)->origin = site;
    std::vector<tape_input> tape_inputs;
    tape_inputs.reserve(inputs.size());
    for (const auto& input : inputs) {
        tape_inputs.push_back(tape_input_of(input));
    }
    recorder recording(tape_inputs);
    if (debugging_on()) {
        inspect_forward(Op::name, site, tape_inputs, result, recording ? run_by::tape : run_by::no_tape);
    }
    if (recording) {
        saved_op<Op, std::dynamic_extent> entry{op, {}, {}, nullptr};
        if constexpr (saves_inputs(Op::saves)) {
            entry.inputs = inputs;
        }
        if constexpr (saves_output(Op::saves)) {
            entry.output = result;
        }
        recording.record(Op::name, site, tape_inputs, tape_input_of(result), std::move(entry));
    }
    if (forward_observers.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        observe_forward<Op, std::dynamic_extent>(op, site, inputs, result, nullptr);
    }
    return result;
}

// op_step for an op of a list of inputs.
template <class Op>
struct list_op_step final : replay_step {
    using T = typename Op::value_type;
    using U = input_dtype_t<Op>;
    Op op;
    std::vector<slot_index> inputs;
    slot_index output = 0;
    // Filled at each run; sized once, at capture.
    std::vector<const xt::xarray<U>*> values;

    explicit list_op_step(const Op& o) : op(o) {}

    void inspect(std::span<replay_slot> slots) const override
    {
        std::vector<tape_input> described;
        for (slot_index input : inputs) {
            const auto& node = *static_cast<const tensor_node<U>*>(slots[input].get());
            described.push_back({node.id, node.variable.get(), &node.value.shape(), dtype_name<U>()});
        }
        inspect_forward(name, site, described,
                        tensor_access::adopt(std::static_pointer_cast<tensor_node<T>>(slots[output])), run_by::replay);
    }

    void run(std::span<replay_slot> slots) override
    {
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            values[i] = &slot_value<U>(slots[inputs[i]]);
        }
        op.forward(slot_value<T>(slots[output]), std::span<const xt::xarray<U>* const>(values));
    }
};

template <class Op>
void capture_list_op(capture_session& session, const Op& op, const source_location& site,
                     const std::vector<basic_tensor<input_dtype_t<Op>>>& inputs,
                     const basic_tensor<typename Op::value_type>& result)
{
    auto step = std::make_unique<list_op_step<Op>>(op);
    step->name = Op::name;
    step->site = site;
    for (const auto& input : inputs) {
        step->inputs.push_back(input_slot(session, tensor_access::node(input), Op::name, site, false));
    }
    step->reads = step->inputs;
    step->values.resize(inputs.size());
    step->output = output_slot(session, tensor_access::node(result));
    step->writes.push_back(step->output);
    add_step(session, std::move(step));
}

// apply() for an op of a list of inputs: shape() takes a span of shapes,
// forward() a span of pointers to the values.
template <class Op>
basic_tensor<typename Op::value_type> apply_list(const Op& op, const source_location& site,
                                                 const std::vector<basic_tensor<input_dtype_t<Op>>>& inputs)
{
    using T = typename Op::value_type;
    std::vector<shape_type> shapes;
    std::vector<const xt::xarray<input_dtype_t<Op>>*> values;
    for (const auto& input : inputs) {
        shapes.push_back(input.shape());
        values.push_back(&tensor_access::value(input));
    }
    const shape_type shape = op.shape(site, std::span<const shape_type>(shapes));
    check_allocatable(Op::name, site, shape, sizeof(T));
    try {
        auto node = make_node_of_shape<T>(shape);
        op.forward(node->value, std::span<const xt::xarray<input_dtype_t<Op>>* const>(values));
        basic_tensor<T> result = record_list(op, site, tensor_access::adopt(std::move(node)), inputs);
        if (capture_session* session = active_capture()) [[unlikely]] {
            capture_list_op(*session, op, site, inputs, result);
        }
        return result;
    } catch (const std::bad_alloc&) {
        fail_out_of_memory(Op::name, site, shape, dtype_name<T>(), sizeof(T));
    }
}

// The shape rule of an elementwise op of two operands: NumPy broadcasting.
// (apply() checks the byte count of the result.)
template <class Op>
struct broadcasting {
    shape_type shape(const source_location& site, const shape_type& a, const shape_type& b) const
    {
        return broadcast_shape(Op::name, site, a, b, 1);
    }
};

// one_hot(labels, classes) for an op that takes class indices, refusing
// (argument_error naming `op`) a label outside [0, classes) each time the
// kernel runs (ops/shape.cpp).
template <dtype T>
basic_tensor<T> class_indicators(const xt::xarray<std::int64_t>& labels, std::size_t classes, std::string_view op,
                                 const source_location& site);

// embedding_lookup(params, ids) with the ids as whole numbers in a tensor of
// params' dtype (ops/nn.cpp): an id that is not one is an argument_error
// naming `caller`; the ids are checked each time the kernel runs.
template <dtype T>
basic_tensor<T> embedding_of_numbers(const basic_tensor<T>& params, const basic_tensor<T>& ids,
                                     std::string_view caller, const source_location& site);

// One axis in [0, rank), from one that may count from the end; refuses one
// out of range.
std::size_t normalize_axis(std::string_view op, const source_location& site, std::ptrdiff_t axis,
                           std::size_t rank);

// Axes in [0, rank), in the given order, from axes that may count from the
// end; refuses out-of-range and repeated axes.
xt::svector<std::size_t, 4> normalize_axes(std::string_view op, const source_location& site,
                                           const axes_type& axes, std::size_t rank);

// A shape seen as (outer, length, inner) around one axis, for row-major loops.
struct around_axis {
    std::size_t outer = 1;
    std::size_t length = 1;
    std::size_t inner = 1;
};

inline around_axis split_at(const shape_type& shape, std::size_t axis)
{
    around_axis parts;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        (i < axis ? parts.outer : i == axis ? parts.length : parts.inner) *= shape[i];
    }
    return parts;
}

// Note [Tangent rules]
// Forward mode asks each op for J v: its output's tangent from its inputs'
// tangents v (undefined where an input has none). Most ops give it by what
// they already are, declared as a family:
//   static constexpr tangent_family tangent = tangent_family::diagonal;
//       an elementwise op, whose Jacobian is diagonal once its inputs are
//       broadcast: its backward rule run on each input's broadcast tangent in
//       place of the gradient, summed over the inputs;
//   tangent_family::linear: the op itself on the tangents (zeros for an input
//       without one): reshape, transpose, the sums, slices, concat, cast;
//   tangent_family::multilinear: the op with each input in turn replaced by
//       its tangent, summed: matmul and the convolution products;
//   tangent_family::reduction: a reduction whose backward rule spreads the
//       gradient times a factor (max, prod, logsumexp, variance): the
//       tangent summed over the reduced axes, weighted by that factor.
// An op outside them has a jvp(const jvp_args<T, N, U>&) member, one line or
// a few (softmax, a selection along its routes, a fused recurrent step), or,
// failing that (a custom_gradient without its jvp, recompute_grad), gets the
// transposed backward rule: the rule run on a watched zero gradient u gives VJP(u), whose pairing
// with v is linear in u with gradient J v, as TensorFlow's ForwardAccumulator
// does without a JVP. That costs a backward rule and its reverse pass;
// GRADTAPE_TRACE says when it runs. Every rule is made of ops, so that a tape
// records it (reverse over forward) and an outer accumulator differentiates
// it (higher orders).
enum class tangent_family { diagonal, linear, multilinear, reduction };

template <dtype T, std::size_t N, dtype U = T>
struct jvp_args {
    std::span<const basic_tensor<U>, N> inputs;
    std::span<const basic_tensor<U>, N> tangents;
    const basic_tensor<T>& output;
    const routes_type& routes;

    [[nodiscard]] std::size_t input_count() const { return inputs.size(); }
    // Input i's tangent, or zeros of its shape where it has none.
    [[nodiscard]] basic_tensor<U> tangent_or_zeros(std::size_t i) const
    {
        return tangents[i].defined() ? tangents[i] : zeros<U>(inputs[i].shape());
    }
};

template <class Op>
concept in_tangent_family = requires { Op::tangent; };

// N elements, in an array, or in a vector of `count` for a list op.
template <class Element, std::size_t N>
fixed_or_list<Element, N> sized(std::size_t count)
{
    if constexpr (N == std::dynamic_extent) {
        return std::vector<Element>(count);
    } else {
        return {};
    }
}

// total + term, where either may be undefined.
template <dtype T>
basic_tensor<T> sum_defined(const basic_tensor<T>& total, const basic_tensor<T>& term)
{
    if (!term.defined()) {
        return total;
    }
    return total.defined() ? total + term : term;
}

template <dtype U, std::size_t N>
fixed_or_list<tensor_description, N> described_inputs(std::span<const basic_tensor<U>, N> inputs)
{
    auto described = sized<tensor_description, N>(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        described[i] = {inputs[i].id(), inputs[i].shape(), dtype_name<U>()};
    }
    return described;
}

template <class Op, std::size_t N, dtype T = typename Op::value_type>
basic_tensor<T> diagonal_tangent(const Op& op, const jvp_args<T, N>& args)
{
    const auto described = described_inputs<T, N>(args.inputs);
    basic_tensor<T> total;
    for (std::size_t i = 0; i < args.input_count(); ++i) {
        const basic_tensor<T>& tangent = args.tangents[i];
        if (!tangent.defined()) {
            continue;
        }
        const basic_tensor<T> grad =
            tangent.shape() == args.output.shape() ? tangent : broadcast_to(tangent, args.output.shape());
        const auto terms = op.backward(backward_args<T, N>{grad, args.inputs, described, args.output,
                                                           input_mask(std::uint64_t{1} << std::min<std::size_t>(i, 63)),
                                                           args.routes});
        total = sum_defined(total, terms[i]);
    }
    return total.defined() && total.shape() != args.output.shape() ? broadcast_to(total, args.output.shape())
                                                                    : total;
}

template <class Op, std::size_t N, dtype T = typename Op::value_type, dtype U = input_dtype_t<Op>>
basic_tensor<T> linear_tangent(const Op& op, const jvp_args<T, N, U>& args)
{
    auto filled = sized<basic_tensor<U>, N>(args.input_count());
    for (std::size_t i = 0; i < args.input_count(); ++i) {
        filled[i] = args.tangent_or_zeros(i);
    }
    if constexpr (N == std::dynamic_extent) {
        return apply_list(op, {}, filled);
    } else {
        return std::apply([&](const auto&... in) { return apply(op, {}, in...); }, filled);
    }
}

template <class Op, std::size_t N, dtype T = typename Op::value_type>
basic_tensor<T> multilinear_tangent(const Op& op, const jvp_args<T, N>& args)
{
    static_assert(N != std::dynamic_extent, "a multilinear op has a fixed number of inputs");
    basic_tensor<T> total;
    for (std::size_t i = 0; i < N; ++i) {
        if (!args.tangents[i].defined()) {
            continue;
        }
        std::array<basic_tensor<T>, N> replaced;
        std::copy(args.inputs.begin(), args.inputs.end(), replaced.begin());
        replaced[i] = args.tangents[i];
        total = sum_defined(total, std::apply([&](const auto&... in) { return apply(op, {}, in...); }, replaced));
    }
    return total;
}

template <class Op, dtype T = typename Op::value_type>
basic_tensor<T> reduction_tangent(const Op& op, const jvp_args<T, 1>& args)
{
    const auto described = described_inputs<T, 1>(args.inputs);
    const auto factor = op.backward(backward_args<T, 1>{ones<T>(args.output.shape()), args.inputs, described,
                                                        args.output, input_mask(1), args.routes});
    return reduce_sum(factor[0] * args.tangents[0], op.axes, op.keepdims);
}

template <class Op, std::size_t N, dtype T = typename Op::value_type>
basic_tensor<T> transposed_tangent(const Op& op, const jvp_args<T, N>& args)
{
    trace_note("tangent of " + std::string(Op::name) + " by its transposed backward rule");
    GradientTape probe;
    const basic_tensor<T> u = zeros<T>(args.output.shape());
    probe.watch(u);
    std::uint64_t with_tangent = 0;
    for (std::size_t i = 0; i < args.input_count(); ++i) {
        if (args.tangents[i].defined()) {
            with_tangent |= std::uint64_t{1} << std::min<std::size_t>(i, 63);
        }
    }
    const auto described = described_inputs<T, N>(args.inputs);
    const auto gradients = op.backward(
        backward_args<T, N>{u, args.inputs, described, args.output, input_mask(with_tangent), args.routes});
    basic_tensor<T> pairing;
    for (std::size_t i = 0; i < std::min(gradients.size(), args.input_count()); ++i) {
        if (args.tangents[i].defined() && gradients[i].defined()) {
            pairing = sum_defined(pairing, reduce_sum(gradients[i] * args.tangents[i]));
        }
    }
    if (!pairing.defined()) {
        return {};
    }
    return probe.gradient(pairing, u, {}, unconnected_gradients::zero);
}

template <class Op, std::size_t N, dtype T = typename Op::value_type, dtype U = input_dtype_t<Op>>
basic_tensor<T> tangent_of(const Op& op, const jvp_args<T, N, U>& args)
{
    if constexpr (requires { op.jvp(args); }) {
        return op.jvp(args);
    } else if constexpr (in_tangent_family<Op>) {
        if constexpr (Op::tangent == tangent_family::linear) {
            return linear_tangent(op, args);
        } else if constexpr (Op::tangent == tangent_family::diagonal) {
            return diagonal_tangent(op, args);
        } else if constexpr (Op::tangent == tangent_family::reduction) {
            return reduction_tangent(op, args);
        } else {
            return multilinear_tangent(op, args);
        }
    } else {
        return transposed_tangent(op, args);
    }
}

template <class Op, std::size_t N>
[[gnu::noinline, gnu::cold]] void observe_forward(const Op& op, const source_location& site,
                                                  std::span<const basic_tensor<input_dtype_t<Op>>, N> inputs,
                                                  const basic_tensor<typename Op::value_type>& result,
                                                  const routes_type& routes)
{
    using T = typename Op::value_type;
    using U = input_dtype_t<Op>;
    auto seen = sized<any_tensor, N>(inputs.size());
    std::copy(inputs.begin(), inputs.end(), seen.begin());
    tangent_rule rule;
    if constexpr (!unrecorded<Op>) {
        rule = [&](std::span<const any_tensor> given) -> any_tensor {
            auto tangents = sized<basic_tensor<U>, N>(inputs.size());
            for (std::size_t i = 0; i < inputs.size(); ++i) {
                if (const auto* tangent = std::get_if<basic_tensor<U>>(&given[i])) {
                    tangents[i] = *tangent;
                }
            }
            basic_tensor<T> tangent =
                tangent_of(op, jvp_args<T, N, U>{inputs, std::span<const basic_tensor<U>, N>(tangents), result, routes});
            if (!tangent.defined()) {
                return {};
            }
            return tangent;
        };
    }
    observe_op(Op::name, site, std::span<const any_tensor>(seen), result, rule);
}

}  // namespace gradtape::detail
