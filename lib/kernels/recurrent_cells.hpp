// The gate arithmetic of one LSTM or GRU step over a batch, fused: each row
// is read once and written once, the gates' sigmoids and tanhs computed by
// the vector kernels of unary.hpp. Layouts are Keras's: an LSTM's gates i, f,
// c, o side by side in z [batch, 4 units]; a GRU's z, r and candidate in the
// input's part x and the state's part m [batch, 3 units].
#pragma once

#include <cstddef>

namespace gradtape::detail {

// hc [batch, 2 units] = h | c, with c = f c_prev + i g and h = o tanh(c).
template <class T>
void lstm_cell_forward(const T* z, const T* c_prev, T* hc, std::size_t batch, std::size_t units);

// out [batch, 5 units] = dz | dc_prev for the gradient d_hc of hc.
template <class T>
void lstm_cell_backward(const T* z, const T* c_prev, const T* hc, const T* d_hc, T* out, std::size_t batch,
                        std::size_t units);

// h = n + z (h_prev - n), z = sigmoid(x_z + m_z), r = sigmoid(x_r + m_r),
// n = tanh(x_n + r m_n) (Keras's GRU with reset_after).
template <class T>
void gru_cell_forward(const T* x, const T* m, const T* h_prev, T* h, std::size_t batch, std::size_t units);

// out [batch, 7 units] = dx | dm | dh_prev for the gradient dh of h.
template <class T>
void gru_cell_backward(const T* x, const T* m, const T* h_prev, const T* dh, T* out, std::size_t batch,
                       std::size_t units);

}  // namespace gradtape::detail
