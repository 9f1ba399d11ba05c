// Reductions. The gradient spreads back over the reduced axes by broadcasting.
#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <vector>

#include "kernels/reduce.hpp"
#include "ops/op.hpp"
#include "ops/routes.hpp"

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>

namespace gradtape {

using detail::backward_args;
using detail::saved;

namespace {

// What every reduction of x over some axes shares: the axes in order, the
// input's shape with those axes kept as 1, and the output's shape.
struct reduction {
    xt::svector<std::size_t, 4> axes;
    shape_type kept;
    shape_type output;
    std::size_t count = 1;  // elements folded into each output element
    [[nodiscard]] const shape_type& output_shape() const { return output; }
};

reduction plan(std::string_view op, const source_location& site, const shape_type& shape,
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

// Writes x folded over the planned axes by an xtensor reducer into `out`
// (of the planned output shape). An empty x never reaches the reducer
// (xtensor's reducers do pointer arithmetic on its null buffer): every output
// element is `empty_value`, the reduction's identity.
template <dtype T, class Reducer>
void fold_into(xt::xarray<T>& out, const xt::xarray<T>& x, const reduction& r, Reducer reducer, T empty_value = T(0))
{
    if (x.size() == 0) {
        out.fill(empty_value);
    } else if (r.axes.empty()) {
        std::ranges::copy(x.storage(), out.data());
    } else {
        const xt::xarray<T> folded = reducer(x, r.axes);
        std::ranges::copy(folded.storage(), out.data());
    }
}

template <dtype T, class Reducer>
xt::xarray<T> fold(const xt::xarray<T>& x, const reduction& r, Reducer reducer)
{
    auto out = xt::xarray<T>::from_shape(r.output);
    fold_into(out, x, r, reducer);
    return out;
}

constexpr auto sum = [](const auto& v, const auto& axes) { return xt::sum(v, axes); };

// A gradient (or any value) of a reduction's output shape, broadcast back to the input's.
template <dtype T>
basic_tensor<T> spread(const basic_tensor<T>& value, const reduction& r, const shape_type& input)
{
    return broadcast_to(reshape(value, detail::signed_shape(r.kept)), input);
}

axes_type axes_of(const reduction& r)
{
    return {r.axes.begin(), r.axes.end()};
}

// What every reduction shares: its attributes and its shape rule. Op::empty
// says whether reducing an empty axis has a value (the identity of sum and
// prod) or is refused (max, min, logsumexp).
template <class Op>
struct reducing {
    axes_type axes;
    bool keepdims;

    reduction plan_for(const source_location& site, const shape_type& x) const
    {
        return plan(Op::name, site, x, axes, keepdims);
    }
    reduction shape(const source_location& site, const shape_type& x) const
    {
        reduction r = plan_for(site, x);
        if (!Op::empty_axis_has_value && r.count == 0) {
            detail::fail<argument_error>(Op::name, site,
                                         "cannot reduce over an empty axis of shape " + detail::format_shape(x) +
                                             ": the result has no value");
        }
        return r;
    }
};

template <dtype T>
struct reduce_sum_op : reducing<reduce_sum_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "reduce_sum";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    static constexpr bool empty_axis_has_value = true;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        detail::sum_into(out, x, r.kept);
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const shape_type& shape = args.input_shape(0);
        return {spread(args.grad, this->plan_for({}, shape), shape)};
    }
};

template <dtype T>
struct reduce_mean_op : reducing<reduce_mean_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "reduce_mean";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    static constexpr bool empty_axis_has_value = true;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        detail::sum_into(out, x, r.kept);
        out /= T(r.count);
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const shape_type& shape = args.input_shape(0);
        const reduction r = this->plan_for({}, shape);
        return {spread(args.grad / T(r.count), r, shape)};
    }
};

