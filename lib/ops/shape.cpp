// Ops that move values without arithmetic: their gradients move them back.
#include <algorithm>
#include <limits>
#include <span>
#include <numeric>
#include <optional>


#include "ops/op.hpp"
#include "kernels/strided.hpp"

namespace gradtape {

using detail::around_axis;
using detail::backward_args;
using detail::fail;
using detail::format_shape;
using detail::saved;
using detail::split_at;

namespace {

template <dtype T>
struct transpose_op {
    using value_type = T;
    static constexpr std::string_view name = "transpose";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    permutation_type perm;

    shape_type shape(const source_location& site, const shape_type& x) const
    {
        if (perm.size() != x.size()) {
            fail<argument_error>(name, site,
                                 "perm has " + std::to_string(perm.size()) + " axes for a tensor of shape " +
                                     format_shape(x));
        }
        const auto order = detail::normalize_axes(name, site, perm, x.size());
        shape_type out(x.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            out[i] = x[order[i]];
        }
        return out;
    }
    // Runs along the output, read from x through its permuted strides: a
    // copy where the last axis stays last, a strided gather otherwise.
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        const auto order = detail::normalize_axes(name, {}, perm, x.dimension());
        std::array<detail::axis_counts, 1> strides{detail::axis_counts(order.size())};
        for (std::size_t i = 0; i < order.size(); ++i) {
            strides[0][i] = x.strides()[order[i]];
        }
        const T* from = x.data();
        T* to = out.data();
        detail::for_each_run(out.shape(), strides,
                             [&](std::size_t at, std::array<std::size_t, 1> start, std::size_t length,
                                 std::array<std::size_t, 1> step) {
                                 if (step[0] == 1) {
                                     std::copy_n(from + start[0], length, to + at);
                                     return;
                                 }
                                 for (std::size_t i = 0; i < length; ++i) {
                                     to[at + i] = from[start[0] + i * step[0]];
                                 }
                             });
    }
    // transpose(grad, inverse of perm)
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const auto order = detail::normalize_axes(name, {}, perm, perm.size());
        permutation_type inverse(order.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            inverse[order[i]] = static_cast<std::ptrdiff_t>(i);
        }
        return {transpose(args.grad, inverse)};
    }
};

template <dtype T>
struct reshape_op {
    using value_type = T;
    static constexpr std::string_view name = "reshape";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    std::vector<std::ptrdiff_t> requested;

    shape_type shape(const source_location& site, const shape_type& x) const
    {
        std::size_t size = 1;
        for (std::size_t dim : x) {
            size *= dim;
        }
        const auto refuse = [&](const std::string& why) {
            std::string wanted = "(";
            for (std::size_t i = 0; i < requested.size(); ++i) {
                wanted += (i ? ", " : "") + std::to_string(requested[i]);
            }
            fail<shape_error>(name, site,
                              "cannot reshape " + format_shape(x) + " (" + std::to_string(size) + " elements) to " +
                                  wanted + (requested.size() == 1 ? ",)" : ")") + ": " + why);
        };
        shape_type target(requested.size(), 1);
        std::optional<std::size_t> inferred;
        std::size_t known = 1;
        for (std::size_t i = 0; i < requested.size(); ++i) {
            if (requested[i] == -1 && !inferred) {
                inferred = i;
            } else if (requested[i] < 0) {
                refuse("a dimension is negative (one -1, for a dimension to infer, is allowed)");
            } else {
                target[i] = static_cast<std::size_t>(requested[i]);
                known *= target[i];
            }
        }
        detail::check_allocatable(name, site, target, sizeof(T));
        if (inferred) {
            if (known == 0 || size % known != 0) {
                refuse("no size for the -1 dimension gives that many elements");
            }
            target[*inferred] = size / known;
        } else if (known != size) {
            refuse("the element counts differ");
        }
        return target;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const { std::ranges::copy(x.storage(), out.data()); }
    // grad in the input's shape
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {reshape(args.grad, detail::signed_shape(args.input_shape(0)))};
    }
};

