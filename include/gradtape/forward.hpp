// Forward mode: Jacobian-vector products computed along with the values, and
// the Hessian-vector products and Hessians built from them and the tape.
//
//   {
//       gradtape::ForwardAccumulator64 acc({w}, {v});   // tf.autodiff.ForwardAccumulator
//       auto loss = loss_fn();
//       auto slope = acc.jvp(loss);                     // d loss / d w . v
//   }
//   auto [y, y_dot] = gradtape::jvp(f, x, v);           // jax.jvp
//   auto hv = gradtape::hvp(f, x, v);                   // H v, forward over reverse
//   auto h = gradtape::hessian(f, x);                   // shape x.shape + x.shape
//
// Each op's tangent rule runs with ops as soon as the op has run, so that a
// tape records tangents (reverse over forward), an accumulator sees a tape's
// backward pass (forward over reverse), and nested accumulators give higher
// orders.
#pragma once

#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "source_location.hpp"
#include "tape.hpp"
#include "tensor.hpp"
#include "variable.hpp"

namespace gradtape {

namespace detail {
struct accumulator_state;
}

/// Computes, from its construction to its destruction, the tangent of every
/// value this thread computes from its primals: d value / d primals . tangents
/// (TensorFlow's ForwardAccumulator). Accumulators nest: one apply in the
/// order they were made, and an outer one differentiates the tangents of an
/// inner one. A tape's backward pass run inside an accumulator gets tangents
/// too: the accumulator's jvp of a gradient is a Hessian-vector product.
/// stop_recording() pauses accumulators as it pauses tapes. A tangent is
/// freed with its value, so a long loop inside an accumulator does not grow.
template <dtype T>
class basic_forward_accumulator {
public:
    /// One tangent per primal (a tensor or a variable), of its shape; a primal
    /// given twice is an argument_error.
    basic_forward_accumulator(const std::vector<basic_tensor<T>>& primals, const std::vector<basic_tensor<T>>& tangents,
                              source_location site = source_location::current());
    ~basic_forward_accumulator();
    basic_forward_accumulator(const basic_forward_accumulator&) = delete;
    basic_forward_accumulator& operator=(const basic_forward_accumulator&) = delete;

    /// The tangent of `value`, computed since this accumulator was made. A value
    /// that does not depend on a primal gets an undefined tensor, or zeros of
    /// its shape with unconnected_gradients::zero.
    [[nodiscard]] basic_tensor<T> jvp(const basic_tensor<T>& value,
                                      unconnected_gradients unconnected = unconnected_gradients::none,
                                      source_location site = source_location::current()) const;

private:
    std::shared_ptr<detail::accumulator_state> state_;
};

/// An accumulator of float32 primals.
using ForwardAccumulator = basic_forward_accumulator<float>;
/// An accumulator of float64 primals.
using ForwardAccumulator64 = basic_forward_accumulator<double>;

/// A scalar function of variables the caller closes over, as hvp takes it.
template <dtype T>
using loss_function = std::function<basic_tensor<T>()>;

/// f(x) and its tangent along v, d f / d x . v (jax.jvp); the tangent is
/// zeros where f does not depend on x.
template <dtype T>
[[nodiscard]] std::pair<basic_tensor<T>, basic_tensor<T>> jvp(const std::type_identity_t<tensor_function<T>>& f,
                                                              const basic_tensor<T>& x, const basic_tensor<T>& v,
                                                              source_location site = source_location::current());

/// The order of the two derivatives a Hessian-vector product takes. All three
/// give the same product; forward over reverse is the cheapest (one forward
/// and one backward pass, each carrying tangents).
enum class hvp_mode {
    forward_over_reverse,  ///< an accumulator's jvp of the tape's gradient
    reverse_over_forward,  ///< a tape's gradient of the accumulator's jvp
    reverse_over_reverse,  ///< a tape's gradient of the gradient's dot with v
};

/// H v for a scalar f of x: shaped like x. A non-scalar f, or a v of another
/// shape than x, is an error.
template <dtype T>
[[nodiscard]] basic_tensor<T> hvp(const std::type_identity_t<tensor_function<T>>& f, const basic_tensor<T>& x,
                                  const basic_tensor<T>& v, hvp_mode mode = hvp_mode::forward_over_reverse,
                                  source_location site = source_location::current());

/// H v for a scalar loss_fn() of variables (a model's trainable_variables()),
/// with one vector per variable: one product per variable.
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> hvp(const std::type_identity_t<loss_function<T>>& loss_fn,
                                               const std::vector<basic_variable<T>>& variables,
                                               const std::vector<basic_tensor<T>>& vectors,
                                               hvp_mode mode = hvp_mode::forward_over_reverse,
                                               source_location site = source_location::current());

/// The Hessian of a scalar f of x, of shape x.shape + x.shape: one
/// forward-over-reverse product per element of x.
template <dtype T>
[[nodiscard]] basic_tensor<T> hessian(const std::type_identity_t<tensor_function<T>>& f, const basic_tensor<T>& x,
                                      source_location site = source_location::current());

}  // namespace gradtape