// reduce_max and reduce_min: the gradient is shared equally among the
// elements equal to the extremum, as TensorFlow does. A slice holding a NaN
// reduces to NaN wherever the NaN is, as in NumPy (xtensor's amax keeps or
// drops it depending on its position).
template <dtype T, bool largest>
struct extremum_op : reducing<extremum_op<T, largest>> {
    using value_type = T;
    static constexpr std::string_view name = largest ? "reduce_max" : "reduce_min";
    static constexpr saved saves = saved::inputs_and_output;
    static constexpr auto tangent = detail::tangent_family::reduction;
    static constexpr bool empty_axis_has_value = false;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        fold_into(out, x, r, [](const auto& v, const auto& axes) {
            if constexpr (largest) {
                return xt::amax(v, axes);
            } else {
                return xt::amin(v, axes);
            }
        });
        // Over the buffer, not xt::any: xtensor's end stepper offsets the null
        // data pointer of an empty array.
        if (std::ranges::any_of(x.storage(), [](T v) { return std::isnan(v); })) {
            const xt::xarray<T> nans = fold(xt::xarray<T>(xt::cast<T>(xt::isnan(x))), r, sum);
            xt::noalias(out) = xt::where(nans > T(0), std::numeric_limits<T>::quiet_NaN(), out);
        }
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const basic_tensor<T>& x = args.inputs[0];
        const reduction r = this->plan_for({}, x.shape());
        const basic_tensor<T> ties = equal(x, spread(args.output, r, x.shape()));
        const basic_tensor<T> share = ties / broadcast_to(reduce_sum(ties, axes_of(r), true), x.shape());
        return {spread(args.grad, r, x.shape()) * share};
    }
};

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
    basic_tensor<T> others = reduce_prod(without_zeros, 1, true) / without_zeros;

    if (!zero_row_list.empty()) {
        const xt::xarray<std::int64_t> zero_rows = xt::adapt(zero_row_list, {zero_row_list.size()});
        const basic_tensor<T> sliced = gather(rows, zero_rows, 0);
        const auto count = std::ptrdiff_t(zero_rows.size());
        xt::xarray<T> diagonal = xt::eye<T>(std::size_t(n));
        diagonal.reshape({1, std::size_t(n), std::size_t(n)});
        const basic_tensor<T> copies =
            broadcast_to(reshape(sliced, {count, 1, n}), {std::size_t(count), std::size_t(n), std::size_t(n)});
        const basic_tensor<T> zero_others =
            reduce_prod(where(basic_tensor<T>(diagonal), basic_tensor<T>(T(1)), copies), 2);
        // Row i of the result: row i of `others`, or its row among zero_others.
        xt::xarray<std::int64_t> pick = xt::arange<std::int64_t>(m);
        for (std::size_t k = 0; k < zero_rows.size(); ++k) {
            pick(std::size_t(zero_rows(k))) = m + std::int64_t(k);
        }
        others = gather(concat({others, zero_others}, 0), pick, 0);
    }
    return transpose(reshape(others, detail::signed_shape(moved.shape())), inverse);
}

template <dtype T>
struct reduce_prod_op : reducing<reduce_prod_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "reduce_prod";
    static constexpr saved saves = saved::inputs_and_output;
    static constexpr auto tangent = detail::tangent_family::reduction;
    static constexpr bool empty_axis_has_value = true;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        fold_into(out, x, r, [](const auto& v, const auto& axes) { return xt::prod(v, axes); }, T(1));
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const basic_tensor<T>& x = args.inputs[0];
        const reduction r = this->plan_for({}, x.shape());
        const basic_tensor<T> spread_grad = spread(args.grad, r, x.shape());
        if (std::ranges::find(x.value().storage(), T(0)) != x.value().storage().end()) {
            return {spread_grad * product_of_others(x, r)};
        }
        return {spread_grad * spread(args.output, r, x.shape()) / x};
    }
};

template <dtype T>
struct reduce_logsumexp_op : reducing<reduce_logsumexp_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "reduce_logsumexp";
    static constexpr saved saves = saved::inputs_and_output;
    static constexpr auto tangent = detail::tangent_family::reduction;
    static constexpr bool empty_axis_has_value = false;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        // Shifting by the maximum keeps exp() from overflowing; an all -inf slice keeps a shift of 0.
        xt::xarray<T> shift = fold(x, r, [](const auto& v, const auto& axes) { return xt::amax(v, axes); });
        shift = xt::where(xt::isfinite(shift), shift, T(0));
        shift.reshape(r.kept);
        xt::xarray<T> total = fold(xt::xarray<T>(xt::exp(x - shift)), r, sum);
        total.reshape(r.kept);
        const xt::xarray<T> result = xt::log(total) + shift;
        std::ranges::copy(result.storage(), out.data());
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const basic_tensor<T>& x = args.inputs[0];
        const reduction r = this->plan_for({}, x.shape());
        return {spread(args.grad, r, x.shape()) * exp(x - spread(args.output, r, x.shape()))};
    }
};