template <dtype T>
struct broadcast_to_op {
    using value_type = T;
    static constexpr std::string_view name = "broadcast_to";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    shape_type target;

    shape_type shape(const source_location& site, const shape_type& from) const
    {
        bool fits = from.size() <= target.size();
        for (std::size_t i = 1; fits && i <= from.size(); ++i) {
            const std::size_t dim = from[from.size() - i];
            fits = dim == 1 || dim == target[target.size() - i];
        }
        if (!fits) {
            fail<shape_error>(name, site, "cannot broadcast " + format_shape(from) + " to " + format_shape(target));
        }
        return target;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const { detail::broadcast_copy(out, x); }
    // grad, which the core sums back to the input's shape
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const { return {args.grad}; }
};

}  // namespace

template <dtype T>
basic_tensor<T> transpose(const basic_tensor<T>& x, source_location site)
{
    permutation_type reversed(x.dimension());
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    return transpose(x, reversed, site);
}

template <dtype T>
basic_tensor<T> transpose(const basic_tensor<T>& x, const permutation_type& perm, source_location site)
{
    return detail::apply(transpose_op<T>{perm}, site, x);
}

template <dtype T>
basic_tensor<T> reshape(const basic_tensor<T>& x, const std::vector<std::ptrdiff_t>& shape, source_location site)
{
    return detail::apply(reshape_op<T>{shape}, site, x);
}

template <dtype T>
basic_tensor<T> broadcast_to(const basic_tensor<T>& x, const shape_type& shape, source_location site)
{
    return detail::apply(broadcast_to_op<T>{shape}, site, x);
}

template <dtype T>
basic_tensor<T> expand_dims(const basic_tensor<T>& x, std::ptrdiff_t axis, source_location site)
{
    const auto rank = static_cast<std::ptrdiff_t>(x.dimension());
    if (axis < -rank - 1 || axis > rank) {
        fail<argument_error>("expand_dims", site,
                             "axis " + std::to_string(axis) + " is out of range for a tensor of shape " +
                                 format_shape(x.shape()));
    }
    auto shape = detail::signed_shape(x.shape());
    shape.insert(shape.begin() + (axis < 0 ? axis + rank + 1 : axis), 1);
    return reshape(x, shape, site);
}

template <dtype T>
basic_tensor<T> squeeze(const basic_tensor<T>& x, const axes_type& axes, source_location site)
{
    const auto chosen = detail::normalize_axes("squeeze", site, axes, x.dimension());
    std::vector<std::ptrdiff_t> shape;
    for (std::size_t i = 0; i < x.dimension(); ++i) {
        const bool named = std::find(chosen.begin(), chosen.end(), i) != chosen.end();
        if (named && x.shape()[i] != 1) {
            fail<shape_error>("squeeze", site,
                              "dimension " + std::to_string(i) + " of " + format_shape(x.shape()) + " is not 1");
        }
        if (!(named || (chosen.empty() && x.shape()[i] == 1))) {
            shape.push_back(static_cast<std::ptrdiff_t>(x.shape()[i]));
        }
    }
    return reshape(x, shape, site);
}

namespace {

// Calls visit(index, position) for every multi-index of `shape`, in row-major
// order; position counts from 0. Copies here go element by element because
// xtensor 0.24 with xsimd assigns wrongly through strided views.
template <class Visit>
void for_each_index(const shape_type& shape, Visit visit)
{
    std::size_t count = 1;
    for (std::size_t dim : shape) {
        count *= dim;
    }
    std::vector<std::size_t> index(shape.size(), 0);
    for (std::size_t position = 0; position < count; ++position) {
        visit(index, position);
        for (std::size_t i = shape.size(); i-- > 0;) {
            if (++index[i] < shape[i]) {
                break;
            }
            index[i] = 0;
        }
    }
}

// The row-major flat position of `index` shifted by `offset` in an array of `shape`.
std::size_t flat_position(const shape_type& shape, const std::vector<std::size_t>& index,
                          const std::vector<std::size_t>& offset)
{
    std::size_t position = 0;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        position = position * shape[i] + index[i] + offset[i];
    }
    return position;
}

