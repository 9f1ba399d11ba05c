// Conv1D, Conv2D, Conv2DTranspose and DepthwiseConv2D.
#include "layers/layer_node.hpp"

#include <limits>

#include "core/dtypes.hpp"

namespace gradtape {

namespace {

using detail::activation_kind;
using detail::check_positive;
using detail::chosen_name;
using detail::input_spec;
using detail::layer_node;

// What Conv1D, Conv2D, Conv2DTranspose and DepthwiseConv2D share: options,
// the input's rank, making the kernel and a bias per output channel from
// the input's channels, and the activation.
template <dtype T>
class convolution_node : public layer_node<T> {
public:
    struct kind_of_layer {
        std::string_view layer;         // for errors: "Conv2D"
        std::string_view default_name;  // "conv2d"
        std::string kernel_name;        // "kernel"
        std::size_t input_rank;         // 4: [N, H, W, C]
    };
    convolution_node(kind_of_layer kind, std::array<std::ptrdiff_t, 2> kernel_size, const conv_options& options,
                     const source_location& site)
        : layer_node<T>(chosen_name(options.name, kind.default_name)), kind(std::move(kind)), kernel_size(kernel_size),
          options(options), nonlinearity(detail::activation_named(options.activation, site)),
          kernel_initializer(detail::initializer_named<T>(options.kernel_initializer, site))
    {
        for (std::size_t axis = 0; axis < 2; ++axis) {
            check_positive(this->kind.layer, site, "kernel_size", kernel_size[axis]);
            check_positive(this->kind.layer, site, "strides", options.strides[axis]);
            check_positive(this->kind.layer, site, "dilation_rate", options.dilation_rate[axis]);
        }
    }

    void build(const shape_type& shape, const source_location& site) final
    {
        std::vector<std::ptrdiff_t> dims(kind.input_rank, -1);
        this->spec = input_spec{dims};
        if (shape.size() != kind.input_rank) {
            return;
        }
        dims.back() = std::ptrdiff_t(shape.back());
        this->spec = input_spec{dims};
        kernel = this->make_variable(kind.kernel_name, kernel_initializer(kernel_shape(shape.back()), site));
        if (options.use_bias) {
            bias = this->make_variable("bias", zeros<T>({output_channels(shape.back())}, site));
        }
    }

    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) final
    {
        const basic_tensor<T> y = convolve(x, site);
        return detail::activate(nonlinearity, bias ? add(y, *bias, site) : y, site);
    }

    virtual shape_type kernel_shape(std::size_t channels) const = 0;
    virtual std::size_t output_channels(std::size_t channels) const = 0;
    virtual basic_tensor<T> convolve(const basic_tensor<T>& x, const source_location& site) const = 0;

    // The kernel's leading, spatial dimensions.
    [[nodiscard]] std::size_t height() const { return std::size_t(kernel_size[0]); }
    [[nodiscard]] std::size_t width() const { return std::size_t(kernel_size[1]); }

