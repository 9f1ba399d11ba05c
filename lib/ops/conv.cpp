// Convolutions and pools over NHWC data; their kernels are in
// lib/kernels/conv.cpp. The three convolution ops are each other's
// gradients: for y = conv2d(x, w),
//   dx = conv2d_transpose(g, w)              (the adjoint of x -> conv2d(x, w))
//   dw = filter_correlation(x, g)            (the adjoint of w -> conv2d(x, w))
// and each of those is linear in both inputs, so its own gradients are the
// other two ops again: derivatives of every order stay exact. The depthwise
// ops, and the average pool with its adjoint, are built the same way.
#include <gradtape/nn.hpp>

#include <atomic>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

#include "kernels/conv.hpp"
#include "ops/op.hpp"
#include "ops/routes.hpp"

namespace gradtape {

using detail::backward_args;
using detail::conv_geometry;
using detail::conv_plan;
using detail::fail;
using detail::format_shape;
using detail::saved;

namespace {

std::string describe(const shape_type& input, const shape_type& filters, const conv2d_options& options)
{
    return "input " + format_shape(input) + ", filters " + format_shape(filters) + ", strides (" +
           std::to_string(options.strides[0]) + ", " + std::to_string(options.strides[1]) + "), dilations (" +
           std::to_string(options.dilations[0]) + ", " + std::to_string(options.dilations[1]) + "), padding " +
           (options.padding == padding::same ? "same" : "valid");
}

// The process's setting, read from GRADTAPE_CONV_ALGORITHM when first asked for.
std::atomic<conv_algorithm>& conv_algorithm_setting(const source_location& site)
{
    static std::atomic<conv_algorithm> setting = [&] {
        const char* chosen = std::getenv("GRADTAPE_CONV_ALGORITHM");
        const std::string name = chosen == nullptr ? "" : chosen;
        if (name.empty() || name == "automatic") {
            return conv_algorithm::automatic;
        }
        if (name == "winograd") {
            return conv_algorithm::winograd;
        }
        if (name != "im2col") {
            fail<argument_error>("GRADTAPE_CONV_ALGORITHM", site,
                                 "must be automatic, winograd or im2col, got '" + name + "'");
        }
        return conv_algorithm::im2col;
    }();
    return setting;
}

// a * b + c, where it is at most PTRDIFF_MAX: the windows' positions are
// computed as signed offsets from the padding.
std::optional<std::size_t> index_sum(std::size_t a, std::size_t b, std::size_t c)
{
    std::size_t product = 0;
    std::size_t sum = 0;
    if (__builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(product, c, &sum) ||
        sum > std::size_t(std::numeric_limits<std::ptrdiff_t>::max())) {
        return std::nullopt;
    }
    return sum;
}

// The output size along one axis and the padding before it, by TensorFlow's
// rules; nothing where the dilated kernel, or the padded input it needs,
// spans more than an offset can count.
std::optional<std::pair<std::size_t, std::size_t>> output_extent(std::size_t in, std::size_t kernel,
                                                                 std::size_t stride, std::size_t dilation,
                                                                 padding kind)
{
    const std::optional<std::size_t> span = index_sum(kernel - 1, dilation, 1);
    if (!span || !index_sum(in, 1, 0)) {
        return std::nullopt;
    }
    if (kind == padding::same) {
        const std::size_t out = in / stride + (in % stride != 0);
        const std::optional<std::size_t> needed = out == 0 ? 0 : index_sum(out - 1, stride, *span);
        if (!needed) {
            return std::nullopt;
        }
        const std::size_t total = *needed > in ? *needed - in : 0;
        return std::pair{out, total / 2};
    }
    return std::pair{in < *span ? 0 : (in - *span) / stride + 1, std::size_t{0}};
}

// The shape rule of every convolution: the inputs checked, and where the
// windows fall. `algorithm` names the kernels that may take it.
conv_plan plan_conv(std::string_view op, const source_location& site, const shape_type& input,
                    const shape_type& filters, const conv2d_options& options, bool winograd_kernels = true)
{
    const auto refuse = [&](const std::string& why) {
        fail<shape_error>(op, site, why + ": " + describe(input, filters, options));
    };
    if (input.size() != 4 || filters.size() != 4) {
        refuse("needs an input of rank 4 (N, H, W, C) and filters of rank 4 (KH, KW, C, O)");
    }
    for (std::ptrdiff_t step : {options.strides[0], options.strides[1], options.dilations[0], options.dilations[1]}) {
        if (step <= 0) {
            fail<argument_error>(op, site, "strides and dilations must be positive: " +
                                               describe(input, filters, options));
        }
    }
    if (filters[2] != input[3]) {
        refuse("the filters' input channels differ from the input's");
    }
    if (filters[0] == 0 || filters[1] == 0) {
        refuse("the filters are empty");
    }
    if (const auto taps = index_sum(filters[0], filters[1], 0); !taps || !index_sum(*taps, input[3], 0)) {
        fail<argument_error>(op, site,
                             "a window of the filters' size holds more elements than an offset can count (2^63 - 1): " +
                                 describe(input, filters, options));
    }
    conv_geometry g{};
    g.n = input[0];
    g.h = input[1];
    g.w = input[2];
    g.c = input[3];
    g.kh = filters[0];
    g.kw = filters[1];
    g.o = filters[3];
    g.stride_h = std::size_t(options.strides[0]);
    g.stride_w = std::size_t(options.strides[1]);
    g.dilation_h = std::size_t(options.dilations[0]);
    g.dilation_w = std::size_t(options.dilations[1]);
    const auto rows = output_extent(g.h, g.kh, g.stride_h, g.dilation_h, options.padding);
    const auto columns = output_extent(g.w, g.kw, g.stride_w, g.dilation_w, options.padding);
    if (!rows || !columns) {
        fail<argument_error>(op, site,
                             "the dilated kernel, or the padded input it needs, spans more than an offset can count "
                             "(2^63 - 1): " +
                                 describe(input, filters, options));
    }
    std::tie(g.oh, g.pad_top) = *rows;
    std::tie(g.ow, g.pad_left) = *columns;
    if (options.padding == padding::valid && (g.oh == 0 || g.ow == 0)) {
        refuse("the (dilated) kernel is larger than the input, which valid padding does not pad");
    }
    conv_algorithm algorithm = options.algorithm;
    if (algorithm == conv_algorithm::automatic) {
        algorithm = conv_algorithm_setting(site).load(std::memory_order_relaxed);
    }
    if (options.algorithm == conv_algorithm::winograd && !(winograd_kernels && detail::winograd_applies(g))) {
        fail<argument_error>(op, site,
                             winograd_kernels
                                 ? "Winograd's algorithm takes unit strides and dilations and a 3x3 or 5x5 kernel "
                                   "only: " + describe(input, filters, options)
                                 : "has no Winograd kernels: " + describe(input, filters, options));
    }
    return {g, algorithm};
}

// What the shape rules of a convolution's gradients share: the gradient
// must be the output of the convolution of `input` by `filters`.
void check_gradient(std::string_view op, const source_location& site, const shape_type& grad,
                    const shape_type& output, const shape_type& input, const shape_type& filters,
                    const conv2d_options& options)
{
    if (grad != output) {
        fail<shape_error>(op, site,
                          "the gradient " + format_shape(grad) + " is not the convolution's output " +
                              format_shape(output) + ": " + describe(input, filters, options));
    }
}

template <dtype T>
basic_tensor<T> filter_correlation(const basic_tensor<T>& input, const basic_tensor<T>& grad,
                                   const shape_type& filter_shape, const conv2d_options& options,
                                   const source_location& site);

template <dtype T>
struct conv2d_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;