template <dtype T>
struct reduce_variance_op : reducing<reduce_variance_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "reduce_variance";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::reduction;
    static constexpr bool empty_axis_has_value = true;
    void forward(const reduction& r, xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        xt::xarray<T> mean = fold(x, r, sum) / T(r.count);
        mean.reshape(r.kept);
        fold_into(out, xt::xarray<T>(xt::square(x - mean)), r, sum);
        out /= T(r.count);
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const basic_tensor<T>& x = args.inputs[0];
        const reduction r = this->plan_for({}, x.shape());
        const basic_tensor<T> centred = x - reduce_mean(x, axes_of(r), true);
        return {spread(args.grad, r, x.shape()) * centred * (T(2) / T(r.count))};
    }
};

template <dtype T>
using reduce_max_op = extremum_op<T, true>;
template <dtype T>
using reduce_min_op = extremum_op<T, false>;

}  // namespace

#define GRADTAPE_DEFINE_REDUCTION(NAME)                                                                                \
    template <dtype T>                                                                                                 \
    basic_tensor<T> NAME(const basic_tensor<T>& x, source_location site)                                          \
    {                                                                                                                  \
        return detail::apply(NAME##_op<T>{{every_axis(x.dimension()), false}}, site, x);                               \
    }                                                                                                                  \
    template <dtype T>                                                                                                 \
    basic_tensor<T> NAME(const basic_tensor<T>& x, const axes_type& axes, bool keepdims, source_location site)    \
    {                                                                                                                  \
        return detail::apply(NAME##_op<T>{{axes, keepdims}}, site, x);                                                 \
    }
GRADTAPE_REDUCTIONS(GRADTAPE_DEFINE_REDUCTION)
#undef GRADTAPE_DEFINE_REDUCTION

namespace {

// The first index along `axis` whose element `wins` over every other (a NaN
// wins over any number, as in NumPy).
template <dtype T, class Wins>
xt::xarray<std::int64_t> arg_extremum(std::string_view op, const source_location& site, const basic_tensor<T>& x,
                                      std::ptrdiff_t axis, Wins wins)
{
    const std::size_t at = detail::normalize_axis(op, site, axis, x.dimension());
    if (x.shape()[at] == 0) {
        detail::fail<argument_error>(op, site,
                                     "axis " + std::to_string(axis) + " of " + detail::format_shape(x.shape()) +
                                         " is empty: there is no element to pick");
    }
    shape_type shape = x.shape();
    shape.erase(shape.begin() + std::ptrdiff_t(at));
    auto indices = xt::xarray<std::int64_t>::from_shape(shape);
    const detail::around_axis parts = detail::split_at(x.shape(), at);
    const T* values = x.value().data();
    for (std::size_t o = 0; o < parts.outer; ++o) {
        for (std::size_t i = 0; i < parts.inner; ++i) {
            const T* line = values + o * parts.length * parts.inner + i;
            std::size_t best = 0;
            for (std::size_t j = 1; j < parts.length && !std::isnan(line[best * parts.inner]); ++j) {
                const T candidate = line[j * parts.inner];
                if (std::isnan(candidate) || wins(candidate, line[best * parts.inner])) {
                    best = j;
                }
            }
            indices.flat(o * parts.inner + i) = std::int64_t(best);
        }
    }
    return indices;
}

}  // namespace

template <dtype T>
xt::xarray<std::int64_t> argmax(const basic_tensor<T>& x, std::ptrdiff_t axis, source_location site)
{
    return arg_extremum("argmax", site, x, axis, std::greater<T>());
}

template <dtype T>
xt::xarray<std::int64_t> argmin(const basic_tensor<T>& x, std::ptrdiff_t axis, source_location site)
{
    return arg_extremum("argmin", site, x, axis, std::less<T>());
}

namespace {

// top_k's values: each row sorted, its first k taken; its routes name them,
// and the gradient goes back along them (ops/routes.hpp).
template <dtype T>
struct top_k_op {
    using value_type = T;
    static constexpr std::string_view name = "top_k";
    static constexpr saved saves = saved::nothing;
    static constexpr bool selects = true;
    std::size_t k;

    shape_type shape(const source_location& site, const shape_type& x) const
    {
        if (x.empty() || k > x.back()) {
            detail::fail<argument_error>(name, site,
                                         "k = " + std::to_string(k) + " needs a last axis of at least k elements, got " +
                                             detail::format_shape(x));
        }
        shape_type out = x;
        out.back() = k;
        return out;
    }
    void forward(xt::xarray<T>& out, xt::xarray<std::int64_t>& routes, const xt::xarray<T>& x) const
    {
        const std::size_t length = x.shape().back();
        const std::size_t rows = length == 0 ? 0 : x.size() / length;
        std::vector<std::size_t> order(length);
        for (std::size_t r = 0; r < rows; ++r) {
            const T* row = x.data() + r * length;
            std::iota(order.begin(), order.end(), std::size_t{0});
            // Largest first, a NaN before any number, equal ones by index. Only
            // the first k are sorted (std::stable_sort also needs a temporary
            // buffer, through an API libstdc++ 12 marks deprecated for Clang 19).
            const auto before = [row](std::size_t a, std::size_t b) {
                return (std::isnan(row[a]) && !std::isnan(row[b])) || row[a] > row[b];
            };
            std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(),
                              [&before](std::size_t a, std::size_t b) {
                                  return before(a, b) || (!before(b, a) && a < b);
                              });
            for (std::size_t j = 0; j < k; ++j) {
                routes.flat(r * k + j) = std::int64_t(r * length + order[j]);
                out.flat(r * k + j) = row[order[j]];
            }
        }
    }
    // grad added where each value came from
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(detail::place_op<T>{args.routes, args.input_shape(0)}, {}, args.grad)};
    }
    // the tangent picked along the routes
    basic_tensor<T> jvp(const detail::jvp_args<T, 1>& args) const
    {
        return detail::apply(detail::pick_op<T>{args.routes}, {}, args.tangents[0]);
    }
};

}  // namespace

