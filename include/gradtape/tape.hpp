// GradientTape: records the ops run on this thread while it lives, and
// answers gradients of what they computed.
//
//   gradtape::GradientTape tape;                      // pushed on this thread's tape stack
//   auto loss = gradtape::l2_loss(gradtape::matmul(input, w) - target);
//   auto grad = tape.gradient(loss, w);               // d loss / d w, shaped like w
//
// Trainable variables read under a tape are watched by it (unless
// watch_accessed_variables is false); plain tensors are watched with watch().
// Nested tapes each record what they watch; a tape's own gradient computation
// is recorded by the tapes outside it, which gives higher derivatives.
#pragma once

#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <ranges>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

namespace detail {
struct tape_state;
struct guard_count;
}

/// How a GradientTape records (TensorFlow's GradientTape arguments).
struct tape_options {
    /// A persistent tape answers gradient() any number of times and keeps its
    /// entries until it is destroyed or reset(); otherwise it answers once and
    /// releases each entry as soon as the backward pass has used it.
    bool persistent = false;
    /// Whether every trainable variable an op reads is watched without watch().
    bool watch_accessed_variables = true;
};

/// What gradient() gives a watched source that the target does not depend on,
/// as TensorFlow's UnconnectedGradients: an undefined tensor (none, the
/// default, so that a loop that would train nothing fails where the gradient
/// is used: an optimizer refuses it, naming the variable), or zeros.
enum class unconnected_gradients { none, zero };

/// Records, from its construction to its destruction, the ops of this thread
/// that read a watched tensor or variable, and answers gradient() by a reverse
/// pass over them. Tapes nest: an outer tape records the ops of an inner
/// tape's backward pass, which gives higher derivatives.
class GradientTape {
public:
    /// Starts recording on this thread.
    explicit GradientTape(tape_options options = {});
    ~GradientTape();
    GradientTape(const GradientTape&) = delete;
    GradientTape& operator=(const GradientTape&) = delete;

    /// Records the ops that read `tensor` from now on, so that gradient() can
    /// differentiate with respect to it.
    template <dtype T>
    void watch(const basic_tensor<T>& tensor, source_location site = source_location::current());

    /// d target / d source, shaped like source. A target of more than one
    /// element needs output_gradient (shaped like target), which seeds the pass.
    /// A watched source the target does not depend on gets what `unconnected`
    /// says. A source the tape does not watch is an error; so is a target this
    /// tape did not record (computed before the tape existed, or from nothing
    /// it watches), unless `unconnected` asks for zeros.
    template <dtype T, class Source>
        requires std::is_base_of_v<basic_tensor<typename Source::value_type>, Source>
    [[nodiscard]] basic_tensor<typename Source::value_type> gradient(
        const basic_tensor<T>& target, const Source& source, const basic_tensor<T>& output_gradient = {},
        unconnected_gradients unconnected = unconnected_gradients::none,
        source_location site = source_location::current())
    {
        using S = typename Source::value_type;
        const basic_tensor<S>* only = &source;
        return gradient_of<T, S>(target, std::span(&only, 1), output_gradient, unconnected, site).front();
    }

