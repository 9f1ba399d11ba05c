// The differentiable ops, with TensorFlow 2 names. Each runs at once and, when
// a tape of this thread watches one of its inputs, is recorded on that tape.
// Elementwise binary ops broadcast as NumPy does. Axes may be negative.
//
//   auto yhat = gradtape::matmul(input, w);
//   auto loss = gradtape::reduce_mean(gradtape::square(yhat - target));
//
// add, subtract, multiply, divide and negative are declared in tensor.hpp,
// beside the operators that call them.
#pragma once

#include <cstddef>
#include <source_location>
#include <vector>

#include "tensor.hpp"

namespace gradtape {

using axes_type = std::vector<std::ptrdiff_t>;

#define GRADTAPE_SITE std::source_location site = std::source_location::current()

template <dtype T> [[nodiscard]] basic_tensor<T> square(const basic_tensor<T>& x, GRADTAPE_SITE);
template <dtype T> [[nodiscard]] basic_tensor<T> exp(const basic_tensor<T>& x, GRADTAPE_SITE);
template <dtype T> [[nodiscard]] basic_tensor<T> log(const basic_tensor<T>& x, GRADTAPE_SITE);
template <dtype T> [[nodiscard]] basic_tensor<T> tanh(const basic_tensor<T>& x, GRADTAPE_SITE);

// The sum of every element, as a tensor of shape ().
template <dtype T> [[nodiscard]] basic_tensor<T> reduce_sum(const basic_tensor<T>& x, GRADTAPE_SITE);
// The sum over `axes`; an empty list reduces nothing, as in NumPy.
template <dtype T>
[[nodiscard]] basic_tensor<T> reduce_sum(const basic_tensor<T>& x, const axes_type& axes, bool keepdims = false,
                                         GRADTAPE_SITE);
template <dtype T> [[nodiscard]] basic_tensor<T> reduce_mean(const basic_tensor<T>& x, GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> reduce_mean(const basic_tensor<T>& x, const axes_type& axes, bool keepdims = false,
                                          GRADTAPE_SITE);

struct matmul_options {
    // Use the transpose of an operand without materialising it (BLAS does).
    bool transpose_a = false;
    bool transpose_b = false;
};
// The matrix product of two 2-D tensors, through BLAS.
template <dtype T>
[[nodiscard]] basic_tensor<T> matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options = {},
                                     GRADTAPE_SITE);

// Reverses the dimensions.
template <dtype T> [[nodiscard]] basic_tensor<T> transpose(const basic_tensor<T>& x, GRADTAPE_SITE);
// Dimension i of the result is dimension perm[i] of x.
template <dtype T>
[[nodiscard]] basic_tensor<T> transpose(const basic_tensor<T>& x, const axes_type& perm, GRADTAPE_SITE);
// The same values in another shape; one dimension may be -1 and is then inferred.
template <dtype T>
[[nodiscard]] basic_tensor<T> reshape(const basic_tensor<T>& x, const std::vector<std::ptrdiff_t>& shape,
                                      GRADTAPE_SITE);
template <dtype T>
[[nodiscard]] basic_tensor<T> broadcast_to(const basic_tensor<T>& x, const shape_type& shape, GRADTAPE_SITE);

// The same value, through which no gradient flows.
template <dtype T> [[nodiscard]] basic_tensor<T> stop_gradient(const basic_tensor<T>& x, GRADTAPE_SITE);

#undef GRADTAPE_SITE

}  // namespace gradtape
