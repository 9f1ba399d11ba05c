// A walk over a row-major output whose operands are read through strides of
// their own: a broadcast operand has stride 0 along the axes it repeats, a
// transposed one has its axes' strides permuted. Axes that the strides let
// run on as one are merged first, so that the innermost run is as long as it
// can be and the caller's loop over it is contiguous wherever it can be.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <type_traits>
#include <utility>

#include <gradtape/tensor.hpp>

#include "kernels/arithmetic.hpp"

#include <xtensor/xarray.hpp>

namespace gradtape::detail {

// Per-axis counts of a walk, kept on the stack up to rank 8: a kernel's
// scratch allocates nothing for the ranks tensors have.
using axis_counts = xt::svector<std::size_t, 8>;

// The row-major strides of an array of `shape`, as seen from an output of
// rank `rank` (the shape aligned to its trailing axes): 0 along each axis the
// array lacks or holds once.
inline axis_counts broadcast_strides(const shape_type& shape, const shape_type& out)
{
    axis_counts strides(out.size(), 0);
    std::size_t stride = 1;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const std::size_t axis = shape.size() - 1 - i;
        const std::size_t out_axis = out.size() - 1 - i;
        if (shape[axis] != 1 || out[out_axis] == 1) {
            strides[out_axis] = stride;
        }
        stride *= shape[axis];
    }
    return strides;
}

// Calls visit(out, from, length, steps) for each innermost run of the walk:
// `length` output elements from flat index `out`, operand k's from flat
// index from[k], every steps[k] elements.
template <std::size_t N, class Visit>
void for_each_run(const shape_type& lengths, const std::array<axis_counts, N>& strides, Visit visit)
{
    axis_counts merged_lengths;
    std::array<axis_counts, N> merged_strides;
    for (std::size_t axis = 0; axis < lengths.size(); ++axis) {
        if (lengths[axis] == 0) {
            return;
        }
        if (lengths[axis] == 1) {
            continue;
        }
        bool joins = !merged_lengths.empty();
        for (std::size_t k = 0; k < N && joins; ++k) {
            joins = merged_strides[k].back() == strides[k][axis] * lengths[axis];
        }
        if (joins) {
            merged_lengths.back() *= lengths[axis];
            for (std::size_t k = 0; k < N; ++k) {
                merged_strides[k].back() = strides[k][axis];
            }
            continue;
        }
        merged_lengths.push_back(lengths[axis]);
        for (std::size_t k = 0; k < N; ++k) {
            merged_strides[k].push_back(strides[k][axis]);
        }
    }
    if (merged_lengths.empty()) {
        visit(std::size_t{0}, std::array<std::size_t, N>{}, std::size_t{1}, std::array<std::size_t, N>{});
        return;
    }
    const std::size_t inner = merged_lengths.size() - 1;
    std::array<std::size_t, N> steps{};
    for (std::size_t k = 0; k < N; ++k) {
        steps[k] = merged_strides[k][inner];
    }
    // An odometer over the outer axes, carrying each operand's offset along.
    axis_counts index(inner, 0);
    std::array<std::size_t, N> from{};
    for (std::size_t out = 0;; out += merged_lengths[inner]) {
        visit(out, from, merged_lengths[inner], steps);
        std::size_t axis = inner;
        while (axis > 0) {
            --axis;
            if (++index[axis] < merged_lengths[axis]) {
                for (std::size_t k = 0; k < N; ++k) {
                    from[k] += merged_strides[k][axis];
                }
                break;
            }
            index[axis] = 0;
            for (std::size_t k = 0; k < N; ++k) {
                from[k] -= merged_strides[k][axis] * (merged_lengths[axis] - 1);
            }
            if (axis == 0) {
                return;
            }
        }
        if (inner == 0) {
            return;
        }
    }
}

// out = f(a, b) with NumPy broadcasting, out already of the broadcast shape.
// xtensor broadcasts through a stepper that visits one element at a time;
// here the axes are merged into runs instead, each a contiguous loop: of
// operands of one shape, of a row against one element (a scalar, a loss, a
// mean subtracted from each row), or of a row against a row (a bias).
// `kernel` runs the loops.
template <class T, class Kernel>
void broadcast_into(xt::xarray<T>& out, const xt::xarray<T>& a, const xt::xarray<T>& b, const Kernel& kernel)
{
    if (out.size() == 0) {
        return;
    }
    const T* pa = a.data();
    const T* pb = b.data();
    T* po = out.data();
    if (a.shape() == b.shape()) {
        kernel.same(pa, pb, po, out.size());
        return;
    }
    // One operand a single element (a scalar, a loss's gradient): one run.
    if (b.size() == 1 && a.size() == out.size()) {
        kernel.scalar_right(pa, *pb, po, out.size());
        return;
    }
    if (a.size() == 1 && b.size() == out.size()) {
        kernel.scalar_left(*pa, pb, po, out.size());
        return;
    }
    const std::array strides{broadcast_strides(a.shape(), out.shape()),
                             broadcast_strides(b.shape(), out.shape())};
    for_each_run(out.shape(), strides,
                 [&](std::size_t at, std::array<std::size_t, 2> from, std::size_t length,
                     std::array<std::size_t, 2> steps) {
                     if (steps[0] == steps[1]) {
                         kernel.same(pa + from[0], pb + from[1], po + at, length);
                     } else if (steps[0] == 0) {
                         kernel.scalar_left(pa[from[0]], pb + from[1], po + at, length);
                     } else {
                         kernel.scalar_right(pa + from[0], pb[from[1]], po + at, length);
                     }
                 });
}

