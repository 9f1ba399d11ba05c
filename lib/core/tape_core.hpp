// The tape core as ops see it: should this op be recorded, record it, and the
// backward pass. It knows tensors only by id and gradients only as values;
// no op appears here.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <gradtape/source_location.hpp>
#include <gradtape/tensor.hpp>

#include "core/bookkeeping.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tensor_access.hpp"

#include <xtensor/xstorage.hpp>

namespace gradtape::detail {

#define GRADTAPE_TENSOR_ALTERNATIVE(T) , basic_tensor<T>
using any_tensor = std::variant<std::monostate GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_TENSOR_ALTERNATIVE)>;
#undef GRADTAPE_TENSOR_ALTERNATIVE

// A tensor as a tape sees it: its id, the variable it was read from, and
// (for printing) its shape and dtype. Valid while the tensor lives.
struct tape_input {
    tensor_id id;
    const variable_info* variable;
    const shape_type* shape;
    const char* dtype;
};

template <dtype T>
tape_input tape_input_of(const basic_tensor<T>& tensor)
{
    return {tensor.id(), tensor_access::node(tensor)->variable.get(), &tensor.shape(), dtype_name<T>()};
}

// Which inputs of an op lead to something the tape watches; the backward rule
// need not compute the gradient of the others. Inputs past the 64th always count.
class input_mask {
public:
    explicit input_mask(std::uint64_t bits) : bits_(bits) {}
    [[nodiscard]] bool operator[](std::size_t input) const { return input >= 64 || ((bits_ >> input) & 1U); }

private:
    std::uint64_t bits_;
};

// What a tape knows of a tensor an op read or wrote: its id, and for
// printing, its shape and dtype.
struct tensor_description {
    tensor_id id;
    shape_type shape;
    const char* dtype;
};

// One recorded op, shared by every tape that recorded it. backward() writes
// the gradient of each needed input into input_gradients (left monostate
// where an input gets none), from the gradient of the op's output; the rule
// behind it lives in the derived recorded_op, in the same allocation.
struct op_record {
    std::string_view op;
    source_location site;
    // Note [The layer in call]
    layer_path layer;
    tensor_description output;

    [[nodiscard]] std::span<const tensor_description> inputs() const
    {
        return spilled_inputs.empty() ? std::span(inline_inputs).first(input_count) : std::span(spilled_inputs);
    }
    void set_inputs(std::span<const tape_input> inputs);

    op_record() = default;
    op_record(const op_record&) = delete;
    op_record& operator=(const op_record&) = delete;
    virtual ~op_record() = default;
    virtual void backward(const any_tensor& output_gradient, input_mask needed,
                          std::span<any_tensor> input_gradients) const = 0;
    // Appends the start and byte count of each array the backward rule keeps
    // alive, for the tape's printout.
    virtual void held_arrays(std::vector<std::pair<const void*, std::size_t>>& arrays) const = 0;

private:
    // Nearly every op has at most three inputs: they are kept without an allocation.
    std::array<tensor_description, 3> inline_inputs;
    std::size_t input_count = 0;
    std::vector<tensor_description> spilled_inputs;
};

template <class Rule>
struct recorded_op final : op_record {
    explicit recorded_op(Rule&& r) : rule(std::move(r)) {}
    void backward(const any_tensor& output_gradient, input_mask needed,
                  std::span<any_tensor> input_gradients) const override
    {
        rule(output_gradient, needed, inputs(), input_gradients);
    }
    void held_arrays(std::vector<std::pair<const void*, std::size_t>>& arrays) const override
    {
        if constexpr (requires { rule.held_arrays(arrays); }) {
            rule.held_arrays(arrays);
        }
    }
    Rule rule;
};

struct tape_state;

// The tapes of this thread that record an op, decided from its inputs; empty
// (and false) when none does, so that an op not recorded costs one check.
class recorder {
public:
    explicit recorder(std::span<const tape_input> inputs);
    explicit operator bool() const { return !tapes_.empty(); }
    // `rule` is invoked as rule(output_gradient, needed, inputs, input_gradients),
    // with the inputs' descriptions (their shapes) as recorded.
    template <class Rule>
    void record(std::string_view op, const source_location& site, std::span<const tape_input> inputs,
                const tape_input& output, Rule&& rule)
    {
        record(make_bookkept<recorded_op<std::decay_t<Rule>>>(std::forward<Rule>(rule)), op, site, inputs, output);
    }

private:
    void record(std::shared_ptr<op_record> entry, std::string_view op, const source_location& site,
                std::span<const tape_input> inputs, const tape_input& output);

