// Seeded random tensors. Each thread draws from its own generator, so threads
// never race and a thread's draws depend only on its own seed; a thread that
// never called set_seed starts from the same fixed seed as every other.
//
//   gradtape::set_seed(42);
//   auto w = gradtape::random_normal<float>({2, 1}, 0.0f, 0.1f);
#pragma once

#include <cstdint>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// Restarts the calling thread's generator from `seed`.
void set_seed(std::uint64_t seed);
/// The calling thread's generator state, to go on later from the same draw
/// with set_random_state (as torch.get_rng_state); checkpoints that resume keep it.
[[nodiscard]] std::vector<std::uint64_t> random_state();
/// Whether `state` is one that random_state() can give.
[[nodiscard]] bool is_random_state(const std::vector<std::uint64_t>& state);
/// A state that random_state() gave; anything else is an argument_error.
void set_random_state(const std::vector<std::uint64_t>& state,
                      source_location site = source_location::current());

/// Normal with this mean and standard deviation, from this thread's generator.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> random_normal(const shape_type& shape, T mean = 0, T stddev = 1,
                                            source_location site = source_location::current());
/// Uniform on [low, high).
template <dtype T = float>
[[nodiscard]] basic_tensor<T> random_uniform(const shape_type& shape, T low = 0, T high = 1,
                                             source_location site = source_location::current());

/// Initial weights for a layer of `shape` (in, out), or (..., in, out) where
/// the leading dimensions form a receptive field, as Keras draws them:
///   glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
///   glorot_normal:  truncated normal, stddev sqrt(2 / (fan_in + fan_out))
///   he_uniform:     U(-l, l), l = sqrt(6 / fan_in)
///   he_normal:      truncated normal, stddev sqrt(2 / fan_in)
/// The truncated normal redraws values beyond two standard deviations and is
/// scaled so that the stddev is the one named. zeros() is in tensor.hpp.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> glorot_uniform(const shape_type& shape,
                                            source_location site = source_location::current());
/// See glorot_uniform.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> glorot_normal(const shape_type& shape,
                                            source_location site = source_location::current());
/// See glorot_uniform.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> he_uniform(const shape_type& shape,
                                            source_location site = source_location::current());
/// See glorot_uniform.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> he_normal(const shape_type& shape,
                                            source_location site = source_location::current());
/// A matrix [..., cols] (the leading dimensions taken as rows) whose rows or
/// columns, whichever are fewer, are orthonormal: the Q of a standard normal
/// matrix's QR factors with R's diagonal made positive, as Keras's
/// "orthogonal", the default for recurrent kernels.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> orthogonal(const shape_type& shape,
                                         source_location site = source_location::current());

}  // namespace gradtape