template <dtype T>
struct concat_op {
    using value_type = T;
    static constexpr std::string_view name = "concat";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    std::ptrdiff_t axis;

    shape_type shape(const source_location& site, std::span<const shape_type> inputs) const
    {
        if (inputs.empty()) {
            fail<argument_error>(name, site, "needs at least one tensor");
        }
        const shape_type& first = inputs.front();
        const std::size_t at = detail::normalize_axis(name, site, axis, first.size());
        shape_type joined = first;
        joined[at] = 0;
        for (const shape_type& input : inputs) {
            shape_type expected = first;
            expected[at] = input.size() == first.size() ? input[at] : 0;
            if (input != expected) {
                fail<shape_error>(name, site,
                                  "shapes " + format_shape(first) + " and " + format_shape(input) +
                                      " differ outside axis " + std::to_string(axis));
            }
            joined[at] += input[at];
        }
        return joined;
    }
    void forward(xt::xarray<T>& out, std::span<const xt::xarray<T>* const> inputs) const
    {
        const std::size_t at = detail::normalize_axis(name, {}, axis, out.dimension());
        const around_axis whole = split_at(out.shape(), at);
        std::size_t offset = 0;
        for (const xt::xarray<T>* input : inputs) {
            const around_axis part = split_at(input->shape(), at);
            for (std::size_t o = 0; o < part.outer; ++o) {
                std::copy_n(input->data() + o * part.length * part.inner, part.length * part.inner,
                            out.data() + (o * whole.length + offset) * whole.inner);
            }
            offset += part.length;
        }
    }
    // each input's block of grad along the axis
    std::vector<basic_tensor<T>> backward(const backward_args<T, std::dynamic_extent>& args) const
    {
        const std::size_t at = detail::normalize_axis(name, {}, axis, args.grad.dimension());
        std::vector<basic_tensor<T>> gradients(args.input_count());
        std::size_t offset = 0;
        for (std::size_t i = 0; i < gradients.size(); ++i) {
            const shape_type& input = args.input_shape(i);
            if (args.needed[i]) {
                std::vector<std::size_t> begin(input.size(), 0);
                begin[at] = offset;
                gradients[i] = slice(args.grad, begin, detail::signed_shape(input));
            }
            offset += input[at];
        }
        return gradients;
    }
};

// The gradient of slice: `grad` placed at `begin` in zeros of the input's shape.
template <dtype T>
struct slice_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "slice_gradient";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    std::vector<std::size_t> begin;
    shape_type input;

    shape_type shape(const source_location&, const shape_type&) const { return input; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad) const
    {
        out.fill(T(0));
        detail::place_block(out, grad, begin);
    }
    // the block of g at begin
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {slice(args.grad, begin, detail::signed_shape(args.input_shape(0)))};
    }
};

template <dtype T>
struct slice_op {
    using value_type = T;
    static constexpr std::string_view name = "slice";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    std::vector<std::size_t> begin;
    std::vector<std::ptrdiff_t> size;

    shape_type shape(const source_location& site, const shape_type& x) const
    {
        if (begin.size() != x.size() || size.size() != x.size()) {
            fail<argument_error>(name, site,
                                 "needs one begin and one size per dimension of " + format_shape(x) + ", got " +
                                     std::to_string(begin.size()) + " and " + std::to_string(size.size()));
        }
        shape_type extent(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
            const bool to_end = size[i] == -1;
            if (begin[i] > x[i] || (!to_end && (size[i] < 0 || begin[i] + std::size_t(size[i]) > x[i]))) {
                fail<argument_error>(name, site,
                                     "the block at " + std::to_string(begin[i]) + " of size " +
                                         std::to_string(size[i]) + " leaves dimension " + std::to_string(i) + " of " +
                                         format_shape(x));
            }
            extent[i] = to_end ? x[i] - begin[i] : std::size_t(size[i]);
        }
        return extent;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        detail::take_block(out, x, begin);
    }
    // grad placed at begin in zeros of the input's shape
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(slice_gradient_op<T>{begin, args.input_shape(0)}, source_location::current(),
                              args.grad)};
    }
};

