// The LSTM and GRU steps as ops (recurrent.hpp), each beside its gradient.
#include "ops/recurrent.hpp"

#include <gradtape/ops.hpp>

#include "kernels/recurrent_cells.hpp"
#include "ops/op.hpp"

namespace gradtape::detail {

namespace {

template <dtype T>
std::vector<basic_tensor<T>> columns(const basic_tensor<T>& x, std::size_t units, std::size_t pieces)
{
    return split(x, std::vector<std::size_t>(pieces, units), 1);
}

// Whether a tape would record ops on these tensors, or an accumulator compute
// their tangents: then a backward rule runs in ops, so that it can be
// differentiated again.
template <dtype T, std::size_t N>
bool recorded_on(const std::array<const basic_tensor<T>*, N>& tensors)
{
    std::array<tape_input, N> inputs;
    for (std::size_t i = 0; i < N; ++i) {
        inputs[i] = tape_input_of(*tensors[i]);
    }
    return bool(recorder(inputs)) || accumulating();
}

void check_rows(std::string_view op, const source_location& site, const shape_type& a, std::size_t a_width,
                const shape_type& b, std::size_t b_width)
{
    if (a.size() != 2 || b.size() != 2 || a[0] != b[0] || a[1] != a_width || b[1] != b_width) {
        fail<shape_error>(op, site, "takes [batch, " + std::to_string(a_width) + "] and [batch, " +
                                        std::to_string(b_width) + "], got " + format_shape(a) + " and " +
                                        format_shape(b));
    }
}

// The gradient of the fused LSTM step by its kernel: dz | dc_prev.
template <dtype T>
struct lstm_cell_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "lstm_cell_gradient";
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    shape_type shape(const source_location&, const shape_type& z, const shape_type&, const shape_type&,
                     const shape_type&) const
    {
        return {z[0], z[1] / 4 * 5};
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& z, const xt::xarray<T>& c_prev, const xt::xarray<T>& hc,
                 const xt::xarray<T>& d_hc) const
    {
        lstm_cell_backward(z.data(), c_prev.data(), hc.data(), d_hc.data(), out.data(), z.shape()[0],
                           z.shape()[1] / 4);
    }
};

template <dtype T>
struct lstm_cell_op {
    using value_type = T;
    static constexpr std::string_view name = "lstm_cell";
    static constexpr saved saves = saved::inputs_and_output;
    shape_type shape(const source_location& site, const shape_type& z, const shape_type& c_prev) const
    {
        const std::size_t units = c_prev.size() == 2 ? c_prev[1] : 0;
        check_rows(name, site, z, 4 * units, c_prev, units);
        return {z[0], 2 * units};
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& z, const xt::xarray<T>& c_prev) const
    {
        lstm_cell_forward(z.data(), c_prev.data(), out.data(), z.shape()[0], c_prev.shape()[1]);
    }
    // With i, f, o the sigmoids, g the tanh, tc = tanh(c) and grad = dh | dc:
    //   dc' = dc + dh o (1 - tc^2);  dz = dc' g i(1-i) | dc' c_prev f(1-f) | dc' i (1-g^2) | dh tc o(1-o);
    //   dc_prev = dc' f
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& z = args.inputs[0];
        const basic_tensor<T>& c_prev = args.inputs[1];
        const std::size_t units = args.input_shape(1)[1];
        if (!recorded_on<T, 4>({&args.grad, &z, &c_prev, &args.output})) {
            const auto both = columns(apply(lstm_cell_gradient_op<T>{}, {}, z, c_prev, args.output, args.grad),
                                      units, 5);
            return {concat({both[0], both[1], both[2], both[3]}, 1), both[4]};
        }
        const auto gate = columns(z, units, 4);
        const basic_tensor<T> in = sigmoid(gate[0]);
        const basic_tensor<T> forget = sigmoid(gate[1]);
        const basic_tensor<T> g = tanh(gate[2]);
        const basic_tensor<T> out = sigmoid(gate[3]);
        const auto grad = columns(args.grad, units, 2);
        const basic_tensor<T> tc = tanh(columns(args.output, units, 2)[1]);
        const basic_tensor<T> one(T(1));
        const basic_tensor<T> dc = grad[1] + grad[0] * out * (one - tc * tc);
        return {concat({dc * g * in * (one - in), dc * c_prev * forget * (one - forget), dc * in * (one - g * g),
                        grad[0] * tc * out * (one - out)},
                       1),
                dc * forget};
    }
    // The tangent of h | c from dz and dc_prev:
    //   dc = dz_i g i(1-i) + dz_f c_prev f(1-f) + dz_g i (1-g^2) + dc_prev f;
    //   dh = dz_o tc o(1-o) + o (1 - tc^2) dc
    basic_tensor<T> jvp(const jvp_args<T, 2>& args) const
    {
        const basic_tensor<T>& z = args.inputs[0];
        const basic_tensor<T>& c_prev = args.inputs[1];
        const std::size_t units = c_prev.shape()[1];
        const auto gate = columns(z, units, 4);
        const basic_tensor<T> in = sigmoid(gate[0]);
        const basic_tensor<T> forget = sigmoid(gate[1]);
        const basic_tensor<T> g = tanh(gate[2]);
        const basic_tensor<T> out = sigmoid(gate[3]);
        const basic_tensor<T> tc = tanh(columns(args.output, units, 2)[1]);
        const basic_tensor<T> one(T(1));
        const auto dz = columns(args.tangent_or_zeros(0), units, 4);
        const basic_tensor<T> dc = dz[0] * g * in * (one - in) + dz[1] * c_prev * forget * (one - forget) +
                                   dz[2] * in * (one - g * g) + args.tangent_or_zeros(1) * forget;
        return concat({dz[3] * tc * out * (one - out) + out * (one - tc * tc) * dc, dc}, 1);
    }
};