template <dtype T>
top_k_result<T> top_k(const basic_tensor<T>& x, std::size_t k, source_location site)
{
    // Its indices are worked out beside the op contract, and a replay would
    // keep the capturing call's.
    if (detail::active_capture()) {
        detail::fail<capture_error>("top_k", site,
                                    "gives indices that a captured function's replays would not compute again: "
                                    "call it outside the captured function, or run that function eagerly "
                                    "(gradtape::run_functions_eagerly(true))");
    }
    auto [values, routes] = detail::apply_routed(top_k_op<T>{k}, site, x);
    // The indices along the last axis, from the routes this call's forward found.
    xt::xarray<std::int64_t> indices = *routes;
    const auto length = std::int64_t(x.shape().back());
    for (std::int64_t& index : indices) {
        index %= length;
    }
    return {std::move(values), std::move(indices)};
}

namespace detail {

std::size_t normalize_axis(std::string_view op, const source_location& site, std::ptrdiff_t axis,
                           std::size_t rank)
{
    const auto signed_rank = static_cast<std::ptrdiff_t>(rank);
    if (axis < -signed_rank || axis >= signed_rank) {
        fail<argument_error>(op, site,
                             "axis " + std::to_string(axis) + " is out of range for a tensor of rank " +
                                 std::to_string(rank));
    }
    return static_cast<std::size_t>(axis < 0 ? axis + signed_rank : axis);
}

xt::svector<std::size_t, 4> normalize_axes(std::string_view op, const source_location& site,
                                           const axes_type& axes, std::size_t rank)
{
    xt::svector<std::size_t, 4> normalized;
    for (std::ptrdiff_t axis : axes) {
        const std::size_t index = normalize_axis(op, site, axis, rank);
        if (std::find(normalized.begin(), normalized.end(), index) != normalized.end()) {
            fail<argument_error>(op, site, "axis " + std::to_string(axis) + " is given more than once");
        }
        normalized.push_back(index);
    }
    return normalized;
}

}  // namespace detail

#define GRADTAPE_INSTANTIATE_REDUCTION_AS(T, NAME)                                                                     \
    template basic_tensor<T> NAME(const basic_tensor<T>&, source_location);                                    \
    template basic_tensor<T> NAME(const basic_tensor<T>&, const axes_type&, bool, source_location);
#define GRADTAPE_INSTANTIATE_REDUCTION(NAME) GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_REDUCTION_AS, NAME)
GRADTAPE_REDUCTIONS(GRADTAPE_INSTANTIATE_REDUCTION)

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template xt::xarray<std::int64_t> argmax(const basic_tensor<T>&, std::ptrdiff_t, source_location);         \
    template xt::xarray<std::int64_t> argmin(const basic_tensor<T>&, std::ptrdiff_t, source_location);         \
    template top_k_result<T> top_k(const basic_tensor<T>&, std::size_t, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