template <dtype T>
struct gather_op;

// The gradient of gather: `grad`'s rows added into zeros of the params' shape.
template <dtype T>
struct gather_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "gather_gradient";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    detail::index_array indices;
    std::size_t axis;
    shape_type params;

    shape_type shape(const source_location&, const shape_type&) const { return params; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad) const
    {
        out.fill(T(0));
        const around_axis rows = split_at(params, axis);
        const T* source = grad.data();
        for (std::size_t o = 0; o < rows.outer; ++o) {
            for (std::size_t j = 0; j < indices->size(); ++j, source += rows.inner) {
                T* target = out.data() + (o * rows.length + std::size_t(indices->flat(j))) * rows.inner;
                for (std::size_t k = 0; k < rows.inner; ++k) {
                    target[k] += source[k];
                }
            }
        }
    }
    // the rows of g that were added
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(gather_op<T>{indices, static_cast<std::ptrdiff_t>(axis), {}}, {}, args.grad)};
    }
};

// The indices are read when the kernel runs (a replay's are its call's), so
// the kernel checks them.
template <dtype T>
struct gather_op {
    using value_type = T;
    static constexpr std::string_view name = "gather";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    detail::index_array indices;
    std::ptrdiff_t axis;
    source_location site;

    shape_type shape(const source_location& at_site, const shape_type& params) const
    {
        const std::size_t at = detail::normalize_axis(name, at_site, axis, params.size());
        shape_type out(params.begin(), params.begin() + std::ptrdiff_t(at));
        out.insert(out.end(), indices->shape().begin(), indices->shape().end());
        out.insert(out.end(), params.begin() + std::ptrdiff_t(at) + 1, params.end());
        return out;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& params) const
    {
        const std::size_t at = detail::normalize_axis(name, site, axis, params.dimension());
        for (std::int64_t index : *indices) {
            if (index < 0 || std::size_t(index) >= params.shape()[at]) {
                fail<argument_error>(name, site,
                                     "index " + std::to_string(index) + " is out of range for dimension " +
                                         std::to_string(at) + " of " + format_shape(params.shape()));
            }
        }
        const around_axis rows = split_at(params.shape(), at);
        T* target = out.data();
        for (std::size_t o = 0; o < rows.outer; ++o) {
            for (std::size_t j = 0; j < indices->size(); ++j, target += rows.inner) {
                std::copy_n(params.data() + (o * rows.length + std::size_t(indices->flat(j))) * rows.inner, rows.inner,
                            target);
            }
        }
    }
    // grad's rows added into zeros of the params' shape (repeated indices add up)
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const shape_type& params = args.input_shape(0);
        const std::size_t at = detail::normalize_axis(name, {}, axis, params.size());
        return {detail::apply(gather_gradient_op<T>{indices, at, params}, source_location::current(), args.grad)};
    }
};

// One row of `depth` per index, 1 at the index and 0 elsewhere; an index out
// of range gives a row of zeros, or, for an op that needs class indices
// (`checked_for`), an argument_error naming it.
template <dtype T>
struct one_hot_op {
    using value_type = T;
    static constexpr std::string_view name = "one_hot";
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    detail::index_array indices;
    std::size_t depth;
    std::string_view checked_for;
    source_location site;

    shape_type shape(const source_location&) const
    {
        shape_type out = indices->shape();
        out.push_back(depth);
        return out;
    }
    void forward(xt::xarray<T>& out) const
    {
        out.fill(T(0));
        for (std::size_t i = 0; i < indices->size(); ++i) {
            const std::int64_t index = indices->flat(i);
            if (index >= 0 && std::size_t(index) < depth) {
                out.flat(i * depth + std::size_t(index)) = T(1);
            } else if (!checked_for.empty()) {
                fail<argument_error>(checked_for, site,
                                     "label " + std::to_string(index) + " is not a class index in [0, " +
                                         std::to_string(depth) + ")");
            }
        }
    }
};

