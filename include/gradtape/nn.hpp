// Activations over an axis, losses, and dropout.
//
//   auto logits = gradtape::matmul(hidden, w2);
//   auto loss = gradtape::reduce_mean(gradtape::sparse_softmax_cross_entropy_with_logits(labels, logits));
#pragma once

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

#undef GRADTAPE_SITE

}  // namespace gradtape
