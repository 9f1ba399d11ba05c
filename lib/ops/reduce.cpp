// Reductions. The gradient spreads back over the reduced axes by broadcasting.
#include <numeric>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>

#include "op.hpp"

namespace gradtape {

using detail::record_op;

namespace {

// What every reduction of x over some axes shares: the axes in order, the
// input's shape with those axes kept as 1, and the output's shape.
struct reduction {
    xt::svector<std::size_t, 4> axes;
    shape_type kept;
    shape_type output;
    std::size_t count = 1;  // elements folded into each output element
};

reduction plan(std::string_view op, const std::source_location& site, const shape_type& shape,
               const axes_type& axes, bool keepdims)
{
    reduction r;
    r.axes = detail::normalize_axes(op, site, axes, shape.size());
    std::sort(r.axes.begin(), r.axes.end());
    r.kept = shape;
    for (std::size_t axis : r.axes) {
        r.kept[axis] = 1;
        r.count *= shape[axis];
    }
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (keepdims || std::find(r.axes.begin(), r.axes.end(), i) == r.axes.end()) {
            r.output.push_back(r.kept[i]);
        }
    }
    return r;
}

axes_type every_axis(std::size_t rank)
{
    axes_type axes(rank);
    std::iota(axes.begin(), axes.end(), 0);
    return axes;
}

// Folds x over the planned axes with an xtensor reducer, shaped as planned.
template <dtype T, class Reducer>
xt::xarray<T> fold(const basic_tensor<T>& x, const reduction& r, Reducer reducer)
{
    xt::xarray<T> folded = r.axes.empty() ? x.value() : xt::xarray<T>(reducer(x.value(), r.axes));
    folded.reshape(r.output);
    return folded;
}

// A gradient (or any value) of a reduction's output shape, broadcast back to the input's.
template <dtype T>
basic_tensor<T> spread(const basic_tensor<T>& value, const reduction& r, const shape_type& input)
{
    return broadcast_to(reshape(value, detail::signed_shape(r.kept)), input);
}

template <dtype T>
// For the reductions that have no identity element: max, min, logsumexp.
void refuse_empty_axis(std::string_view op, const std::source_location& site, const basic_tensor<T>& x,
                       const reduction& r)
{
    if (r.count == 0) {
        detail::fail<argument_error>(op, site,
                                     "cannot reduce over an empty axis of shape " + detail::format_shape(x.shape()) +
                                         ": the result has no value");
    }
}

}  // namespace