template <dtype T>
struct tile_op {
    using value_type = T;
    static constexpr std::string_view name = "tile";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    std::vector<std::size_t> multiples;

    shape_type shape(const source_location& site, const shape_type& x) const
    {
        if (multiples.size() != x.size()) {
            fail<argument_error>(name, site,
                                 std::to_string(multiples.size()) + " multiples for a tensor of shape " +
                                     format_shape(x));
        }
        shape_type tiled = x;
        for (std::size_t i = 0; i < multiples.size(); ++i) {
            // An overflowing dimension becomes one no array can have, which apply() refuses.
            if (__builtin_mul_overflow(tiled[i], multiples[i], &tiled[i])) {
                tiled[i] = std::numeric_limits<std::size_t>::max();
            }
        }
        return tiled;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        const std::vector<std::size_t> no_offset(x.dimension(), 0);
        std::vector<std::size_t> source(x.dimension());
        for_each_index(out.shape(), [&](const std::vector<std::size_t>& index, std::size_t position) {
            for (std::size_t i = 0; i < index.size(); ++i) {
                source[i] = index[i] % x.shape()[i];
            }
            out.flat(position) = x.flat(flat_position(x.shape(), source, no_offset));
        });
    }
    // Output dimension i indexes (repetition, original): view grad as
    // (multiples[i], shape[i]) pairs and sum over the repetitions.
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const shape_type& shape = args.input_shape(0);
        std::vector<std::ptrdiff_t> interleaved;
        axes_type repetitions;
        for (std::size_t i = 0; i < shape.size(); ++i) {
            repetitions.push_back(static_cast<std::ptrdiff_t>(interleaved.size()));
            interleaved.push_back(static_cast<std::ptrdiff_t>(multiples[i]));
            interleaved.push_back(static_cast<std::ptrdiff_t>(shape[i]));
        }
        return {reshape(reduce_sum(reshape(args.grad, interleaved), repetitions), detail::signed_shape(shape))};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> concat(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis, source_location site)
{
    return detail::apply_list(concat_op<T>{axis}, site, values);
}

template <dtype T>
basic_tensor<T> stack(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis, source_location site)
{
    if (values.empty()) {
        fail<argument_error>("stack", site, "needs at least one tensor");
    }
    for (const auto& value : values) {
        if (value.shape() != values.front().shape()) {
            fail<shape_error>("stack", site,
                              "shapes " + format_shape(values.front().shape()) + " and " +
                                  format_shape(value.shape()) + " differ");
        }
    }
    std::vector<basic_tensor<T>> expanded;
    for (const auto& value : values) {
        expanded.push_back(expand_dims(value, axis, site));
    }
    return concat(expanded, axis, site);
}

template <dtype T>
std::vector<basic_tensor<T>> split(const basic_tensor<T>& x, const std::vector<std::size_t>& sizes,
                                   std::ptrdiff_t axis, source_location site)
{
    const std::size_t at = detail::normalize_axis("split", site, axis, x.dimension());
    if (std::accumulate(sizes.begin(), sizes.end(), std::size_t{0}) != x.shape()[at]) {
        fail<shape_error>("split", site,
                          "the sizes add up to " +
                              std::to_string(std::accumulate(sizes.begin(), sizes.end(), std::size_t{0})) +
                              ", not to dimension " + std::to_string(at) + " of " + format_shape(x.shape()));
    }
    std::vector<basic_tensor<T>> pieces;
    std::vector<std::size_t> begin(x.dimension(), 0);
    auto size = detail::signed_shape(x.shape());
    for (std::size_t piece : sizes) {
        size[at] = static_cast<std::ptrdiff_t>(piece);
        pieces.push_back(slice(x, begin, size, site));
        begin[at] += piece;
    }
    return pieces;
}

template <dtype T>
basic_tensor<T> slice(const basic_tensor<T>& x, const std::vector<std::size_t>& begin,
                      const std::vector<std::ptrdiff_t>& size, source_location site)
{
    return detail::apply(slice_op<T>{begin, size}, site, x);
}

template <dtype T>
basic_tensor<T> gather(const basic_tensor<T>& params, const xt::xarray<std::int64_t>& indices, std::ptrdiff_t axis,
                       source_location site)
{
    return detail::apply(gather_op<T>{detail::share_indices(indices), axis, site}, site, params);
}

template <dtype T>
basic_tensor<T> one_hot(const xt::xarray<std::int64_t>& indices, std::size_t depth, source_location site)
{
    return detail::apply(one_hot_op<T>{detail::share_indices(indices), depth, {}, site}, site);
}

template <dtype T>
basic_tensor<T> detail::class_indicators(const xt::xarray<std::int64_t>& labels, std::size_t classes,
                                         std::string_view op, const source_location& site)
{
    return detail::apply(one_hot_op<T>{detail::share_indices(labels), classes, op, site}, site);
}

template <dtype T>
basic_tensor<T> tile(const basic_tensor<T>& x, const std::vector<std::size_t>& multiples, source_location site)
{
    return detail::apply(tile_op<T>{multiples}, site, x);
}

namespace {

// A copy of x that no tape records: gradients stop there.
template <dtype T>
struct stop_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "stop_gradient";
    static constexpr detail::saved saves = detail::saved::nothing;
    static constexpr bool recorded = false;
    shape_type shape(const source_location&, const shape_type& x) const { return x; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const { std::copy_n(x.data(), x.size(), out.data()); }
};

}  // namespace

template <dtype T>
basic_tensor<T> stop_gradient(const basic_tensor<T>& x, source_location site)
{
    return detail::apply(stop_gradient_op<T>{}, site, x);
}

namespace detail {

// Note [Core functions made of ops] (core/tape_core.hpp).
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

}  // namespace detail

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> transpose(const basic_tensor<T>&, source_location);                               \
    template basic_tensor<T> transpose(const basic_tensor<T>&, const permutation_type&, source_location);      \
    template basic_tensor<T> reshape(const basic_tensor<T>&, const std::vector<std::ptrdiff_t>&,                    \
                                     source_location);                                                         \
    template basic_tensor<T> broadcast_to(const basic_tensor<T>&, const shape_type&, source_location);         \
    template basic_tensor<T> stop_gradient(const basic_tensor<T>&, source_location);                           \
    template basic_tensor<T> expand_dims(const basic_tensor<T>&, std::ptrdiff_t, source_location);             \
    template basic_tensor<T> squeeze(const basic_tensor<T>&, const axes_type&, source_location);               \
    template basic_tensor<T> concat(const std::vector<basic_tensor<T>>&, std::ptrdiff_t, source_location);     \
    template basic_tensor<T> stack(const std::vector<basic_tensor<T>>&, std::ptrdiff_t, source_location);      \
    template std::vector<basic_tensor<T>> split(const basic_tensor<T>&, const std::vector<std::size_t>&,           \
                                                std::ptrdiff_t, source_location);                              \
    template basic_tensor<T> slice(const basic_tensor<T>&, const std::vector<std::size_t>&,                        \
                                   const std::vector<std::ptrdiff_t>&, source_location);                       \
    template basic_tensor<T> gather(const basic_tensor<T>&, const xt::xarray<std::int64_t>&, std::ptrdiff_t,        \
                                    source_location);                                                          \
    template basic_tensor<T> one_hot(const xt::xarray<std::int64_t>&, std::size_t, source_location);          \
    template basic_tensor<T> detail::class_indicators(const xt::xarray<std::int64_t>&, std::size_t, std::string_view, \
                                                      const source_location&);          \
    template basic_tensor<T> tile(const basic_tensor<T>&, const std::vector<std::size_t>&, source_location);   \
    template basic_tensor<T> detail::sum_to_shape(const basic_tensor<T>&, const shape_type&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
