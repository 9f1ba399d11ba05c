// Activations over an axis, losses, dropout, and convolutions.
//
//   auto logits = gradtape::matmul(hidden, w2);
//   auto loss = gradtape::reduce_mean(gradtape::sparse_softmax_cross_entropy_with_logits(labels, logits));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <source_location>

#include "tensor.hpp"

namespace gradtape {

#define GRADTAPE_SITE std::source_location site = std::source_location::current()

// exp(x) / sum(exp(x)) along `axis`, computed without overflow.
template <dtype T>
[[nodiscard]] basic_tensor<T> softmax(const basic_tensor<T>& x, std::ptrdiff_t axis = -1, GRADTAPE_SITE);
// x - log(sum(exp(x))) along `axis`, computed without overflow.
template <dtype T>
[[nodiscard]] basic_tensor<T> log_softmax(const basic_tensor<T>& x, std::ptrdiff_t axis = -1, GRADTAPE_SITE);

// -sum(labels * log_softmax(logits)) over the last axis: one loss per row.
// labels is a distribution over the classes, shaped like logits.
template <dtype T>
[[nodiscard]] basic_tensor<T> softmax_cross_entropy_with_logits(const basic_tensor<T>& labels,
                                                                const basic_tensor<T>& logits, GRADTAPE_SITE);
// The same with one class index per row: labels has logits' shape without its last axis.
template <dtype T>
[[nodiscard]] basic_tensor<T> sparse_softmax_cross_entropy_with_logits(const xt::xarray<std::int64_t>& labels,
                                                                       const basic_tensor<T>& logits, GRADTAPE_SITE);
// Elementwise max(x, 0) - x * z + log(1 + exp(-|x|)) for logits x and labels z: stable for any x.
template <dtype T>
[[nodiscard]] basic_tensor<T> sigmoid_cross_entropy_with_logits(const basic_tensor<T>& labels,
                                                                const basic_tensor<T>& logits, GRADTAPE_SITE);

// sum(x * x) / 2, as tf.nn.l2_loss.
template <dtype T> [[nodiscard]] basic_tensor<T> l2_loss(const basic_tensor<T>& x, GRADTAPE_SITE);
// The mean of (y_pred - y_true)^2 over the last axis, as Keras's mean_squared_error.
template <dtype T>
[[nodiscard]] basic_tensor<T> mean_squared_error(const basic_tensor<T>& y_true, const basic_tensor<T>& y_pred,
                                                 GRADTAPE_SITE);

// Zeroes each element with probability `rate` and scales the others by
// 1 / (1 - rate), drawing from this thread's seeded generator.
template <dtype T>
[[nodiscard]] basic_tensor<T> dropout(const basic_tensor<T>& x, double rate, GRADTAPE_SITE);

// TensorFlow's padding: `valid` pads nothing; `same` pads so that the output
// has ceil(input / stride) positions, in total
// max((ceil(in / stride) - 1) * stride + (k - 1) * dilation + 1 - in, 0),
// the smaller half before.
enum class padding { valid, same };

struct conv2d_options {
    std::array<std::ptrdiff_t, 2> strides{1, 1};
    ::gradtape::padding padding = ::gradtape::padding::valid;
    std::array<std::ptrdiff_t, 2> dilations{1, 1};
};

// input [N, H, W, C] (NHWC), filters [KH, KW, C, O] -> [N, OH, OW, O].
// Gradients: conv2d_transpose(grad, filters) for the input, the correlation
// of input and grad for the filters; both are convolutions again, so every
// order of derivative is exact.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                     conv2d_options options = {}, GRADTAPE_SITE);

// The gradient of conv2d with respect to its input, as tf.nn.conv2d_transpose:
// input [N, OH, OW, O], filters [KH, KW, C, O] (as conv2d's) -> output_shape
// [N, H, W, C], which must be a shape conv2d maps to input's.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv2d_transpose(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                               const shape_type& output_shape, conv2d_options options = {},
                                               GRADTAPE_SITE);

struct conv1d_options {
    std::ptrdiff_t stride = 1;
    ::gradtape::padding padding = ::gradtape::padding::valid;
    std::ptrdiff_t dilation = 1;
};

// input [N, W, C], filters [K, C, O] -> [N, OW, O]: conv2d over a height of 1.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv1d(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                     conv1d_options options = {}, GRADTAPE_SITE);

struct pool2d_options {
    std::array<std::ptrdiff_t, 2> ksize{2, 2};
    std::array<std::ptrdiff_t, 2> strides{2, 2};
    ::gradtape::padding padding = ::gradtape::padding::valid;
};

// The largest element of each window, per channel, over [N, H, W, C]; same
// padding never picks the padding. The gradient goes to that element (the
// first of equal ones, as in TensorFlow); a NaN in a window is its maximum.
template <dtype T>
[[nodiscard]] basic_tensor<T> max_pool2d(const basic_tensor<T>& input, pool2d_options options = {}, GRADTAPE_SITE);
// The mean of each window, over the elements inside the input only (same
// padding, as TensorFlow); the gradient spreads evenly over the window.
// Global average pooling is reduce_mean over axes {1, 2}.
template <dtype T>
[[nodiscard]] basic_tensor<T> avg_pool2d(const basic_tensor<T>& input, pool2d_options options = {}, GRADTAPE_SITE);

#undef GRADTAPE_SITE

}  // namespace gradtape