    /// One gradient per source, in order. Sources are any range of tensors or
    /// of variables, or a braced list: tape.gradient(loss, {w, b}).
    template <dtype T, class Sources>
        requires std::ranges::input_range<Sources> &&
                 std::is_base_of_v<basic_tensor<typename std::ranges::range_value_t<Sources>::value_type>,
                                   std::ranges::range_value_t<Sources>>
    [[nodiscard]] auto gradient(const basic_tensor<T>& target, const Sources& sources,
                                const basic_tensor<T>& output_gradient = {},
                                unconnected_gradients unconnected = unconnected_gradients::none,
                                source_location site = source_location::current())
    {
        using S = typename std::ranges::range_value_t<Sources>::value_type;
        std::vector<const basic_tensor<S>*> pointers;
        for (const auto& source : sources) {
            pointers.push_back(&source);
        }
        return gradient_of<T, S>(target, pointers, output_gradient, unconnected, site);
    }
    /// Holds references, so that a braced list of variables is not copied.
    template <dtype T, dtype S = T>
    [[nodiscard]] std::vector<basic_tensor<S>> gradient(
        const basic_tensor<T>& target,
        std::initializer_list<std::reference_wrapper<const basic_tensor<std::type_identity_t<S>>>> sources,
        const basic_tensor<T>& output_gradient = {}, unconnected_gradients unconnected = unconnected_gradients::none,
        source_location site = source_location::current())
    {
        std::vector<const basic_tensor<S>*> pointers;
        for (const basic_tensor<S>& source : sources) {
            pointers.push_back(&source);
        }
        return gradient_of<T, S>(target, pointers, output_gradient, unconnected, site);
    }

    /// d target[i...] / d source[j...] for every element pair: the result's shape
    /// is target's shape followed by source's (zeros where the target does not
    /// depend on the source). One backward pass per target element.
    template <dtype T, class Source>
        requires std::is_base_of_v<basic_tensor<typename Source::value_type>, Source>
    [[nodiscard]] basic_tensor<typename Source::value_type> jacobian(
        const basic_tensor<T>& target, const Source& source,
        source_location site = source_location::current())
    {
        return jacobian_of<T, typename Source::value_type>(target, source, false, site);
    }
    /// For target and source whose first dimension is a batch of independent
    /// examples: d target[b, i...] / d source[b, j...], of shape
    /// (batch, target's other dimensions..., source's other dimensions...).
    template <dtype T, class Source>
        requires std::is_base_of_v<basic_tensor<typename Source::value_type>, Source>
    [[nodiscard]] basic_tensor<typename Source::value_type> batch_jacobian(
        const basic_tensor<T>& target, const Source& source,
        source_location site = source_location::current())
    {
        return jacobian_of<T, typename Source::value_type>(target, source, true, site);
    }

    /// Forgets every entry and watched tensor, as a new tape would. Like every
    /// member, only on the thread that made the tape, and not from a backward
    /// rule that this tape is running.
    void reset(source_location site = source_location::current());
    /// How many ops this tape holds.
    [[nodiscard]] std::size_t size(source_location site = source_location::current()) const;
    /// The trainable variables this tape watches because a recorded op read
    /// them (TensorFlow's watched_variables), as id and name, in the order first read.
    [[nodiscard]] std::vector<std::pair<tensor_id, std::string>> accessed_variables(
        source_location site = source_location::current()) const;
    /// The recorded ops as a Graphviz digraph: `dot -Tpng` draws it.
    [[nodiscard]] std::string to_dot(source_location site = source_location::current()) const;
    /// A heading line, then one line per entry: index, op, input shapes ->
    /// output shape, file:line, bytes held; each line ends with a newline.
    friend std::ostream& operator<<(std::ostream& out, const GradientTape& tape);

private:
    template <dtype T, dtype S>
    std::vector<basic_tensor<S>> gradient_of(const basic_tensor<T>& target,
                                             std::span<const basic_tensor<S>* const> sources,
                                             const basic_tensor<T>& output_gradient, unconnected_gradients unconnected,
                                             source_location site);

    template <dtype T, dtype S>
    basic_tensor<S> jacobian_of(const basic_tensor<T>& target, const basic_tensor<S>& source, bool batched,
                                source_location site);

    std::shared_ptr<detail::tape_state> state_;
};

/// An op whose gradient the caller defines: forward(inputs) computes the
/// result (nothing inside it is recorded), backward(grad, inputs, result)
/// returns one gradient per input (an undefined tensor for none). Both run
/// with gradtape ops, so that nested tapes differentiate the backward too.
///
///   auto clipped = gradtape::custom_gradient(
///       {x}, [](const auto& in) { return in[0]; },
///       [](const auto& grad, const auto&, const auto&) { return std::vector{gradtape::clip_by_value(grad, -1.f, 1.f)}; });
template <dtype T>
using custom_forward = std::function<basic_tensor<T>(const std::vector<basic_tensor<T>>& inputs)>;
/// The gradients of custom_gradient's inputs from the result's gradient.
template <dtype T>
using custom_backward = std::function<std::vector<basic_tensor<T>>(
    const basic_tensor<T>& grad, const std::vector<basic_tensor<T>>& inputs, const basic_tensor<T>& result)>;

