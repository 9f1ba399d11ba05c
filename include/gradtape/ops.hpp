// The differentiable ops, with TensorFlow 2 names. Each runs at once and, when
// a tape of this thread watches one of its inputs, is recorded on that tape.
// Elementwise binary ops broadcast as NumPy does. Axes may be negative.
//
//   auto yhat = gradtape::matmul(input, w);
//   auto loss = gradtape::reduce_mean(gradtape::square(yhat - target));
//
// The elementwise ops of two tensors (add, subtract, multiply, divide,
// maximum, minimum, pow) and negative are declared in tensor.hpp, beside the
// operators that call them.
#pragma once

#include <cstddef>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <type_traits>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// The axes an op works along: one (`reduce_sum(x, 1)`) or a list
/// (`reduce_sum(x, {0, 2})`); `{}` is the empty list. A single axis must be a
/// signed integer: `true` does not convert, and a size (`x.dimension() - 1`,
/// or `axes_type(rank)`, which is not a list of `rank` axes) fails to compile
/// with a message saying so.
class axes_type : public std::vector<std::ptrdiff_t> {
public:
    axes_type() = default;
    /// One axis; negative counts from the last.
    template <std::signed_integral I>
    axes_type(I axis) : vector{std::ptrdiff_t(axis)}
    {
    }
    /// Refused at compile time: a size is not an axis.
    template <std::unsigned_integral I>
        requires(!std::same_as<I, bool>)
    axes_type(I)
    {
        static_assert(detail::dependent_false<I>,
                      "gradtape: axes are signed (std::ptrdiff_t), and -1 is the last: write -1, or "
                      "std::ptrdiff_t(x.dimension()) - 1");
    }
    /// A list of axes: `{0, 2}`.
    axes_type(std::initializer_list<std::ptrdiff_t> axes) : vector(axes) {}
    /// A list of axes made at run time.
    axes_type(std::vector<std::ptrdiff_t> axes) : vector(std::move(axes)) {}
    /// The axes in [first, last).
    template <std::input_iterator I>
    axes_type(I first, I last) : vector(first, last)
    {
    }
};
/// Dimension i of a transpose's result is dimension perm[i] of its operand.
using permutation_type = std::vector<std::ptrdiff_t>;

#define GRADTAPE_SITE source_location site = source_location::current()

/// The elementwise functions of one tensor x, each beside its gradient, with
/// y the result (PyTorch's derivatives.yaml writes them so):
#define GRADTAPE_UNARY_OPS(X)                                                                      \
    X(abs)      /* grad * sign(x)                                                          */ \
    X(sign)     /* 0; y is -1, 0 or 1, and NaN where x is                                  */ \
    X(sqrt)     /* grad / (2 y)                                                            */ \
    X(rsqrt)    /* grad * (-y^3 / 2)                                                       */ \
    X(square)   /* grad * 2 x                                                              */ \
    X(exp)      /* grad * y                                                                */ \
    X(log)      /* grad / x                                                                */ \
    X(log1p)    /* grad / (1 + x)                                                          */ \
    X(expm1)    /* grad * (y + 1)                                                          */ \
    X(sin)      /* grad * cos(x)                                                           */ \
    X(cos)      /* -grad * sin(x)                                                          */ \
    X(tanh)     /* grad * (1 - y^2)                                                        */ \
    X(sigmoid)  /* grad * (y - y^2)                                                        */ \
    X(relu)     /* grad * (x > 0): 0 at 0, as in TensorFlow                                */ \
    X(elu)      /* grad * (x > 0 ? 1 : y + 1); y = x for x > 0, exp(x) - 1 otherwise       */ \
    X(softplus) /* grad * sigmoid(x); y = log(1 + exp(x)), computed without overflow       */

#define GRADTAPE_DECLARE_UNARY(name) \
    template <dtype T> [[nodiscard]] basic_tensor<T> name(const basic_tensor<T>& x, GRADTAPE_SITE);
/// @name Elementwise functions of one tensor
/// @{

/// y = f(x) at every element, as NumPy's function of that name (relu, elu,
/// sigmoid and softplus: TensorFlow's); each gradient is in the table of
/// GRADTAPE_UNARY_OPS.
GRADTAPE_UNARY_OPS(GRADTAPE_DECLARE_UNARY)
/// @}
#undef GRADTAPE_DECLARE_UNARY