    conv_plan shape(const source_location& site, const shape_type& input, const shape_type& filters) const
    {
        return plan_conv(name, site, input, filters, options);
    }
    void forward(const conv_plan& plan, xt::xarray<T>& out, const xt::xarray<T>& input,
                 const xt::xarray<T>& filters) const
    {
        detail::conv2d(plan, input.data(), filters.data(), out.data());
    }
    // conv2d_transpose(grad, w) for the input, filter_correlation(x, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& filters = args.inputs[1];
        return {args.needed[0] ? conv2d_transpose(args.grad, filters, input.shape(), options) : basic_tensor<T>{},
                args.needed[1] ? filter_correlation(input, args.grad, filters.shape(), options, {})
                               : basic_tensor<T>{}};
    }
};

template <dtype T>
struct conv2d_transpose_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d_transpose";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;
    shape_type output;

    struct plan : conv_plan {
        shape_type image;
        [[nodiscard]] const shape_type& output_shape() const { return image; }
    };
    plan shape(const source_location& site, const shape_type& grad, const shape_type& filters) const
    {
        const conv_plan convolution = plan_conv(name, site, output, filters, options);
        check_gradient(name, site, grad, convolution.output_shape(), output, filters, options);
        return {convolution, output};
    }
    void forward(const plan& planned, xt::xarray<T>& out, const xt::xarray<T>& grad, const xt::xarray<T>& filters) const
    {
        detail::conv2d_transpose(planned, grad.data(), filters.data(), out.data());
    }
    // conv2d(z, w) for grad, filter_correlation(z, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& grad = args.inputs[0];
        const basic_tensor<T>& filters = args.inputs[1];
        return {args.needed[0] ? conv2d(args.grad, filters, options) : basic_tensor<T>{},
                args.needed[1] ? filter_correlation(args.grad, grad, filters.shape(), options, {})
                               : basic_tensor<T>{}};
    }
};