    xt::svector<std::pair<tape_state*, std::uint64_t>, 4> tapes_;
};

// What GradientTape's questions (gradient, jacobian) share.

// The gradient of the target with respect to each source id (monostate where
// none flows), from `seed`, the gradient of the target itself. With
// `release`, each entry's backward rule is freed once used.
std::vector<any_tensor> backward_pass(tape_state& tape, tensor_id target, any_tensor seed,
                                      std::span<const tensor_id> sources, bool release);
void check_owner(const tape_state& tape, std::string_view op, const source_location& site);
// Refuses to re-enter a tape from a backward rule it is running.
void check_not_computing(const tape_state& tape, std::string_view op, const source_location& site);
// Refuses a second question to a non-persistent tape, one from another
// thread, or one from a backward rule the tape is running.
void check_answerable(const tape_state& tape, std::string_view op, const source_location& site);
// The source's id, after checking that the tape watches it.
tensor_id watched_source(tape_state& tape, std::string_view op, const tape_input& source, std::size_t position,
                         const source_location& site);
// Refuses a target that the tape did not record: computed before the tape
// existed, or from nothing it watches.
void check_recorded(const tape_state& tape, std::string_view op, const tape_input& target,
                    const source_location& origin, const source_location& site);
// A non-persistent tape answers once: afterwards it holds nothing.
void finish_answer(tape_state& tape);

template <dtype S>
basic_tensor<S> gradient_or_zeros(any_tensor& gradient, const shape_type& shape)
{
    if (auto* found = std::get_if<basic_tensor<S>>(&gradient)) {
        return std::move(*found);
    }
    return zeros<S>(shape);
}

// Note [Core functions made of ops]
// The reverse pass does two things to gradients itself: it sums a gradient
// back to its input's shape (sum_to_shape) and adds the gradients that reach
// one tensor (accumulate). Both are written with ops (reduce_sum, reshape,
// add), so that a tape recording the pass records them too and higher-order
// gradients see them; so they are declared here, for the core, and defined
// beside their ops (ops/shape.cpp and ops/elementwise.cpp), which the core
// would otherwise have to include.

// The gradient of a broadcast operand: `gradient` summed over the dimensions
// broadcasting added or stretched, so that it has `shape` again (Note [Core
// functions made of ops]).
template <dtype T>
basic_tensor<T> sum_to_shape(const basic_tensor<T>& gradient, const shape_type& shape);

// The call site of the forward op whose backward rule is running on this thread, if any.
const source_location* backward_site();
// The name of that forward op, or empty.
std::string_view backward_op();
// Whether that rule is the op's tangent rule rather than its backward rule.
bool in_tangent_rule();

// While it lives, the ops this thread runs are attributed to the backward
// rule of `op`, called at `site` (a backward pass, or a replay of one), or
// with `tangent`, to its tangent rule.
class backward_attribution {
public:
    backward_attribution(std::string_view op, const source_location* site, bool tangent = false);
    ~backward_attribution();
    backward_attribution(const backward_attribution&) = delete;
    backward_attribution& operator=(const backward_attribution&) = delete;

private:
    const source_location* saved_site_;
    std::string_view saved_op_;
    bool saved_tangent_;
};

// Whether a GradientTape exists on this thread.
bool tapes_active();
// Whether a GradientTape of this thread records now (one exists and
// stop_recording() does not pause them).
bool tape_recording();
// Whether stop_recording() pauses this thread's tapes and accumulators.
bool recording_paused();

// How many gradient hooks are registered, on all threads: while none is, the
// reverse pass pays one load per entry for them (hooks.cpp).
extern std::atomic<int> gradient_hooks;
// The gradient of `id` after the hooks registered on it, in their order.
any_tensor run_gradient_hooks(tensor_id id, any_tensor gradient);

// total += addend, with the ops (so that outer tapes record it); a monostate
// total takes addend (Note [Core functions made of ops]).
void accumulate(any_tensor& total, any_tensor&& addend);

}  // namespace gradtape::detail
