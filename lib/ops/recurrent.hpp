// The fused steps of the recurrent layers (lib/layers/recurrent.cpp): ops
// whose forward is one kernel per step, and whose backward is one kernel
// too unless a tape records the backward pass (for a higher derivative),
// which then gets the same derivative written in ops.
#pragma once


#include <gradtape/source_location.hpp>
#include <gradtape/tensor.hpp>

namespace gradtape::detail {

// z [batch, 4 units] (gates i, f, c, o before their activations) and c_prev
// [batch, units] -> [batch, 2 units]: h | c, with c = sigmoid(f) c_prev +
// sigmoid(i) tanh(c~) and h = sigmoid(o) tanh(c).
template <dtype T>
basic_tensor<T> lstm_cell(const basic_tensor<T>& z, const basic_tensor<T>& c_prev, const source_location& site);

// The input's part x and the state's part m [batch, 3 units] (z, r, n before
// their activations) and h_prev [batch, units] -> h [batch, units]:
// h = n + z (h_prev - n), n = tanh(x_n + r m_n), Keras's GRU with reset_after.
template <dtype T>
basic_tensor<T> gru_cell(const basic_tensor<T>& x, const basic_tensor<T>& m, const basic_tensor<T>& h_prev,
                         const source_location& site);

}  // namespace gradtape::detail
