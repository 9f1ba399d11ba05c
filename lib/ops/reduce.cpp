// Reductions. The gradient spreads back over the reduced axes by broadcasting.
#include <xtensor/xreducer.hpp>

#include "op.hpp"

namespace gradtape {

using detail::record_op;

namespace {

xt::svector<std::size_t, 4> sorted(xt::svector<std::size_t, 4> axes)
{
    std::sort(axes.begin(), axes.end());
    return axes;
}

// x's shape with each reduced axis kept as 1.
shape_type kept_shape(const shape_type& shape, const xt::svector<std::size_t, 4>& axes)
{
    shape_type kept = shape;
    for (std::size_t axis : axes) {
        kept[axis] = 1;
    }
    return kept;
}

// The output gradient of a reduction, broadcast back to the input's shape.
template <dtype T>
basic_tensor<T> spread(const basic_tensor<T>& grad, const shape_type& kept, const shape_type& input)
{
    return broadcast_to(reshape(grad, detail::signed_shape(kept)), input);
}

}  // namespace

template <dtype T>
basic_tensor<T> reduce_sum(const basic_tensor<T>& x, std::source_location site)
{
    xt::xarray<T> total(xt::sum(x.value())());
    return record_op<T>(
        "reduce_sum", site, std::move(total),
        [shape = x.shape()](const basic_tensor<T>& grad) { return broadcast_to(grad, shape); }, x);
}

template <dtype T>
basic_tensor<T> reduce_sum(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    const auto reduced = sorted(detail::normalize_axes("reduce_sum", site, axes, x.dimension()));
    const shape_type kept = kept_shape(x.shape(), reduced);
    xt::xarray<T> total = xt::sum(x.value(), reduced);
    total.reshape(keepdims ? kept : total.shape());
    return record_op<T>(
        "reduce_sum", site, std::move(total),
        [kept, shape = x.shape()](const basic_tensor<T>& grad) { return spread(grad, kept, shape); }, x);
}

template <dtype T>
basic_tensor<T> reduce_mean(const basic_tensor<T>& x, std::source_location site)
{
    xt::xarray<T> mean(xt::mean(x.value())());
    return record_op<T>(
        "reduce_mean", site, std::move(mean),
        [shape = x.shape(), count = T(x.size())](const basic_tensor<T>& grad) {
            return broadcast_to(grad / count, shape);
        },
        x);
}

template <dtype T>
basic_tensor<T> reduce_mean(const basic_tensor<T>& x, const axes_type& axes, bool keepdims,
                            std::source_location site)
{
    const auto reduced = sorted(detail::normalize_axes("reduce_mean", site, axes, x.dimension()));
    const shape_type kept = kept_shape(x.shape(), reduced);
    std::size_t count = 1;
    for (std::size_t axis : reduced) {
        count *= x.shape()[axis];
    }
    xt::xarray<T> total = xt::sum(x.value(), reduced);
    total /= T(count);
    total.reshape(keepdims ? kept : total.shape());
    return record_op<T>(
        "reduce_mean", site, std::move(total),
        [kept, shape = x.shape(), count = T(count)](const basic_tensor<T>& grad) {
            return spread(grad / count, kept, shape);
        },
        x);
}

namespace detail {

xt::svector<std::size_t, 4> normalize_axes(std::string_view op, const std::source_location& site,
                                           const axes_type& axes, std::size_t rank)
{
    xt::svector<std::size_t, 4> normalized;
    for (std::ptrdiff_t axis : axes) {
        const auto signed_rank = static_cast<std::ptrdiff_t>(rank);
        if (axis < -signed_rank || axis >= signed_rank) {
            fail<argument_error>(op, site,
                                 "axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                                     std::to_string(rank));
        }
        const auto index = static_cast<std::size_t>(axis < 0 ? axis + signed_rank : axis);
        if (std::find(normalized.begin(), normalized.end(), index) != normalized.end()) {
            fail<argument_error>(op, site, "axis " + std::to_string(axis) + " is given more than once");
        }
        normalized.push_back(index);
    }
    return normalized;
}

}  // namespace detail

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> reduce_sum(const basic_tensor<T>&, std::source_location);                              \
    template basic_tensor<T> reduce_sum(const basic_tensor<T>&, const axes_type&, bool, std::source_location);      \
    template basic_tensor<T> reduce_mean(const basic_tensor<T>&, std::source_location);                             \
    template basic_tensor<T> reduce_mean(const basic_tensor<T>&, const axes_type&, bool, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
