// Ops that move values without arithmetic: their gradients move them back.
#include <limits>
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
    permutation_type reversed(x.dimension());
    std::iota(reversed.rbegin(), reversed.rend(), 0);
    return transpose(x, reversed, site);
}

template <dtype T>
basic_tensor<T> transpose(const basic_tensor<T>& x, const permutation_type& perm, std::source_location site)
{
    if (perm.size() != x.dimension()) {
        fail<argument_error>("transpose", site,
                             "perm has " + std::to_string(perm.size()) + " axes for a tensor of shape " +
                                 format_shape(x.shape()));
    }
    const auto order = detail::normalize_axes("transpose", site, perm, x.dimension());
    permutation_type inverse(order.size());
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
    detail::check_allocatable("reshape", site, target, sizeof(T));
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
    detail::check_allocatable("broadcast_to", site, shape, sizeof(T));
    return record_op<T>(
        "broadcast_to", site, xt::broadcast(x.value(), shape),
        [from](const basic_tensor<T>& grad) { return detail::sum_to_shape(grad, from); }, x);
}

template <dtype T>
basic_tensor<T> expand_dims(const basic_tensor<T>& x, std::ptrdiff_t axis, std::source_location site)
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
basic_tensor<T> squeeze(const basic_tensor<T>& x, const axes_type& axes, std::source_location site)
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

// A shape seen as (outer, length, inner) around one axis, for row-major copies.
struct around_axis {
    std::size_t outer = 1;
    std::size_t length = 1;
    std::size_t inner = 1;
};

around_axis split_at(const shape_type& shape, std::size_t axis)
{
    around_axis parts;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        (i < axis ? parts.outer : i == axis ? parts.length : parts.inner) *= shape[i];
    }
    return parts;
}

std::size_t one_axis(std::string_view op, const std::source_location& site, std::ptrdiff_t axis, std::size_t rank)
{
    return detail::normalize_axes(op, site, {axis}, rank).front();
}

}  // namespace

template <dtype T>
basic_tensor<T> concat(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis, std::source_location site)
{
    if (values.empty()) {
        fail<argument_error>("concat", site, "needs at least one tensor");
    }
    const shape_type& first = values.front().shape();
    const std::size_t at = one_axis("concat", site, axis, first.size());
    shape_type joined = first;
    joined[at] = 0;
    for (const auto& value : values) {
        shape_type expected = first;
        expected[at] = value.dimension() == first.size() ? value.shape()[at] : 0;
        if (value.shape() != expected) {
            fail<shape_error>("concat", site,
                              "shapes " + format_shape(first) + " and " + format_shape(value.shape()) +
                                  " differ outside axis " + std::to_string(axis));
        }
        joined[at] += value.shape()[at];
    }
    detail::check_allocatable("concat", site, joined, sizeof(T));
    auto result = xt::xarray<T>::from_shape(joined);
    const around_axis out = split_at(joined, at);
    std::vector<std::size_t> offsets;
    std::size_t offset = 0;
    for (const auto& value : values) {
        const around_axis in = split_at(value.shape(), at);
        for (std::size_t o = 0; o < in.outer; ++o) {
            std::copy_n(value.value().data() + o * in.length * in.inner, in.length * in.inner,
                        result.data() + (o * out.length + offset) * out.inner);
        }
        offsets.push_back(offset);
        offset += in.length;
    }
    std::vector<shape_type> shapes;
    for (const auto& value : values) {
        shapes.push_back(value.shape());
    }
    return detail::record_op_of_list<T>(
        "concat", site, std::move(result),
        [at, offsets, shapes](const basic_tensor<T>& grad, detail::input_mask needed) {
            std::vector<basic_tensor<T>> gradients(shapes.size());
            for (std::size_t i = 0; i < shapes.size(); ++i) {
                if (needed[i]) {
                    std::vector<std::size_t> begin(shapes[i].size(), 0);
                    begin[at] = offsets[i];
                    gradients[i] = slice(grad, begin, detail::signed_shape(shapes[i]));
                }
            }
            return gradients;
        },
        values);
}

template <dtype T>
basic_tensor<T> stack(const std::vector<basic_tensor<T>>& values, std::ptrdiff_t axis, std::source_location site)
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
                                   std::ptrdiff_t axis, std::source_location site)
{
    const std::size_t at = one_axis("split", site, axis, x.dimension());
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

// The gradient of slice: `grad` placed at `begin` in zeros of the input's shape.
template <dtype T>
basic_tensor<T> slice_gradient(const basic_tensor<T>& grad, const std::vector<std::size_t>& begin,
                               const shape_type& input_shape)
{
    xt::xarray<T> placed = xt::zeros<T>(input_shape);
    for_each_index(grad.shape(), [&](const std::vector<std::size_t>& index, std::size_t position) {
        placed.flat(flat_position(input_shape, index, begin)) = grad.value().flat(position);
    });
    return detail::record_op<T>(
        "slice_gradient", std::source_location::current(), std::move(placed),
        [begin, extent = detail::signed_shape(grad.shape())](const basic_tensor<T>& g) {
            return slice(g, begin, extent);
        },
        grad);
}

}  // namespace