template <dtype T>
struct filter_correlation_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d_filter_gradient";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;
    shape_type filters;

    struct plan : conv_plan {
        shape_type filter_shape;
        [[nodiscard]] const shape_type& output_shape() const { return filter_shape; }
    };
    plan shape(const source_location& site, const shape_type& input, const shape_type& grad) const
    {
        const conv_plan convolution = plan_conv(name, site, input, filters, options);
        check_gradient(name, site, grad, convolution.output_shape(), input, filters, options);
        return {convolution, filters};
    }
    void forward(const plan& planned, xt::xarray<T>& out, const xt::xarray<T>& input, const xt::xarray<T>& grad) const
    {
        detail::conv2d_filter_gradient(planned, input.data(), grad.data(), out.data());
    }
    // conv2d_transpose(grad, z) for the input, conv2d(x, z) for grad
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& grad = args.inputs[1];
        return {args.needed[0] ? conv2d_transpose(grad, args.grad, input.shape(), options) : basic_tensor<T>{},
                args.needed[1] ? conv2d(input, args.grad, options) : basic_tensor<T>{}};
    }
};

template <dtype T>
basic_tensor<T> filter_correlation(const basic_tensor<T>& input, const basic_tensor<T>& grad,
                                   const shape_type& filter_shape, const conv2d_options& options,
                                   const source_location& site)
{
    return detail::apply(filter_correlation_op<T>{options, filter_shape}, site, input, grad);
}

// A pooling window is a filter of ksize over each channel alone.
conv_geometry plan_pool(std::string_view op, const source_location& site, const shape_type& input,
                        const pool2d_options& options)
{
    if (input.size() != 4) {
        fail<shape_error>(op, site, "needs an input of rank 4 (N, H, W, C), got " + format_shape(input));
    }
    for (std::ptrdiff_t size : options.ksize) {
        if (size <= 0) {
            fail<argument_error>(op, site, "ksize must be positive, got (" + std::to_string(options.ksize[0]) + ", " +
                                               std::to_string(options.ksize[1]) + ")");
        }
    }
    return plan_conv(op, site, input, {std::size_t(options.ksize[0]), std::size_t(options.ksize[1]), input[3], input[3]},
                     {.strides = options.strides, .padding = options.padding, .dilations = {1, 1}})
        .g;
}

// The largest element of each window; its routes name it, and the gradient
// goes back along them.
template <dtype T>
struct max_pool_op {
    using value_type = T;
    static constexpr std::string_view name = "max_pool2d";
    static constexpr saved saves = saved::nothing;
    static constexpr bool selects = true;
    pool2d_options options;

    conv_geometry shape(const source_location& site, const shape_type& input) const
    {
        return plan_pool(name, site, input, options);
    }
    void forward(const conv_geometry& g, xt::xarray<T>& out, xt::xarray<std::int64_t>& routes,
                 const xt::xarray<T>& input) const
    {
        detail::max_pool(g, input.data(), out.data(), routes.data());
    }
    // grad added where each output came from
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

template <dtype T>
struct avg_pool_gradient_op;

template <dtype T>
struct avg_pool_op {
    using value_type = T;
    static constexpr std::string_view name = "avg_pool2d";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    pool2d_options options;