    kind_of_layer kind;
    std::array<std::ptrdiff_t, 2> kernel_size;
    conv_options options;
    activation_kind nonlinearity;
    detail::initializer_function<T> kernel_initializer;
    std::optional<basic_variable<T>> kernel;
    std::optional<basic_variable<T>> bias;
};

template <dtype T>
class conv2d_node final : public convolution_node<T> {
public:
    conv2d_node(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, const conv_options& options,
                const source_location& site)
        : convolution_node<T>({"Conv2D", "conv2d", "kernel", 4}, kernel_size, options, site), filters(filters)
    {
        check_positive("Conv2D", site, "filters", std::ptrdiff_t(filters));
    }
    shape_type kernel_shape(std::size_t channels) const override
    {
        return {this->height(), this->width(), channels, filters};
    }
    std::size_t output_channels(std::size_t) const override { return filters; }
    basic_tensor<T> convolve(const basic_tensor<T>& x, const source_location& site) const override
    {
        const conv_options& o = this->options;
        return conv2d(x, *this->kernel, {o.strides, o.padding, o.dilation_rate, o.algorithm}, site);
    }
    std::size_t filters;
};

template <dtype T>
class conv1d_node final : public convolution_node<T> {
public:
    conv1d_node(std::size_t filters, std::ptrdiff_t kernel_size, const conv_options& options,
                const source_location& site)
        : convolution_node<T>({"Conv1D", "conv1d", "kernel", 3}, {kernel_size, 1}, options, site), filters(filters)
    {
        check_positive("Conv1D", site, "filters", std::ptrdiff_t(filters));
    }
    shape_type kernel_shape(std::size_t channels) const override { return {this->height(), channels, filters}; }
    std::size_t output_channels(std::size_t) const override { return filters; }
    basic_tensor<T> convolve(const basic_tensor<T>& x, const source_location& site) const override
    {
        const conv_options& o = this->options;
        return conv1d(x, *this->kernel, {o.strides[0], o.padding, o.dilation_rate[0]}, site);
    }
    std::size_t filters;
};

template <dtype T>
class conv2d_transpose_node final : public convolution_node<T> {
public:
    conv2d_transpose_node(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, const conv_options& options,
                          const source_location& site)
        : convolution_node<T>({"Conv2DTranspose", "conv2d_transpose", "kernel", 4}, kernel_size, options, site),
          filters(filters)
    {
        check_positive("Conv2DTranspose", site, "filters", std::ptrdiff_t(filters));
    }
    shape_type kernel_shape(std::size_t channels) const override
    {
        return {this->height(), this->width(), filters, channels};
    }
    std::size_t output_channels(std::size_t) const override { return filters; }
    // The output has input * stride positions with same padding, (input - 1) * stride + extent with valid.
    basic_tensor<T> convolve(const basic_tensor<T>& x, const source_location& site) const override
    {
        const conv_options& o = this->options;
        shape_type out{x.shape()[0], 0, 0, filters};
        for (std::size_t axis = 0; axis < 2; ++axis) {
            const std::size_t in = x.shape()[axis + 1];
            const auto stride = std::size_t(o.strides[axis]);
            const auto kernel = std::size_t(this->kernel_size[axis]);
            const auto dilation = std::size_t(o.dilation_rate[axis]);
            std::size_t extent = 0;
            std::size_t size = 0;
            const bool overflows =
                __builtin_mul_overflow(kernel - 1, dilation, &extent) || __builtin_add_overflow(extent, 1, &extent) ||
                (o.padding == padding::same ? __builtin_mul_overflow(in, stride, &size)
                                            : in > 0 && (__builtin_mul_overflow(in - 1, stride, &size) ||
                                                         __builtin_add_overflow(size, extent, &size)));
            if (overflows || size > std::size_t(std::numeric_limits<std::ptrdiff_t>::max())) {
                this->template refuse<argument_error>(site,
                                                      "its output would span more than an offset can count (2^63 - 1) along "
                                             "axis " + std::to_string(axis + 1));
            }
            out[axis + 1] = size;
        }
        return conv2d_transpose(x, *this->kernel, out, {o.strides, o.padding, o.dilation_rate, o.algorithm}, site);
    }
    std::size_t filters;
};

template <dtype T>
class depthwise_conv2d_node final : public convolution_node<T> {
public:
    depthwise_conv2d_node(std::array<std::ptrdiff_t, 2> kernel_size, std::size_t multiplier,
                          const conv_options& options, const source_location& site)
        : convolution_node<T>({"DepthwiseConv2D", "depthwise_conv2d", "depthwise_kernel", 4}, kernel_size, options,
                              site),
          multiplier(multiplier)
    {
        check_positive("DepthwiseConv2D", site, "depth_multiplier", std::ptrdiff_t(multiplier));
    }
    shape_type kernel_shape(std::size_t channels) const override
    {
        return {this->height(), this->width(), channels, multiplier};
    }
    std::size_t output_channels(std::size_t channels) const override { return channels * multiplier; }
    basic_tensor<T> convolve(const basic_tensor<T>& x, const source_location& site) const override
    {
        const conv_options& o = this->options;
        return depthwise_conv2d(x, *this->kernel, {o.strides, o.padding, o.dilation_rate}, site);
    }
    std::size_t multiplier;
};

}  // namespace

template <dtype T>
basic_conv2d<T>::basic_conv2d(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, conv_options options,
                              source_location site)
    : basic_layer<T>(std::make_shared<conv2d_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_conv1d<T>::basic_conv1d(std::size_t filters, std::ptrdiff_t kernel_size, conv_options options,
                              source_location site)
    : basic_layer<T>(std::make_shared<conv1d_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_conv2d_transpose<T>::basic_conv2d_transpose(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size,
                                                  conv_options options, source_location site)
    : basic_layer<T>(std::make_shared<conv2d_transpose_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_depthwise_conv2d<T>::basic_depthwise_conv2d(std::array<std::ptrdiff_t, 2> kernel_size,
                                                  std::size_t depth_multiplier, conv_options options,
                                                  source_location site)
    : basic_layer<T>(std::make_shared<depthwise_conv2d_node<T>>(kernel_size, depth_multiplier, options, site))
{
}


#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_conv1d<T>;                              \
    template class basic_conv2d<T>;                              \
    template class basic_conv2d_transpose<T>;                              \
    template class basic_depthwise_conv2d<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