// out = x repeated to out's shape, x's shape broadcasting to it.
template <class T>
void broadcast_copy(xt::xarray<T>& out, const xt::xarray<T>& x)
{
    const T* from = x.data();
    T* to = out.data();
    for_each_run(out.shape(), std::array{broadcast_strides(x.shape(), out.shape())},
                 [&](std::size_t at, std::array<std::size_t, 1> start, std::size_t length,
                     std::array<std::size_t, 1> step) {
                     if (step[0] == 0) {
                         std::fill_n(to + at, length, from[start[0]]);
                     } else {
                         std::copy_n(from + start[0], length, to + at);
                     }
                 });
}

// The row-major strides of `shape`, and the flat position of `begin` in it.
inline std::pair<axis_counts, std::size_t> strides_and_offset(const shape_type& shape,
                                                              std::span<const std::size_t> begin)
{
    axis_counts strides(shape.size(), 0);
    std::size_t stride = 1;
    std::size_t offset = 0;
    for (std::size_t axis = shape.size(); axis-- > 0;) {
        strides[axis] = stride;
        offset += begin[axis] * stride;
        stride *= shape[axis];
    }
    return {strides, offset};
}

// Copies from an array of `from_shape` at `from_begin`, or from a whole
// block when `from_begin` is empty, to one of `to_shape` at `to_begin` (or
// whole), a block of `block_shape`, a contiguous run at a time.
template <class T>
void copy_block_runs(const T* from, const shape_type& from_shape, std::span<const std::size_t> from_begin, T* to,
                     const shape_type& to_shape, std::span<const std::size_t> to_begin, const shape_type& block_shape)
{
    // The walk is over the block, contiguous in whichever side holds it whole.
    const bool block_is_source = from_begin.empty();
    const auto [strides, offset] = block_is_source ? strides_and_offset(to_shape, to_begin)
                                                   : strides_and_offset(from_shape, from_begin);
    for_each_run<1>(block_shape, {strides},
                    [&, offset = offset](std::size_t at, std::array<std::size_t, 1> start, std::size_t length,
                                         std::array<std::size_t, 1> step) {
                        const std::size_t in_array = offset + start[0];
                        const T* source = from + (block_is_source ? at : in_array);
                        T* target = to + (block_is_source ? in_array : at);
                        const std::size_t source_step = block_is_source ? 1 : step[0];
                        const std::size_t target_step = block_is_source ? step[0] : 1;
                        if (step[0] == 1) {
                            std::copy_n(source, length, target);
                            return;
                        }
                        for (std::size_t i = 0; i < length; ++i) {
                            target[i * target_step] = source[i * source_step];
                        }
                    });
}

// out = the block of out's shape at `begin` in x (a slice).
template <class T>
void take_block(xt::xarray<T>& out, const xt::xarray<T>& x, std::span<const std::size_t> begin)
{
    const shape_type block(out.shape().begin(), out.shape().end());
    copy_block_runs(x.data(), shape_type(x.shape().begin(), x.shape().end()), begin, out.data(), block, {}, block);
}

// The block's values written into out at `begin` (a slice's gradient).
template <class T>
void place_block(xt::xarray<T>& out, const xt::xarray<T>& block, std::span<const std::size_t> begin)
{
    const shape_type extent(block.shape().begin(), block.shape().end());
    copy_block_runs(block.data(), extent, {}, out.data(), shape_type(out.shape().begin(), out.shape().end()), begin,
                    extent);
}

// The loops of +, -, * and /: the kernels compiled for the machine's vector width.
template <arithmetic Op>
struct arithmetic_loops {
    template <class T>
    void same(const T* a, const T* b, T* out, std::size_t n) const
    {
        arithmetic_same(Op, a, b, out, n);
    }
    template <class T>
    void scalar_left(T a, const T* b, T* out, std::size_t n) const
    {
        arithmetic_scalar_left(Op, a, b, out, n);
    }
    template <class T>
    void scalar_right(const T* a, T b, T* out, std::size_t n) const
    {
        arithmetic_scalar_right(Op, a, b, out, n);
    }
};

}  // namespace gradtape::detail