// The gradient of the fused GRU step by its kernel: dx | dm | dh_prev.
template <dtype T>
struct gru_cell_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "gru_cell_gradient";
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    shape_type shape(const source_location&, const shape_type& x, const shape_type&, const shape_type&,
                     const shape_type&) const
    {
        return {x[0], x[1] / 3 * 7};
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x, const xt::xarray<T>& m, const xt::xarray<T>& h_prev,
                 const xt::xarray<T>& dh) const
    {
        gru_cell_backward(x.data(), m.data(), h_prev.data(), dh.data(), out.data(), x.shape()[0], x.shape()[1] / 3);
    }
};

template <dtype T>
struct gru_cell_op {
    using value_type = T;
    static constexpr std::string_view name = "gru_cell";
    static constexpr saved saves = saved::inputs;
    shape_type shape(const source_location& site, const shape_type& x, const shape_type& m,
                     const shape_type& h_prev) const
    {
        const std::size_t units = h_prev.size() == 2 ? h_prev[1] : 0;
        check_rows(name, site, x, 3 * units, h_prev, units);
        check_rows(name, site, m, 3 * units, h_prev, units);
        return {x[0], units};
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x, const xt::xarray<T>& m,
                 const xt::xarray<T>& h_prev) const
    {
        gru_cell_forward(x.data(), m.data(), h_prev.data(), out.data(), x.shape()[0], h_prev.shape()[1]);
    }
    // With z, r the sigmoids and n the tanh:
    //   dz = grad (h_prev - n) z(1-z);  dn = grad (1 - z)(1 - n^2);  dr = dn m_n r(1-r);
    //   dx = dz | dr | dn;  dm = dz | dr | dn r;  dh_prev = grad z
    std::array<basic_tensor<T>, 3> backward(const backward_args<T, 3>& args) const
    {
        const basic_tensor<T>& x = args.inputs[0];
        const basic_tensor<T>& m = args.inputs[1];
        const basic_tensor<T>& h_prev = args.inputs[2];
        const std::size_t units = args.input_shape(2)[1];
        if (!recorded_on<T, 4>({&args.grad, &x, &m, &h_prev})) {
            const auto parts = columns(apply(gru_cell_gradient_op<T>{}, {}, x, m, h_prev, args.grad), units, 7);
            return {concat({parts[0], parts[1], parts[2]}, 1), concat({parts[3], parts[4], parts[5]}, 1), parts[6]};
        }
        const auto xs = columns(x, units, 3);
        const auto ms = columns(m, units, 3);
        const basic_tensor<T> z = sigmoid(xs[0] + ms[0]);
        const basic_tensor<T> r = sigmoid(xs[1] + ms[1]);
        const basic_tensor<T> n = tanh(xs[2] + r * ms[2]);
        const basic_tensor<T> one(T(1));
        const basic_tensor<T> dz = args.grad * (h_prev - n) * z * (one - z);
        const basic_tensor<T> dn = args.grad * (one - z) * (one - n * n);
        const basic_tensor<T> dr = dn * ms[2] * r * (one - r);
        return {concat({dz, dr, dn}, 1), concat({dz, dr, dn * r}, 1), args.grad * z};
    }
    // From dx, dm and dh_prev: dz = (dx_z + dm_z) z(1-z);  dr = (dx_r + dm_r) r(1-r);
    //   dn = (1 - n^2)(dx_n + dr m_n + r dm_n);  dh = dz (h_prev - n) + z dh_prev + (1 - z) dn
    basic_tensor<T> jvp(const jvp_args<T, 3>& args) const
    {
        const basic_tensor<T>& h_prev = args.inputs[2];
        const std::size_t units = h_prev.shape()[1];
        const auto xs = columns(args.inputs[0], units, 3);
        const auto ms = columns(args.inputs[1], units, 3);
        const auto dxs = columns(args.tangent_or_zeros(0), units, 3);
        const auto dms = columns(args.tangent_or_zeros(1), units, 3);
        const basic_tensor<T> z = sigmoid(xs[0] + ms[0]);
        const basic_tensor<T> r = sigmoid(xs[1] + ms[1]);
        const basic_tensor<T> n = tanh(xs[2] + r * ms[2]);
        const basic_tensor<T> one(T(1));
        const basic_tensor<T> dz = (dxs[0] + dms[0]) * z * (one - z);
        const basic_tensor<T> dr = (dxs[1] + dms[1]) * r * (one - r);
        const basic_tensor<T> dn = (one - n * n) * (dxs[2] + dr * ms[2] + r * dms[2]);
        return dz * (h_prev - n) + z * args.tangent_or_zeros(2) + (one - z) * dn;
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> lstm_cell(const basic_tensor<T>& z, const basic_tensor<T>& c_prev, const source_location& site)
{
    return apply(lstm_cell_op<T>{}, site, z, c_prev);
}

template <dtype T>
basic_tensor<T> gru_cell(const basic_tensor<T>& x, const basic_tensor<T>& m, const basic_tensor<T>& h_prev,
                         const source_location& site)
{
    return apply(gru_cell_op<T>{}, site, x, m, h_prev);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> lstm_cell(const basic_tensor<T>&, const basic_tensor<T>&, const source_location&); \
    template basic_tensor<T> gru_cell(const basic_tensor<T>&, const basic_tensor<T>&, const basic_tensor<T>&,       \
                                      const source_location&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape::detail
