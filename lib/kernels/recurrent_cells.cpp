#include "kernels/recurrent_cells.hpp"

#include "core/dtypes.hpp"
#include "kernels/unary.hpp"
#include "kernels/workspace.hpp"

namespace gradtape::detail {

namespace {

// The LSTM's gates of one row, activated: i, f (sigmoid), g (tanh), o (sigmoid).
template <class T>
void lstm_gates(const T* z, T* gates, std::size_t units)
{
    unary_kernel(unary_function::sigmoid, z, gates, 2 * units);
    unary_kernel(unary_function::tanh, z + 2 * units, gates + 2 * units, units);
    unary_kernel(unary_function::sigmoid, z + 3 * units, gates + 3 * units, units);
}

// The GRU's z and r of one row (sigmoid of x + m), and the candidate's
// pre-activation x_n + r m_n, activated in place by the caller.
template <class T>
void gru_gates(const T* x, const T* m, T* gates, std::size_t units)
{
    for (std::size_t k = 0; k < 2 * units; ++k) {
        gates[k] = x[k] + m[k];
    }
    unary_kernel(unary_function::sigmoid, gates, gates, 2 * units);
    const T* r = gates + units;
    for (std::size_t k = 0; k < units; ++k) {
        gates[2 * units + k] = x[2 * units + k] + r[k] * m[2 * units + k];
    }
    unary_kernel(unary_function::tanh, gates + 2 * units, gates + 2 * units, units);
}

}  // namespace

template <class T>
void lstm_cell_forward(const T* z, const T* c_prev, T* hc, std::size_t batch, std::size_t units)
{
    workspace scratch;
    T* gates = scratch.take<T>(4 * units);
    for (std::size_t b = 0; b < batch; ++b) {
        lstm_gates(z + b * 4 * units, gates, units);
        const T* in = gates;
        const T* forget = gates + units;
        const T* g = gates + 2 * units;
        const T* o = gates + 3 * units;
        T* h = hc + b * 2 * units;
        T* c = h + units;
        const T* before = c_prev + b * units;
        for (std::size_t k = 0; k < units; ++k) {
            c[k] = forget[k] * before[k] + in[k] * g[k];
        }
        unary_kernel(unary_function::tanh, c, h, units);
        for (std::size_t k = 0; k < units; ++k) {
            h[k] *= o[k];
        }
    }
}

template <class T>
void lstm_cell_backward(const T* z, const T* c_prev, const T* hc, const T* d_hc, T* out, std::size_t batch,
                        std::size_t units)
{
    workspace scratch;
    T* gates = scratch.take<T>(4 * units);
    T* tanh_c = scratch.take<T>(units);
    for (std::size_t b = 0; b < batch; ++b) {
        lstm_gates(z + b * 4 * units, gates, units);
        unary_kernel(unary_function::tanh, hc + b * 2 * units + units, tanh_c, units);
        const T* in = gates;
        const T* forget = gates + units;
        const T* g = gates + 2 * units;
        const T* o = gates + 3 * units;
        const T* dh = d_hc + b * 2 * units;
        const T* dc_out = dh + units;
        const T* before = c_prev + b * units;
        T* dz = out + b * 5 * units;
        T* dc_prev = dz + 4 * units;
        for (std::size_t k = 0; k < units; ++k) {
            const T dc = dc_out[k] + dh[k] * o[k] * (T(1) - tanh_c[k] * tanh_c[k]);
            dz[k] = dc * g[k] * in[k] * (T(1) - in[k]);
            dz[units + k] = dc * before[k] * forget[k] * (T(1) - forget[k]);
            dz[2 * units + k] = dc * in[k] * (T(1) - g[k] * g[k]);
            dz[3 * units + k] = dh[k] * tanh_c[k] * o[k] * (T(1) - o[k]);
            dc_prev[k] = dc * forget[k];
        }
    }
}

template <class T>
void gru_cell_forward(const T* x, const T* m, const T* h_prev, T* h, std::size_t batch, std::size_t units)
{
    workspace scratch;
    T* gates = scratch.take<T>(3 * units);
    for (std::size_t b = 0; b < batch; ++b) {
        gru_gates(x + b * 3 * units, m + b * 3 * units, gates, units);
        const T* z = gates;
        const T* n = gates + 2 * units;
        const T* before = h_prev + b * units;
        T* row = h + b * units;
        for (std::size_t k = 0; k < units; ++k) {
            row[k] = n[k] + z[k] * (before[k] - n[k]);
        }
    }
}

template <class T>
void gru_cell_backward(const T* x, const T* m, const T* h_prev, const T* dh, T* out, std::size_t batch,
                       std::size_t units)
{
    workspace scratch;
    T* gates = scratch.take<T>(3 * units);
    for (std::size_t b = 0; b < batch; ++b) {
        const T* m_row = m + b * 3 * units;
        gru_gates(x + b * 3 * units, m_row, gates, units);
        const T* z = gates;
        const T* r = gates + units;
        const T* n = gates + 2 * units;
        const T* before = h_prev + b * units;
        const T* d = dh + b * units;
        T* dx = out + b * 7 * units;
        T* dm = dx + 3 * units;
        T* dh_prev = dm + 3 * units;
        for (std::size_t k = 0; k < units; ++k) {
            const T dz = d[k] * (before[k] - n[k]) * z[k] * (T(1) - z[k]);
            const T dn = d[k] * (T(1) - z[k]) * (T(1) - n[k] * n[k]);
            const T dr = dn * m_row[2 * units + k] * r[k] * (T(1) - r[k]);
            dx[k] = dz;
            dx[units + k] = dr;
            dx[2 * units + k] = dn;
            dm[k] = dz;
            dm[units + k] = dr;
            dm[2 * units + k] = dn * r[k];
            dh_prev[k] = d[k] * z[k];
        }
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void lstm_cell_forward(const T*, const T*, T*, std::size_t, std::size_t);                              \
    template void lstm_cell_backward(const T*, const T*, const T*, const T*, T*, std::size_t, std::size_t);         \
    template void gru_cell_forward(const T*, const T*, const T*, T*, std::size_t, std::size_t);                     \
    template void gru_cell_backward(const T*, const T*, const T*, const T*, T*, std::size_t, std::size_t);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape::detail
