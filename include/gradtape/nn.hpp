// Losses and other neural-network ops.
//
//   auto loss = gradtape::l2_loss(gradtape::matmul(input, w) - target);
#pragma once

#include <source_location>

#include "tensor.hpp"

namespace gradtape {

// sum(x * x) / 2, as tf.nn.l2_loss.
template <dtype T>
[[nodiscard]] basic_tensor<T> l2_loss(const basic_tensor<T>& x,
                                      std::source_location site = std::source_location::current());

}  // namespace gradtape
