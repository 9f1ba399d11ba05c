// Reductions. The gradient spreads back over the reduced axes by broadcasting.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
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
    std::vector<std::ptrdiff_t> axes(rank);
    std::iota(axes.begin(), axes.end(), 0);
    return axes;
}

// Folds x over the planned axes with an xtensor reducer, shaped as planned.
// An empty x never reaches the reducer (xtensor's reducers do pointer
// arithmetic on its null buffer): every output element is `empty_value`,
// the reduction's identity.
template <dtype T, class Reducer>
xt::xarray<T> fold(const basic_tensor<T>& x, const reduction& r, Reducer reducer, T empty_value = T(0))
{
    if (x.size() == 0) {
        auto filled = xt::xarray<T>::from_shape(r.output);
        filled.fill(empty_value);
        return filled;
    }
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
// elements equal to the extremum, as TensorFlow does. A slice holding a NaN
// reduces to NaN wherever the NaN is, as in NumPy (xtensor's amax keeps or
// drops it depending on its position).
template <dtype T, class Reducer>
basic_tensor<T> extremum(std::string_view op, const std::source_location& site, const basic_tensor<T>& x,
                         const axes_type& axes, bool keepdims, Reducer reducer)
{
    const reduction r = plan(op, site, x.shape(), axes, keepdims);
    refuse_empty_axis(op, site, x, r);
    xt::xarray<T> folded = fold(x, r, reducer);
    const xt::xarray<T>& values = x.value();
    // Over the buffer, not xt::any: xtensor's end stepper offsets the null
    // data pointer of an empty array.
    if (std::any_of(values.storage().cbegin(), values.storage().cend(), [](T v) { return std::isnan(v); })) {
        const xt::xarray<T> nans =
            fold(basic_tensor<T>(xt::cast<T>(xt::isnan(x.value()))), r, [](const auto& v, const auto& a) {
                return xt::sum(v, a);
            });
        folded = xt::where(nans > T(0), std::numeric_limits<T>::quiet_NaN(), folded);
    }
    basic_tensor<T> result = std::move(folded);
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

namespace {

// d prod / d x_i: the product of the other elements of x_i's slice, written
// with ops so that an outer tape differentiates it exactly to every order.
// A slice without a zero takes prod / x_i. A slice with a zero forms each
// product of the others directly, from n copies of the slice with one element
// replaced by 1: exact at zeros, at n times the slice's memory.
template <dtype T>
basic_tensor<T> product_of_others(const basic_tensor<T>& x, const reduction& r)
{
    // The slices as rows: the kept axes first, the reduced ones last.
    permutation_type perm;
    for (std::size_t i = 0; i < x.dimension(); ++i) {
        if (std::find(r.axes.begin(), r.axes.end(), i) == r.axes.end()) {
            perm.push_back(std::ptrdiff_t(i));
        }
    }
    perm.insert(perm.end(), r.axes.begin(), r.axes.end());
    permutation_type inverse(perm.size());
    for (std::size_t i = 0; i < perm.size(); ++i) {
        inverse[std::size_t(perm[i])] = std::ptrdiff_t(i);
    }
    const basic_tensor<T> moved = transpose(x, perm);
    const auto n = std::ptrdiff_t(r.count);
    const auto m = std::ptrdiff_t(x.size() / r.count);
    const basic_tensor<T> rows = reshape(moved, {m, n});

    auto has_zero = xt::xarray<T>::from_shape({std::size_t(m), 1});
    std::vector<std::int64_t> zero_row_list;
    for (std::ptrdiff_t i = 0; i < m; ++i) {
        const T* row = rows.value().data() + i * n;
        has_zero.flat(std::size_t(i)) = T(std::find(row, row + n, T(0)) != row + n);
        if (has_zero.flat(std::size_t(i)) != T(0)) {
            zero_row_list.push_back(i);
        }
    }
    const basic_tensor<T> without_zeros = where(basic_tensor<T>(has_zero), basic_tensor<T>(T(1)), rows);
    basic_tensor<T> others = reduce_prod(without_zeros, {1}, true) / without_zeros;

    if (!zero_row_list.empty()) {
        const xt::xarray<std::int64_t> zero_rows = xt::adapt(zero_row_list, {zero_row_list.size()});
        const basic_tensor<T> sliced = gather(rows, zero_rows, 0);
        const auto count = std::ptrdiff_t(zero_rows.size());
        xt::xarray<T> diagonal = xt::eye<T>(std::size_t(n));
        diagonal.reshape({1, std::size_t(n), std::size_t(n)});
        const basic_tensor<T> copies =
            broadcast_to(reshape(sliced, {count, 1, n}), {std::size_t(count), std::size_t(n), std::size_t(n)});
        const basic_tensor<T> zero_others =
            reduce_prod(where(basic_tensor<T>(diagonal), basic_tensor<T>(T(1)), copies), {2});
        // Row i of the result: row i of `others`, or its row among zero_others.
        xt::xarray<std::int64_t> pick = xt::arange<std::int64_t>(m);
        for (std::size_t k = 0; k < zero_rows.size(); ++k) {
            pick(std::size_t(zero_rows(k))) = m + std::int64_t(k);
        }
        others = gather(concat<T>({others, zero_others}, 0), pick, 0);
    }
    return transpose(reshape(others, detail::signed_shape(moved.shape())), inverse);
}

}  // namespace

template <dtype T>
basic_tensor<T> reduce_prod(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, std::source_location site)
{
    const reduction r = plan("reduce_prod", site, x.shape(), axes, keepdims);
    basic_tensor<T> result = fold(x, r, [](const auto& v, const auto& a) { return xt::prod(v, a); }, T(1));
    return record_op<T>(
        "reduce_prod", site, result,
        [r, x, result](const basic_tensor<T>& grad) {
            const basic_tensor<T> spread_grad = spread(grad, r, x.shape());
            const xt::xarray<T>& values = x.value();
            if (std::ranges::find(values.storage(), T(0)) != values.storage().end()) {
                return spread_grad * product_of_others(x, r);
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
    xt::xarray<T> shift = fold(x, r, [](const auto& v, const auto& a) { return xt::amax(v, a); });
    shift = xt::where(xt::isfinite(shift), shift, T(0));
    shift.reshape(r.kept);
    xt::xarray<T> total = fold(basic_tensor<T>(xt::exp(x.value() - shift)), r,
                               [](const auto& v, const auto& a) { return xt::sum(v, a); });
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