/// x for x > 0, alpha x otherwise: grad * (x > 0 ? 1 : alpha).
template <dtype T>
[[nodiscard]] basic_tensor<T> leaky_relu(const basic_tensor<T>& x, T alpha = T(0.2), GRADTAPE_SITE);
/// x raised to one exponent: grad * exponent * x^(exponent - 1).
template <dtype T>
[[nodiscard]] basic_tensor<T> pow(const basic_tensor<T>& x, std::type_identity_t<T> exponent, GRADTAPE_SITE);
/// The gradient flows where low <= x <= high.
template <dtype T>
[[nodiscard]] basic_tensor<T> clip_by_value(const basic_tensor<T>& x, std::type_identity_t<T> low,
                                            std::type_identity_t<T> high, GRADTAPE_SITE);

/// @name Comparisons
/// @{

/// A mask of 1 where the comparison holds and 0 elsewhere, a and b
/// broadcast together; no gradient flows through it.
template <dtype T>
[[nodiscard]] basic_tensor<T> greater(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                                      GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> greater_equal(const basic_tensor<T>& a,
                                            const std::type_identity_t<basic_tensor<T>>& b, GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> less(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                                   GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> less_equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                                         GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                                    GRADTAPE_SITE);
/// @}
/// a where condition is non-zero, b elsewhere; the three broadcast together.
template <dtype T>
[[nodiscard]] basic_tensor<T> where(const basic_tensor<T>& condition, const std::type_identity_t<basic_tensor<T>>& a,
                                    const std::type_identity_t<basic_tensor<T>>& b, GRADTAPE_SITE);

/// The same values in another dtype; the gradient is cast back.
template <dtype To, dtype From>
[[nodiscard]] basic_tensor<To> cast(const basic_tensor<From>& x, GRADTAPE_SITE);

/// Reductions over `axes` (an empty list reduces nothing, as in NumPy), or
/// over every axis to a tensor of shape (); keepdims keeps each reduced axis as
/// a dimension of 1. Each beside its gradient, spread back over the reduced
/// axes:
#define GRADTAPE_REDUCTIONS(X)                                                                        \
    X(reduce_sum)       /* grad                                                                  */ \
    X(reduce_mean)      /* grad / count                                                          */ \
    X(reduce_max)       /* grad shared equally among the elements equal to y (ties), as TF does  */ \
    X(reduce_min)       /* as reduce_max                                                         */ \
    X(reduce_prod)      /* grad * (product of the other elements), exact where x has zeros      */ \
    X(reduce_logsumexp) /* grad * exp(x - y); y = log(sum(exp(x))), computed without overflow    */ \
    X(reduce_variance)  /* grad * 2 (x - mean) / count; the population variance, as TF           */

#define GRADTAPE_DECLARE_REDUCTION(name)                                                                  \
    template <dtype T> [[nodiscard]] basic_tensor<T> name(const basic_tensor<T>& x, GRADTAPE_SITE);       \
    template <dtype T>                                                                                    \
    [[nodiscard]] basic_tensor<T> name(const basic_tensor<T>& x, const axes_type& axes, bool keepdims = false, \
                                       GRADTAPE_SITE);
/// @name Reductions
/// @{

/// sum, mean, max, min, product, log-sum-exp and population variance over
/// `axes`, or over every axis; each gradient is in the table of
/// GRADTAPE_REDUCTIONS.
GRADTAPE_REDUCTIONS(GRADTAPE_DECLARE_REDUCTION)
/// @}
#undef GRADTAPE_DECLARE_REDUCTION

/// How matmul reads its operands.
struct matmul_options {
    /// Use the transpose of an operand without materialising it (BLAS does).
    bool transpose_a = false;
    bool transpose_b = false;  ///< As transpose_a, for the second operand.
};
/// The matrix product, through BLAS: of matrices, of stacks of matrices whose
/// leading (batch) dimensions broadcast, and of vectors by NumPy's rules (a
/// 1-D operand is a row on the left, a column on the right, and that dimension
/// is dropped from the result).
template <dtype T>
[[nodiscard]] basic_tensor<T> matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options = {},
                                     GRADTAPE_SITE);
GRADTAPE_REFUSE_MIXED_DTYPES(matmul)

/// Reverses the dimensions.
template <dtype T> [[nodiscard]] basic_tensor<T> transpose(const basic_tensor<T>& x, GRADTAPE_SITE);
/// Dimension i of the result is dimension perm[i] of x.
template <dtype T>
[[nodiscard]] basic_tensor<T> transpose(const basic_tensor<T>& x, const permutation_type& perm, GRADTAPE_SITE);
/// The same values in another shape; one dimension may be -1 and is then inferred.
template <dtype T>
[[nodiscard]] basic_tensor<T> reshape(const basic_tensor<T>& x, const std::vector<std::ptrdiff_t>& shape,
                                      GRADTAPE_SITE);
/// x repeated along new leading dimensions and dimensions of 1 to `shape`, by NumPy's rules.
template <dtype T>
[[nodiscard]] basic_tensor<T> broadcast_to(const basic_tensor<T>& x, const shape_type& shape, GRADTAPE_SITE);

/// Inserts a dimension of size 1 at `axis` (in [-rank-1, rank]).
template <dtype T>
[[nodiscard]] basic_tensor<T> expand_dims(const basic_tensor<T>& x, std::ptrdiff_t axis, GRADTAPE_SITE);
/// Removes the given dimensions of size 1, or all of them when `axes` is empty.
template <dtype T>
[[nodiscard]] basic_tensor<T> squeeze(const basic_tensor<T>& x, const axes_type& axes = {}, GRADTAPE_SITE);
/// Joins tensors along an existing axis; the other dimensions must agree.
template <dtype T>
[[nodiscard]] basic_tensor<T> concat(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis, GRADTAPE_SITE);
/// Joins tensors of one shape along a new axis.
template <dtype T>
[[nodiscard]] basic_tensor<T> stack(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis = 0,
                                    GRADTAPE_SITE);
/// concat({a, b}, 0) and stack({a, b}): a braced list names its dtype itself.
template <dtype T>
[[nodiscard]] basic_tensor<T> concat(std::initializer_list<basic_tensor<T>> values, std::ptrdiff_t axis, GRADTAPE_SITE)
{
    return concat(std::vector<basic_tensor<T>>(values), axis, site);
}
/// stack of a braced list (see concat's).
template <dtype T>
[[nodiscard]] basic_tensor<T> stack(std::initializer_list<basic_tensor<T>> values, std::ptrdiff_t axis = 0,
                                    GRADTAPE_SITE)
{
    return stack(std::vector<basic_tensor<T>>(values), axis, site);
}
/// Cuts x along `axis` into pieces of the given sizes, which must add up to its dimension.
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> split(const basic_tensor<T>& x, const std::vector<std::size_t>& sizes,
                                                 std::ptrdiff_t axis = 0, GRADTAPE_SITE);
/// The block starting at `begin` of extent `size` (-1: to the end), one entry per dimension.
template <dtype T>
[[nodiscard]] basic_tensor<T> slice(const basic_tensor<T>& x, const std::vector<std::size_t>& begin,
                                    const std::vector<std::ptrdiff_t>& size, GRADTAPE_SITE);
/// Rows of `params` along `axis` picked by `indices` (an embedding lookup):
/// the result's shape is params[:axis] + indices + params[axis+1:]. The
/// gradient adds into the picked rows, repeated indices included.
template <dtype T>
[[nodiscard]] basic_tensor<T> gather(const basic_tensor<T>& params, const xt::xarray<std::int64_t>& indices,
                                     std::ptrdiff_t axis = 0, GRADTAPE_SITE);
/// indices + (depth,): 1 at each index, 0 elsewhere (an index outside [0, depth) gives a row of 0).
template <dtype T = float>
[[nodiscard]] basic_tensor<T> one_hot(const xt::xarray<std::int64_t>& indices, std::size_t depth, GRADTAPE_SITE);
/// x repeated multiples[i] times along dimension i.
template <dtype T>
[[nodiscard]] basic_tensor<T> tile(const basic_tensor<T>& x, const std::vector<std::size_t>& multiples,
                                   GRADTAPE_SITE);

/// The index of the largest (smallest) element along `axis`: the first of
/// equal ones, or the first NaN, as NumPy's argmax. No gradient: indices.
template <dtype T>
[[nodiscard]] xt::xarray<std::int64_t> argmax(const basic_tensor<T>& x, std::ptrdiff_t axis, GRADTAPE_SITE);
/// As argmax, for the smallest.
template <dtype T>
[[nodiscard]] xt::xarray<std::int64_t> argmin(const basic_tensor<T>& x, std::ptrdiff_t axis, GRADTAPE_SITE);

/// What top_k returns.
template <dtype T>
struct top_k_result {
    basic_tensor<T> values;             ///< The k largest along the last axis, largest first.
    xt::xarray<std::int64_t> indices;   ///< Where each came from along that axis.
};
/// The k largest elements along the last axis, largest first (of equal ones
/// the lower index first, as tf.math.top_k); the values carry the gradient.
template <dtype T>
[[nodiscard]] top_k_result<T> top_k(const basic_tensor<T>& x, std::size_t k, GRADTAPE_SITE);

/// The same value, through which no gradient flows.
template <dtype T> [[nodiscard]] basic_tensor<T> stop_gradient(const basic_tensor<T>& x, GRADTAPE_SITE);

#undef GRADTAPE_SITE

}  // namespace gradtape