    conv_geometry shape(const source_location& site, const shape_type& input) const
    {
        return plan_pool(name, site, input, options);
    }
    void forward(const conv_geometry& g, xt::xarray<T>& out, const xt::xarray<T>& input) const
    {
        detail::avg_pool(g, input.data(), out.data());
    }
    // grad / count spread over each window
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(avg_pool_gradient_op<T>{options, args.input_shape(0)}, {}, args.grad)};
    }
};

// avg_pool2d's adjoint; its own gradient is avg_pool2d.
template <dtype T>
struct avg_pool_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "avg_pool2d_gradient";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    pool2d_options options;
    shape_type input;

    struct plan {
        conv_geometry g;
        shape_type image;
        [[nodiscard]] const shape_type& output_shape() const { return image; }
    };
    plan shape(const source_location& site, const shape_type&) const
    {
        return {plan_pool(name, site, input, options), input};
    }
    void forward(const plan& planned, xt::xarray<T>& out, const xt::xarray<T>& grad) const
    {
        detail::avg_pool_gradient(planned.g, grad.data(), out.data());
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(avg_pool_op<T>{options}, {}, args.grad)};
    }
};

// depthwise_conv2d's output: N, OH, OW, C * M.
shape_type depthwise_output(const conv_geometry& g)
{
    return {g.n, g.oh, g.ow, g.c * g.o};
}

// What a depthwise op's shape rule hands its kernel: the geometry, with its
// output of C * M channels (depthwise_output) or another one (the gradients').
struct depthwise_plan {
    conv_geometry g;
    shape_type output;
    [[nodiscard]] const shape_type& output_shape() const { return output; }
};

depthwise_plan plan_depthwise(std::string_view op, const source_location& site, const shape_type& input,
                              const shape_type& filter, const conv2d_options& options)
{
    const conv_geometry g = plan_conv(op, site, input, filter, options, false).g;
    return {g, depthwise_output(g)};
}

// The shape rule of the two gradients: grad must be depthwise_conv2d's output.
depthwise_plan plan_depthwise_gradient(std::string_view op, const source_location& site, const shape_type& input,
                                       const shape_type& filter, const shape_type& grad, const conv2d_options& options,
                                       const shape_type& output)
{
    const conv_geometry g = plan_conv(op, site, input, filter, options, false).g;
    check_gradient(op, site, grad, depthwise_output(g), input, filter, options);
    return {g, output};
}

template <dtype T>
struct depthwise_input_gradient_op;
template <dtype T>
struct depthwise_filter_gradient_op;

// Channel c of the input convolved with filter[..., c, m] alone gives output
// channel c * M + m.
template <dtype T>
struct depthwise_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;

    depthwise_plan shape(const source_location& site, const shape_type& input, const shape_type& filter) const
    {
        return plan_depthwise(name, site, input, filter, options);
    }
    void forward(const depthwise_plan& plan, xt::xarray<T>& out, const xt::xarray<T>& input,
                 const xt::xarray<T>& filter) const
    {
        detail::depthwise_conv2d(plan.g, input.data(), filter.data(), out.data());
    }
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& filter = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_input_gradient_op<T>{options, input.shape()}, {}, args.grad,
                                               filter)
                               : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_filter_gradient_op<T>{options, filter.shape()}, {}, input,
                                               args.grad)
                               : basic_tensor<T>{}};
    }
};

template <dtype T>
struct depthwise_input_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d_input_gradient";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;
    shape_type input;

    depthwise_plan shape(const source_location& site, const shape_type& grad, const shape_type& filter) const
    {
        return plan_depthwise_gradient(name, site, input, filter, grad, options, input);
    }
    void forward(const depthwise_plan& plan, xt::xarray<T>& out, const xt::xarray<T>& grad,
                 const xt::xarray<T>& filter) const
    {
        detail::depthwise_input_gradient(plan.g, grad.data(), filter.data(), out.data());
    }
    // depthwise_conv2d(z, w) for grad, the filter gradient of (z, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& grad = args.inputs[0];
        const basic_tensor<T>& filter = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_op<T>{options}, {}, args.grad, filter) : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_filter_gradient_op<T>{options, filter.shape()}, {}, args.grad,
                                               grad)
                               : basic_tensor<T>{}};
    }
};