template <dtype T>
basic_tensor<T> slice(const basic_tensor<T>& x, const std::vector<std::size_t>& begin,
                      const std::vector<std::ptrdiff_t>& size, std::source_location site)
{
    if (begin.size() != x.dimension() || size.size() != x.dimension()) {
        fail<argument_error>("slice", site,
                             "needs one begin and one size per dimension of " + format_shape(x.shape()) + ", got " +
                                 std::to_string(begin.size()) + " and " + std::to_string(size.size()));
    }
    shape_type extent(x.dimension());
    for (std::size_t i = 0; i < x.dimension(); ++i) {
        const std::size_t dim = x.shape()[i];
        const bool to_end = size[i] == -1;
        if (begin[i] > dim || (!to_end && (size[i] < 0 || begin[i] + std::size_t(size[i]) > dim))) {
            fail<argument_error>("slice", site,
                                 "the block at " + std::to_string(begin[i]) + " of size " + std::to_string(size[i]) +
                                     " leaves dimension " + std::to_string(i) + " of " + format_shape(x.shape()));
        }
        extent[i] = to_end ? dim - begin[i] : std::size_t(size[i]);
    }
    auto block = xt::xarray<T>::from_shape(extent);
    for_each_index(extent, [&](const std::vector<std::size_t>& index, std::size_t position) {
        block.flat(position) = x.value().flat(flat_position(x.shape(), index, begin));
    });
    return detail::record_op<T>(
        "slice", site, std::move(block),
        [begin, shape = x.shape()](const basic_tensor<T>& grad) { return slice_gradient(grad, begin, shape); }, x);
}

namespace {

// The gradient of gather: `grad`'s rows added into zeros of the params' shape.
template <dtype T>
basic_tensor<T> scatter_add(const basic_tensor<T>& grad, const xt::xarray<std::int64_t>& indices, std::size_t axis,
                            const shape_type& params_shape)
{
    xt::xarray<T> total = xt::zeros<T>(params_shape);
    const around_axis rows = split_at(params_shape, axis);
    const T* source = grad.value().data();
    for (std::size_t o = 0; o < rows.outer; ++o) {
        for (std::size_t j = 0; j < indices.size(); ++j, source += rows.inner) {
            T* target = total.data() + (o * rows.length + std::size_t(indices.flat(j))) * rows.inner;
            for (std::size_t k = 0; k < rows.inner; ++k) {
                target[k] += source[k];
            }
        }
    }
    return detail::record_op<T>(
        "gather_gradient", std::source_location::current(), std::move(total),
        [indices, axis](const basic_tensor<T>& g) {
            return gather(g, indices, static_cast<std::ptrdiff_t>(axis));
        },
        grad);
}

}  // namespace

template <dtype T>
basic_tensor<T> gather(const basic_tensor<T>& params, const xt::xarray<std::int64_t>& indices, std::ptrdiff_t axis,
                       std::source_location site)
{
    const std::size_t at = one_axis("gather", site, axis, params.dimension());
    const around_axis rows = split_at(params.shape(), at);
    for (std::int64_t index : indices) {
        if (index < 0 || std::size_t(index) >= rows.length) {
            fail<argument_error>("gather", site,
                                 "index " + std::to_string(index) + " is out of range for dimension " +
                                     std::to_string(at) + " of " + format_shape(params.shape()));
        }
    }
    shape_type shape(params.shape().begin(), params.shape().begin() + std::ptrdiff_t(at));
    shape.insert(shape.end(), indices.shape().begin(), indices.shape().end());
    shape.insert(shape.end(), params.shape().begin() + std::ptrdiff_t(at) + 1, params.shape().end());
    detail::check_allocatable("gather", site, shape, sizeof(T));
    auto picked = xt::xarray<T>::from_shape(shape);
    T* target = picked.data();
    for (std::size_t o = 0; o < rows.outer; ++o) {
        for (std::size_t j = 0; j < indices.size(); ++j, target += rows.inner) {
            std::copy_n(params.value().data() + (o * rows.length + std::size_t(indices.flat(j))) * rows.inner,
                        rows.inner, target);
        }
    }
    return detail::record_op<T>(
        "gather", site, std::move(picked),
        [indices, at, shape = params.shape()](const basic_tensor<T>& grad) {
            return scatter_add(grad, indices, at, shape);
        },
        params);
}

