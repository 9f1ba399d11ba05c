// What the convolution ops (conv.cpp) share with their Winograd kernels
// (winograd.cpp): the geometry of a convolution, and the kernels' entry points.
#pragma once

#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

#include <gradtape/tensor.hpp>

#include "kernels/arithmetic.hpp"

namespace gradtape::detail {

// Where a convolution's windows fall: the input (N, H, W, C), the filters
// (KH, KW, C, O), the output (N, OH, OW, O), and the steps between.
struct conv_geometry {
    std::size_t n, h, w, c;
    std::size_t kh, kw, o;
    std::size_t oh, ow;
    std::size_t stride_h, stride_w, dilation_h, dilation_w;
    std::size_t pad_top, pad_left;

    [[nodiscard]] std::size_t patch() const { return kh * kw * c; }
    [[nodiscard]] std::size_t positions() const { return oh * ow; }
    [[nodiscard]] shape_type input_shape() const { return {n, h, w, c}; }
    [[nodiscard]] shape_type filter_shape() const { return {kh, kw, c, o}; }
    [[nodiscard]] shape_type output_shape() const { return {n, oh, ow, o}; }
};

// Calls work(worker) for workers 0..workers - 1, each on a thread of its
// own, worker 0 on this one. An exception on any thread is rethrown here once
// all have finished.
template <class Work>
void on_threads(std::size_t workers, Work work)
{
    std::vector<std::exception_ptr> failures(workers);
    const auto run = [&](std::size_t worker) {
        try {
            work(worker);
        } catch (...) {
            failures[worker] = std::current_exception();
        }
    };
    {
        std::vector<std::jthread> threads;
        for (std::size_t worker = 1; worker < workers; ++worker) {
            threads.emplace_back(run, worker);
        }
        run(0);
    }
    for (const std::exception_ptr& failure : failures) {
        if (failure) {
            std::rethrow_exception(failure);
        }
    }
}

// A filter gradient summed over images on several threads: worker 0 adds
// into `total`, the others into sums of their own, which add_up adds into
// `total` in thread order, so that a given thread count always gives the
// same result.
template <class T>
struct thread_sums {
    T* total;
    std::size_t size;
    std::vector<std::vector<T>> others;

    thread_sums(T* into, std::size_t count, std::size_t workers)
        : total(into), size(count), others(workers - 1, std::vector<T>(count, T(0)))
    {
    }
    [[nodiscard]] T* of(std::size_t worker) { return worker == 0 ? total : others[worker - 1].data(); }
    void add_up()
    {
        for (const std::vector<T>& sum : others) {
            arithmetic_same(arithmetic::add, total, sum.data(), total, size);
        }
    }
};

// Whether Winograd's minimal filtering can compute the convolution: unit
// strides and dilations and a 3x3 or 5x5 kernel.
bool winograd_applies(const conv_geometry& g);
// Whether it is also the faster way: channels enough on both sides for the
// tile transforms to pay.
bool suits_winograd(const conv_geometry& g);

// The three products of a convolution, as conv.cpp's ops define them: the
// output of conv2d, the input's gradient (conv2d_transpose) and the filters'
// gradient. Each writes all of `out`.
template <class T>
void winograd_conv2d(const conv_geometry& g, const T* input, const T* filters, T* out);
template <class T>
void winograd_conv2d_transpose(const conv_geometry& g, const T* grad, const T* filters, T* out);
template <class T>
void winograd_filter_gradient(const conv_geometry& g, const T* input, const T* grad, T* out);

}  // namespace gradtape::detail