template <dtype T>
struct depthwise_filter_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d_filter_gradient";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    conv2d_options options;
    shape_type filter;

    depthwise_plan shape(const source_location& site, const shape_type& input, const shape_type& grad) const
    {
        return plan_depthwise_gradient(name, site, input, filter, grad, options, filter);
    }
    void forward(const depthwise_plan& plan, xt::xarray<T>& out, const xt::xarray<T>& input,
                 const xt::xarray<T>& grad) const
    {
        detail::depthwise_filter_gradient(plan.g, input.data(), grad.data(), out.data());
    }
    // the input gradient of (grad, z) for the input, depthwise_conv2d(x, z) for grad
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& grad = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_input_gradient_op<T>{options, input.shape()}, {}, grad,
                                               args.grad)
                               : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_op<T>{options}, {}, input, args.grad) : basic_tensor<T>{}};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> max_pool2d(const basic_tensor<T>& input, pool2d_options options, source_location site)
{
    return detail::apply(max_pool_op<T>{options}, site, input);
}

template <dtype T>
basic_tensor<T> avg_pool2d(const basic_tensor<T>& input, pool2d_options options, source_location site)
{
    return detail::apply(avg_pool_op<T>{options}, site, input);
}

template <dtype T>
basic_tensor<T> conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filters, conv2d_options options,
                       source_location site)
{
    return detail::apply(conv2d_op<T>{options}, site, input, filters);
}

template <dtype T>
basic_tensor<T> conv2d_transpose(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                 const shape_type& output_shape, conv2d_options options, source_location site)
{
    if (output_shape.size() != 4) {
        fail<shape_error>("conv2d_transpose", site,
                          "needs an output shape of rank 4 (N, H, W, C), got " + format_shape(output_shape));
    }
    return detail::apply(conv2d_transpose_op<T>{options, output_shape}, site, input, filters);
}

template <dtype T>
basic_tensor<T> depthwise_conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filter,
                                 depthwise_conv2d_options options, source_location site)
{
    return detail::apply(depthwise_op<T>{options}, site, input, filter);
}

template <dtype T>
basic_tensor<T> conv1d(const basic_tensor<T>& input, const basic_tensor<T>& filters, conv1d_options options,
                       source_location site)
{
    if (input.dimension() != 3 || filters.dimension() != 3) {
        fail<shape_error>("conv1d", site,
                          "needs an input of rank 3 (N, W, C) and filters of rank 3 (K, C, O), got " +
                              format_shape(input.shape()) + " and " + format_shape(filters.shape()));
    }
    const auto& in = input.shape();
    const auto& k = filters.shape();
    const conv2d_options as_2d{.strides = {1, options.stride},
                               .padding = options.padding,
                               .dilations = {1, options.dilation}};
    const basic_tensor<T> image = reshape(input, {std::ptrdiff_t(in[0]), 1, std::ptrdiff_t(in[1]), std::ptrdiff_t(in[2])}, site);
    const basic_tensor<T> kernel = reshape(filters, {1, std::ptrdiff_t(k[0]), std::ptrdiff_t(k[1]), std::ptrdiff_t(k[2])}, site);
    const basic_tensor<T> out = conv2d(image, kernel, as_2d, site);
    return reshape(out, {std::ptrdiff_t(out.shape()[0]), std::ptrdiff_t(out.shape()[2]), std::ptrdiff_t(out.shape()[3])},
                   site);
}

void set_conv_algorithm(conv_algorithm algorithm)
{
    conv_algorithm_setting({}).store(algorithm, std::memory_order_relaxed);
}

conv_algorithm get_conv_algorithm()
{
    return conv_algorithm_setting({}).load(std::memory_order_relaxed);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> conv2d(const basic_tensor<T>&, const basic_tensor<T>&, conv2d_options,                  \
                                    source_location);                                                          \
    template basic_tensor<T> conv2d_transpose(const basic_tensor<T>&, const basic_tensor<T>&, const shape_type&,     \
                                              conv2d_options, source_location);                                \
    template basic_tensor<T> conv1d(const basic_tensor<T>&, const basic_tensor<T>&, conv1d_options,                  \
                                    source_location);                                                          \
    template basic_tensor<T> depthwise_conv2d(const basic_tensor<T>&, const basic_tensor<T>&,                        \
                                              depthwise_conv2d_options, source_location);                      \
    template basic_tensor<T> max_pool2d(const basic_tensor<T>&, pool2d_options, source_location);              \
    template basic_tensor<T> avg_pool2d(const basic_tensor<T>&, pool2d_options, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
