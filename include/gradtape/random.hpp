// Seeded random tensors. Each thread draws from its own generator, so threads
// never race and a thread's draws depend only on its own seed; a thread that
// never called set_seed starts from the same fixed seed as every other.
//
//   gradtape::set_seed(42);
//   auto w = gradtape::random_normal<float>({2, 1}, 0.0f, 0.1f);
#pragma once

#include <cstdint>
#include <source_location>

#include "tensor.hpp"

namespace gradtape {

// Restarts the calling thread's generator from `seed`.
void set_seed(std::uint64_t seed);

template <dtype T = float>
[[nodiscard]] basic_tensor<T> random_normal(const shape_type& shape, T mean = 0, T stddev = 1,
                                            std::source_location site = std::source_location::current());
// Uniform on [low, high).
template <dtype T = float>
[[nodiscard]] basic_tensor<T> random_uniform(const shape_type& shape, T low = 0, T high = 1,
                                             std::source_location site = std::source_location::current());

}  // namespace gradtape
