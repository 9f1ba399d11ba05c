// The kernels of the convolutions and pools over NHWC data (ops/conv.cpp
// holds their ops): the geometry a shape rule plans, and one entry point per
// op. A convolution goes by im2col (kernels/conv.cpp) or by Winograd's
// minimal filtering (kernels/winograd_conv.cpp), as its plan and its data
// allow.
#pragma once

#include <cstddef>
#include <cstdint>

#include <gradtape/nn.hpp>
#include <gradtape/tensor.hpp>

namespace gradtape::detail {

// Where a convolution's windows fall: the input (N, H, W, C), the filters
// (KH, KW, C, O), the output (N, OH, OW, O), and the steps between. A pool
// is a convolution of each channel alone: O is C.
struct conv_geometry {
    std::size_t n, h, w, c;
    std::size_t kh, kw, o;
    std::size_t oh, ow;
    std::size_t stride_h, stride_w, dilation_h, dilation_w;
    std::size_t pad_top, pad_left;

    [[nodiscard]] std::size_t patch() const { return kh * kw * c; }
    [[nodiscard]] std::size_t positions() const { return oh * ow; }
    [[nodiscard]] shape_type output_shape() const { return {n, oh, ow, o}; }
};

// What a convolution's shape rule hands its kernel: the geometry, and the
// algorithm asked for (the process's setting where the call left it to that).
struct conv_plan {
    conv_geometry g;
    conv_algorithm algorithm;
    [[nodiscard]] shape_type output_shape() const { return g.output_shape(); }
};

// Whether Winograd's minimal filtering can compute the convolution: unit
// strides and dilations and a 3x3 or 5x5 kernel.
bool winograd_applies(const conv_geometry& g);

// The three products of a convolution, each the others' adjoint: the output
// of conv2d, the input's gradient (conv2d_transpose) and the filters'
// gradient. Each writes all of `out`.
template <class T>
void conv2d(const conv_plan& plan, const T* input, const T* filters, T* out);
template <class T>
void conv2d_transpose(const conv_plan& plan, const T* grad, const T* filters, T* out);
template <class T>
void conv2d_filter_gradient(const conv_plan& plan, const T* input, const T* grad, T* out);

// A max pool's values, and for each the flat index into the input of the
// element it took: the first largest of its window, or its first NaN.
template <class T>
void max_pool(const conv_geometry& g, const T* input, T* out, std::int64_t* routes);
// The mean of each window's elements inside the input, and its adjoint.
template <class T>
void avg_pool(const conv_geometry& g, const T* input, T* out);
template <class T>
void avg_pool_gradient(const conv_geometry& g, const T* grad, T* out);

// depthwise_conv2d with filters (KH, KW, C, M) (M is g.o): output channel
// c * M + m from input channel c and filter[..., c, m]; the input's gradient
// and the filters', its adjoints.
template <class T>
void depthwise_conv2d(const conv_geometry& g, const T* input, const T* filter, T* out);
template <class T>
void depthwise_input_gradient(const conv_geometry& g, const T* grad, const T* filter, T* out);
template <class T>
void depthwise_filter_gradient(const conv_geometry& g, const T* input, const T* grad, T* out);

// Winograd's path for the three products (kernels/winograd_conv.cpp), for
// convolutions where winograd_applies.
template <class T>
void winograd_conv2d(const conv_geometry& g, const T* input, const T* filters, T* out);
template <class T>
void winograd_conv2d_transpose(const conv_geometry& g, const T* grad, const T* filters, T* out);
template <class T>
void winograd_filter_gradient(const conv_geometry& g, const T* input, const T* grad, T* out);

}  // namespace gradtape::detail