template <dtype T>
basic_tensor<T> one_hot(const xt::xarray<std::int64_t>& indices, std::size_t depth, std::source_location site)
{
    shape_type shape = indices.shape();
    shape.push_back(depth);
    detail::check_allocatable("one_hot", site, shape, sizeof(T));
    xt::xarray<T> encoded = xt::zeros<T>(shape);
    for (std::size_t i = 0; i < indices.size(); ++i) {
        const std::int64_t index = indices.flat(i);
        if (index >= 0 && std::size_t(index) < depth) {
            encoded.flat(i * depth + std::size_t(index)) = T(1);
        }
    }
    return encoded;
}

template <dtype T>
basic_tensor<T> tile(const basic_tensor<T>& x, const std::vector<std::size_t>& multiples, std::source_location site)
{
    if (multiples.size() != x.dimension()) {
        fail<argument_error>("tile", site,
                             std::to_string(multiples.size()) + " multiples for a tensor of shape " +
                                 format_shape(x.shape()));
    }
    shape_type tiled_shape = x.shape();
    for (std::size_t i = 0; i < multiples.size(); ++i) {
        // An overflowing dimension becomes one no array can have, which check_allocatable refuses.
        if (__builtin_mul_overflow(tiled_shape[i], multiples[i], &tiled_shape[i])) {
            tiled_shape[i] = std::numeric_limits<std::size_t>::max();
        }
    }
    detail::check_allocatable("tile", site, tiled_shape, sizeof(T));
    auto tiled = xt::xarray<T>::from_shape(tiled_shape);
    const std::vector<std::size_t> no_offset(x.dimension(), 0);
    std::vector<std::size_t> source(x.dimension());
    for_each_index(tiled_shape, [&](const std::vector<std::size_t>& index, std::size_t position) {
        for (std::size_t i = 0; i < index.size(); ++i) {
            source[i] = index[i] % x.shape()[i];
        }
        tiled.flat(position) = x.value().flat(flat_position(x.shape(), source, no_offset));
    });
    return detail::record_op<T>(
        "tile", site, std::move(tiled),
        [multiples, shape = x.shape()](const basic_tensor<T>& grad) {
            // Output dimension i indexes (repetition, original): view it as
            // (multiples[i], shape[i]) and sum over the repetitions.
            std::vector<std::ptrdiff_t> interleaved;
            axes_type repetitions;
            for (std::size_t i = 0; i < shape.size(); ++i) {
                repetitions.push_back(static_cast<std::ptrdiff_t>(interleaved.size()));
                interleaved.push_back(static_cast<std::ptrdiff_t>(multiples[i]));
                interleaved.push_back(static_cast<std::ptrdiff_t>(shape[i]));
            }
            return reshape(reduce_sum(reshape(grad, interleaved), repetitions), detail::signed_shape(shape));
        },
        x);
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
    template basic_tensor<T> transpose(const basic_tensor<T>&, const permutation_type&, std::source_location);      \
    template basic_tensor<T> reshape(const basic_tensor<T>&, const std::vector<std::ptrdiff_t>&,                    \
                                     std::source_location);                                                         \
    template basic_tensor<T> broadcast_to(const basic_tensor<T>&, const shape_type&, std::source_location);         \
    template basic_tensor<T> stop_gradient(const basic_tensor<T>&, std::source_location);                           \
    template basic_tensor<T> expand_dims(const basic_tensor<T>&, std::ptrdiff_t, std::source_location);             \
    template basic_tensor<T> squeeze(const basic_tensor<T>&, const axes_type&, std::source_location);               \
    template basic_tensor<T> concat(const std::vector<basic_tensor<T>>&, std::ptrdiff_t, std::source_location);     \
    template basic_tensor<T> stack(const std::vector<basic_tensor<T>>&, std::ptrdiff_t, std::source_location);      \
    template std::vector<basic_tensor<T>> split(const basic_tensor<T>&, const std::vector<std::size_t>&,           \
                                                std::ptrdiff_t, std::source_location);                              \
    template basic_tensor<T> slice(const basic_tensor<T>&, const std::vector<std::size_t>&,                        \
                                   const std::vector<std::ptrdiff_t>&, std::source_location);                       \
    template basic_tensor<T> gather(const basic_tensor<T>&, const xt::xarray<std::int64_t>&, std::ptrdiff_t,        \
                                    std::source_location);                                                          \
    template basic_tensor<T> one_hot(const xt::xarray<std::int64_t>&, std::size_t, std::source_location);          \
    template basic_tensor<T> tile(const basic_tensor<T>&, const std::vector<std::size_t>&, std::source_location);   \
    template basic_tensor<T> detail::sum_to_shape(const basic_tensor<T>&, const shape_type&);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