/// For forward mode (forward.hpp), the tangent of custom_gradient's result
/// from its inputs' tangents (undefined where an input has none), as
/// jax.custom_jvp's rule. Without one, the tangent comes from `backward`
/// transposed: about three calls of it.
template <dtype T>
using custom_jvp = std::function<basic_tensor<T>(const std::vector<basic_tensor<T>>& inputs,
                                                 const std::vector<basic_tensor<T>>& tangents,
                                                 const basic_tensor<T>& result)>;

/// The dtype comes from the inputs alone, so that lambdas convert.
template <dtype T>
[[nodiscard]] basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>& inputs,
                                              const std::type_identity_t<custom_forward<T>>& forward,
                                              const std::type_identity_t<custom_backward<T>>& backward,
                                              const std::type_identity_t<custom_jvp<T>>& jvp = {},
                                              source_location site = source_location::current());
/// custom_gradient of a braced list of inputs.
template <dtype T>
[[nodiscard]] basic_tensor<T> custom_gradient(std::initializer_list<basic_tensor<T>> inputs,
                                              const std::type_identity_t<custom_forward<T>>& forward,
                                              const std::type_identity_t<custom_backward<T>>& backward,
                                              const std::type_identity_t<custom_jvp<T>>& jvp = {},
                                              source_location site = source_location::current())
{
    return custom_gradient(std::vector<basic_tensor<T>>(inputs), forward, backward, jvp, site);
}

/// A function of one tensor, as recompute_grad, jvp and hvp take it.
template <dtype T>
using tensor_function = std::function<basic_tensor<T>(const basic_tensor<T>&)>;

/// f, computed so that its activations are not kept (tf.recompute_grad,
/// torch.utils.checkpoint): a tape records one entry holding f's input and
/// the variables f read, and its backward pass runs f again under a tape of
/// its own. The random state is saved and restored around the rerun, so that
/// dropout gets the same masks and the generator ends where a plain step
/// leaves it; layers run in the training mode of the first call. Gradients
/// equal those of f itself, at every order. A layer that writes a variable
/// while it runs (batch normalization's moving statistics in training) writes
/// it again in the rerun.
template <dtype T>
[[nodiscard]] tensor_function<T> recompute_grad(tensor_function<T> f, source_location site = source_location::current());
/// recompute_grad of a callable taking a Tensor or a Tensor64.
template <class F>
    requires(!std::is_same_v<std::decay_t<F>, tensor_function<float>> &&
             !std::is_same_v<std::decay_t<F>, tensor_function<double>>)
[[nodiscard]] auto recompute_grad(F f, source_location site = source_location::current())
{
    using T = std::conditional_t<std::is_invocable_v<F&, const basic_tensor<float>&>, float, double>;
    return recompute_grad<T>(tensor_function<T>(std::move(f)), site);
}

/// While the returned guard lives, no tape of the thread that made it records
/// anything. A guard released on another thread (moved there in a
/// unique_ptr, say) ends the pause of the thread that made it.
class [[nodiscard]] recording_pause {
public:
    recording_pause();
    ~recording_pause();
    recording_pause(const recording_pause&) = delete;
    recording_pause& operator=(const recording_pause&) = delete;

private:
    std::shared_ptr<detail::guard_count> count_;
};

/// Pauses this thread's tapes and ForwardAccumulators until the returned
/// guard is destroyed (TensorFlow's tape.stop_recording()).
[[nodiscard]] recording_pause stop_recording();

}  // namespace gradtape
