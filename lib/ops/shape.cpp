// Ops that move values without arithmetic: their gradients move them back.
#include <numeric>
#include <optional>

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmanipulation.hpp>

#include "op.hpp"

namespace gradtape {

using detail::fail;
using detail::format_shape;
using detail::record_op;

template <dtype T>
basic_tensor<T> transpose(const basic_tensor<T>& x, std::source_location site)
{
    axes_type reversed(x.dimension());
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    return transpose(x, reversed, site);
}

template <dtype T>
basic_tensor<T> transpose(const basic_tensor<T>& x, const axes_type& perm, std::source_location site)
{
    if (perm.size() != x.dimension()) {
        fail<argument_error>("transpose", site,
                             "perm has " + std::to_string(perm.size()) + " axes for a tensor of shape " +
                                 format_shape(x.shape()));
    }
    const auto order = detail::normalize_axes("transpose", site, perm, x.dimension());
    axes_type inverse(order.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
        inverse[order[i]] = static_cast<std::ptrdiff_t>(i);
    }
    return record_op<T>(
        "transpose", site, xt::transpose(x.value(), order),
        [inverse](const basic_tensor<T>& grad) { return transpose(grad, inverse); }, x);
}

template <dtype T>
basic_tensor<T> reshape(const basic_tensor<T>& x, const std::vector<std::ptrdiff_t>& shape, std::source_location site)
{
    const auto refuse = [&](const std::string& why) {
        std::string requested = "(";
        for (std::size_t i = 0; i < shape.size(); ++i) {
            requested += (i ? ", " : "") + std::to_string(shape[i]);
        }
        fail<shape_error>("reshape", site,
                          "cannot reshape " + format_shape(x.shape()) + " (" + std::to_string(x.size()) +
                              " elements) to " + requested + (shape.size() == 1 ? ",)" : ")") + ": " + why);
    };
    shape_type target(shape.size(), 1);
    std::optional<std::size_t> inferred;
    std::size_t known = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (shape[i] == -1 && !inferred) {
            inferred = i;
        } else if (shape[i] < 0) {
            refuse("a dimension is negative (one -1, for a dimension to infer, is allowed)");
        } else {
            target[i] = static_cast<std::size_t>(shape[i]);
            known *= target[i];
        }
    }
    if (inferred) {
        if (known == 0 || x.size() % known != 0) {
            refuse("no size for the -1 dimension gives that many elements");
        }
        target[*inferred] = x.size() / known;
    } else if (known != x.size()) {
        refuse("the element counts differ");
    }
    xt::xarray<T> reshaped = x.value();
    reshaped.reshape(target);
    return record_op<T>(
        "reshape", site, std::move(reshaped),
        [original = detail::signed_shape(x.shape())](const basic_tensor<T>& grad) { return reshape(grad, original); },
        x);
}

template <dtype T>
basic_tensor<T> broadcast_to(const basic_tensor<T>& x, const shape_type& shape, std::source_location site)
{
    const shape_type& from = x.shape();
    bool fits = from.size() <= shape.size();
    for (std::size_t i = 1; fits && i <= from.size(); ++i) {
        const std::size_t dim = from[from.size() - i];
        fits = dim == 1 || dim == shape[shape.size() - i];
    }
    if (!fits) {
        fail<shape_error>("broadcast_to", site,
                          "cannot broadcast " + format_shape(from) + " to " + format_shape(shape));
    }
    return record_op<T>(
        "broadcast_to", site, xt::broadcast(x.value(), shape),
        [from](const basic_tensor<T>& grad) { return detail::sum_to_shape(grad, from); }, x);
}

template <dtype T>
basic_tensor<T> stop_gradient(const basic_tensor<T>& x, std::source_location)
{
    return basic_tensor<T>(xt::xarray<T>(x.value()));
}

namespace detail {

template <dtype T>
basic_tensor<T> sum_to_shape(const basic_tensor<T>& gradient, const shape_type& shape)
{
    const shape_type& from = gradient.shape();
    if (from == shape) {
        return gradient;
    }
    const std::size_t added = from.size() - shape.size();
    axes_type axes;
    for (std::size_t i = 0; i < from.size(); ++i) {
        if (i < added || (shape[i - added] == 1 && from[i] != 1)) {
            axes.push_back(static_cast<std::ptrdiff_t>(i));
        }
    }
    return reshape(reduce_sum(gradient, axes, true), signed_shape(shape));
}

std::vector<std::ptrdiff_t> signed_shape(const shape_type& shape)
{
    return {shape.begin(), shape.end()};
}

}  // namespace detail

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> transpose(const basic_tensor<T>&, std::source_location);                               \
    template basic_tensor<T> transpose(const basic_tensor<T>&, const axes_type&, std::source_location);             \
    template basic_tensor<T> reshape(const basic_tensor<T>&, const std::vector<std::ptrdiff_t>&,                    \
                                     std::source_location);                                                         \
    template basic_tensor<T> broadcast_to(const basic_tensor<T>&, const shape_type&, std::source_location);         \
    template basic_tensor<T> stop_gradient(const basic_tensor<T>&, std::source_location);                           \
    template basic_tensor<T> detail::sum_to_shape(const basic_tensor<T>&, const shape_type&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