template <dtype T>
basic_tensor<T> reduce_sum(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_sum(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_sum(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    const reduction r = plan("reduce_sum", site, x.shape(), axes, keepdims);
    return record_op<T>(
        "reduce_sum", site, fold(x, r, [](const auto& v, const auto& a) { return xt::sum(v, a); }),
        [r, shape = x.shape()](const basic_tensor<T>& grad) { return spread(grad, r, shape); }, x);
}

template <dtype T>
basic_tensor<T> reduce_mean(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_mean(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_mean(const basic_tensor<T>& x, const axes_type& axes, bool keepdims,
                            std::source_location site)
{
    const reduction r = plan("reduce_mean", site, x.shape(), axes, keepdims);
    xt::xarray<T> mean = fold(x, r, [](const auto& v, const auto& a) { return xt::sum(v, a); });
    mean /= T(r.count);
    return record_op<T>(
        "reduce_mean", site, std::move(mean),
        [r, shape = x.shape()](const basic_tensor<T>& grad) { return spread(grad / T(r.count), r, shape); }, x);
}

namespace {

axes_type axes_of(const reduction& r)
{
    return {r.axes.begin(), r.axes.end()};
}

// reduce_max and reduce_min: the gradient is shared equally among the
// elements equal to the extremum, as TensorFlow does.
template <dtype T, class Reducer>
basic_tensor<T> extremum(std::string_view op, const std::source_location& site, const basic_tensor<T>& x,
                         const axes_type& axes, bool keepdims, Reducer reducer)
{
    const reduction r = plan(op, site, x.shape(), axes, keepdims);
    refuse_empty_axis(op, site, x, r);
    basic_tensor<T> result = fold(x, r, reducer);
    const basic_tensor<T> ties = equal(x, spread(result, r, x.shape()));
    const basic_tensor<T> share = ties / broadcast_to(reduce_sum(ties, axes_of(r), true), x.shape());
    return record_op<T>(
        op, site, result,
        [r, share](const basic_tensor<T>& grad) { return spread(grad, r, share.shape()) * share; }, x);
}

}  // namespace

template <dtype T>
basic_tensor<T> reduce_max(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_max(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_max(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    return extremum("reduce_max", site, x, axes, keepdims, [](const auto& v, const auto& a) { return xt::amax(v, a); });
}

template <dtype T>
basic_tensor<T> reduce_min(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_min(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_min(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    return extremum("reduce_min", site, x, axes, keepdims, [](const auto& v, const auto& a) { return xt::amin(v, a); });
}

template <dtype T>
basic_tensor<T> reduce_prod(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_prod(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_prod(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    const reduction r = plan("reduce_prod", site, x.shape(), axes, keepdims);
    basic_tensor<T> result = fold(x, r, [](const auto& v, const auto& a) { return xt::prod(v, a); });
    // d prod / d x_i is the product of the others: result / x_i, which a zero
    // turns into 0/0. Then the product of the others is formed from the count
    // of zeros in each slice, as a constant: the first derivative is exact,
    // the second does not flow through it.
    basic_tensor<T> others_product;
    if (xt::any(xt::equal(x.value(), T(0)))) {
        const auto product_of = [](const auto& v, const auto& a) { return xt::prod(v, a); };
        const auto sum_of = [](const auto& v, const auto& a) { return xt::sum(v, a); };
        const auto is_zero = xt::equal(x.value(), T(0));
        xt::xarray<T> nonzero_product = fold(basic_tensor<T>(xt::where(is_zero, T(1), x.value())), r, product_of);
        xt::xarray<T> zero_count = fold(basic_tensor<T>(xt::cast<T>(is_zero)), r, sum_of);
        nonzero_product.reshape(r.kept);
        zero_count.reshape(r.kept);
        others_product = xt::xarray<T>(xt::where(xt::equal(zero_count, T(0)), nonzero_product / x.value(),
                                                 xt::where(xt::equal(zero_count, T(1)) && is_zero, nonzero_product, T(0))));
    }
    return record_op<T>(
        "reduce_prod", site, result,
        [r, x, result, others_product](const basic_tensor<T>& grad) {
            const basic_tensor<T> spread_grad = spread(grad, r, x.shape());
            if (others_product.defined()) {
                return spread_grad * others_product;
            }
            return spread_grad * spread(result, r, x.shape()) / x;
        },
        x);
}

template <dtype T>
basic_tensor<T> reduce_logsumexp(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_logsumexp(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_logsumexp(const basic_tensor<T>& x, const axes_type& axes, bool keepdims,
                                 std::source_location site)
{
    const reduction r = plan("reduce_logsumexp", site, x.shape(), axes, keepdims);
    refuse_empty_axis("reduce_logsumexp", site, x, r);
    // Shifting by the maximum keeps exp() from overflowing; an all -inf slice keeps a shift of 0.
    xt::xarray<T> shift = r.axes.empty() ? x.value() : xt::xarray<T>(xt::amax(x.value(), r.axes));
    shift = xt::where(xt::isfinite(shift), shift, T(0));
    shift.reshape(r.kept);
    xt::xarray<T> total = r.axes.empty() ? xt::xarray<T>(xt::exp(x.value() - shift))
                                         : xt::xarray<T>(xt::sum(xt::exp(x.value() - shift), r.axes));
    total.reshape(r.kept);
    xt::xarray<T> result = xt::log(total) + shift;
    result.reshape(r.output);
    basic_tensor<T> out = std::move(result);
    return record_op<T>(
        "reduce_logsumexp", site, out,
        [r, x, out](const basic_tensor<T>& grad) {
            return spread(grad, r, x.shape()) * exp(x - spread(out, r, x.shape()));
        },
        x);
}

template <dtype T>
basic_tensor<T> reduce_variance(const basic_tensor<T>& x, std::source_location site)
{
    return reduce_variance(x, every_axis(x.dimension()), false, site);
}

template <dtype T>
basic_tensor<T> reduce_variance(const basic_tensor<T>& x, const axes_type& axes, bool keepdims,
                                std::source_location site)
{
    const reduction r = plan("reduce_variance", site, x.shape(), axes, keepdims);
    xt::xarray<T> mean = fold(x, r, [](const auto& v, const auto& a) { return xt::sum(v, a); }) / T(r.count);
    mean.reshape(r.kept);
    const xt::xarray<T> deviation = x.value() - mean;
    xt::xarray<T> variance =
        fold(basic_tensor<T>(xt::square(deviation)), r, [](const auto& v, const auto& a) { return xt::sum(v, a); }) /
        T(r.count);
    return record_op<T>(
        "reduce_variance", site, std::move(variance),
        [r, x](const basic_tensor<T>& grad) {
            const basic_tensor<T> centred = x - reduce_mean(x, axes_of(r), true);
            return spread(grad, r, x.shape()) * centred * (T(2) / T(r.count));
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

#define GRADTAPE_INSTANTIATE_REDUCTION(T, name)                                                                        \
    template basic_tensor<T> name(const basic_tensor<T>&, std::source_location);                                    \
    template basic_tensor<T> name(const basic_tensor<T>&, const axes_type&, bool, std::source_location);
#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_sum)                                                                      \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_mean)                                                                     \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_max)                                                                      \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_min)                                                                      \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_prod)                                                                     \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_logsumexp)                                                                \
    GRADTAPE_INSTANTIATE_REDUCTION(T, reduce_variance)
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
