// The ops of a selection's gradients: a selecting op (max_pool2d, top_k)
// gives its routes (flat indices into its input) beside its value (Note [The
// op contract]), and these two, which are each other's gradients, move
// values along them: derivatives of every order stay exact.
#pragma once

#include <cstdint>
#include <memory>

#include "ops/op.hpp"

namespace gradtape::detail {

template <dtype T>
struct place_op;

// out[i] = x.flat(routes[i]), read in place (no flattened copy of x).
template <dtype T>
struct pick_op {
    using value_type = T;
    static constexpr std::string_view name = "pick";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = tangent_family::linear;
    routes_type routes;

    shape_type shape(const source_location&, const shape_type&) const { return routes->shape(); }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        const T* values = x.data();
        const std::int64_t* from = routes->data();
        for (std::size_t i = 0; i < out.size(); ++i) {
            out.data()[i] = values[from[i]];
        }
    }
    // grad added back where each element came from
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {apply(place_op<T>{routes, args.input_shape(0)}, {}, args.grad)};
    }
};

// pick's adjoint: each value added into zeros of the input's shape at its route.
template <dtype T>
struct place_op {
    using value_type = T;
    static constexpr std::string_view name = "place";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = tangent_family::linear;
    routes_type routes;
    shape_type input;

    shape_type shape(const source_location&, const shape_type&) const { return input; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad) const
    {
        out.fill(T(0));
        const std::int64_t* to = routes->data();
        for (std::size_t i = 0; i < grad.size(); ++i) {
            out.data()[to[i]] += grad.data()[i];
        }
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {apply(pick_op<T>{routes}, {}, args.grad)};
    }
};

}  // namespace gradtape::detail
