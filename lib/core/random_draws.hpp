// Draws from the calling thread's generator (random.hpp) for ops that draw
// when their kernel runs, so that a replay draws anew, in eager mode's order.
#pragma once

#include <cstddef>

#include <gradtape/tensor.hpp>

namespace gradtape::detail {

// Fills out[0, count) with U(low, high), drawn as random_uniform draws them.
template <dtype T>
void draw_uniform(T* out, std::size_t count, T low, T high);

}  // namespace gradtape::detail
