// Layers: each is a node holding its variables and its children; handles
// share nodes. A node makes its variables on its first call (build), and
// checks every later input against the shape it was built for.
#include <gradtape/layers.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <sstream>

#include <gradtape/error.hpp>
#include <gradtape/random.hpp>
#include <gradtape/tape.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape {
namespace detail {

// The inputs a built layer takes: `dims` are the trailing dimensions (-1 for
// any); with `any_leading`, any number of dimensions may come before them.
struct input_spec {
    std::vector<std::ptrdiff_t> dims;
    bool any_leading = false;

    [[nodiscard]] bool accepts(const shape_type& shape) const
    {
        if (shape.size() < dims.size() || (!any_leading && shape.size() != dims.size())) {
            return false;
        }
        const std::size_t skip = shape.size() - dims.size();
        for (std::size_t i = 0; i < dims.size(); ++i) {
            if (dims[i] >= 0 && std::size_t(dims[i]) != shape[skip + i]) {
                return false;
            }
        }
        return true;
    }

    [[nodiscard]] std::string describe() const
    {
        std::string text = any_leading ? "(..." : "(";
        for (std::size_t i = 0; i < dims.size(); ++i) {
            text += (i > 0 || any_leading) ? ", " : "";
            text += dims[i] < 0 ? std::string("?") : std::to_string(dims[i]);
        }
        return text + ")";
    }
};

enum class activation_kind { linear, relu, sigmoid, tanh, elu, softplus, softmax, swish };

activation_kind activation_named(const activation& chosen, const std::source_location& site)
{
    static const std::vector<std::pair<std::string_view, activation_kind>> names{
        {"linear", activation_kind::linear},     {"relu", activation_kind::relu},
        {"sigmoid", activation_kind::sigmoid},   {"tanh", activation_kind::tanh},
        {"elu", activation_kind::elu},           {"softplus", activation_kind::softplus},
        {"softmax", activation_kind::softmax},   {"swish", activation_kind::swish},
        {"silu", activation_kind::swish},
    };
    for (const auto& [name, kind] : names) {
        if (name == chosen.name) {
            return kind;
        }
    }
    std::string known;
    for (const auto& [name, kind] : names) {
        known += (known.empty() ? "" : ", ") + std::string(name);
    }
    fail<argument_error>("activation", site, "no activation is named '" + chosen.name + "' (known: " + known + ")");
}

template <dtype T>
basic_tensor<T> activate(activation_kind kind, const basic_tensor<T>& x, const std::source_location& site)
{
    switch (kind) {
    case activation_kind::linear: return x;
    case activation_kind::relu: return relu(x, site);
    case activation_kind::sigmoid: return sigmoid(x, site);
    case activation_kind::tanh: return tanh(x, site);
    case activation_kind::elu: return elu(x, site);
    case activation_kind::softplus: return softplus(x, site);
    case activation_kind::softmax: return softmax(x, -1, site);
    case activation_kind::swish: return multiply(x, sigmoid(x, site), site);
    }
    return x;
}

template <dtype T>
using initializer_function = basic_tensor<T> (*)(const shape_type&, std::source_location);

template <dtype T>
initializer_function<T> initializer_named(const initializer& chosen, const std::source_location& site)
{
    const std::vector<std::pair<std::string_view, initializer_function<T>>> names{
        {"glorot_uniform", &glorot_uniform<T>}, {"glorot_normal", &glorot_normal<T>},
        {"he_uniform", &he_uniform<T>},         {"he_normal", &he_normal<T>},
        {"zeros", &zeros<T>},
    };
    for (const auto& [name, function] : names) {
        if (name == chosen.name) {
            return function;
        }
    }
    fail<argument_error>("initializer", site,
                         "no initializer is named '" + chosen.name +
                             "' (known: glorot_uniform, glorot_normal, he_uniform, he_normal, zeros)");
}

template <dtype T>
class layer_node {
public:
    explicit layer_node(std::string base_name) : name(std::move(base_name)), path(name) {}
    layer_node(const layer_node&) = delete;
    layer_node& operator=(const layer_node&) = delete;
    virtual ~layer_node() = default;

    basic_tensor<T> run(const basic_tensor<T>& input, bool training, const std::source_location& site)
    {
        return run_checked(
            input.shape(), site, [&] { build(input.shape(), site); },
            [&] { return call(input, training, site); });
    }

    // Note [A layer's first call]
    // The first call builds the layer (its variables, from the input's shape)
    // and is all or nothing: if it throws, this layer and every layer under it
    // that it built are as new again, so that a refused first call leaves no
    // variable shaped for the refused input. Only the first call writes on a
    // node (built, spec, own, first_output_shape); later calls read, which is
    // what lets threads share a built layer.
    template <class Build, class Call>
    basic_tensor<T> run_checked(const shape_type& shape, const std::source_location& site, Build&& make, Call&& call)
    {
        if (built) {
            check(shape, site);
            return call();
        }
        std::vector<layer_node*> new_nodes;
        collect_unbuilt(new_nodes);
        try {
            make();
            check(shape, site);
            basic_tensor<T> output = call();
            first_output_shape = output.shape();
            built = true;
            return output;
        } catch (...) {
            for (layer_node* node : new_nodes) {
                node->unbuild();
            }
            throw;
        }
    }

    void check(const shape_type& shape, const std::source_location& site) const
    {
        if (spec && !spec->accepts(shape)) {
            fail<shape_error>("layer '" + path + "'", site,
                              "takes inputs of shape " + spec->describe() + ", got " + format_shape(shape));
        }
    }

    virtual void build(const shape_type& shape, const std::source_location& site) = 0;
    virtual basic_tensor<T> call(const basic_tensor<T>& input, bool training, const std::source_location& site) = 0;

    // Builds for an input of `shape` by calling the layer on zeros, unrecorded:
    // a layer made of others learns its parts' input shapes only by running.
    void build_for(const shape_type& shape, const std::source_location& site)
    {
        if (!built) {
            const auto pause = stop_recording();
            (void)run(zeros<T>(shape, site), false, site);
        }
    }

    void collect_unbuilt(std::vector<layer_node*>& out)
    {
        if (std::ranges::find(out, this) != out.end()) {
            return;
        }
        if (!built) {
            out.push_back(this);
        }
        for (const auto& [edge, child] : children) {
            child->collect_unbuilt(out);
        }
    }

    void unbuild()
    {
        built = false;
        spec.reset();
        own.clear();
        first_output_shape.clear();
    }

    // A variable of this layer, named by its path.
    basic_variable<T> make_variable(const std::string& slot, const basic_tensor<T>& initial, bool trainable = true)
    {
        basic_variable<T> variable(initial, path + "/" + slot, trainable);
        own.emplace_back(slot, variable);
        return variable;
    }

    void collect(const std::string& prefix, std::set<const layer_node*>& seen,
                 std::vector<std::pair<std::string, basic_variable<T>>>& out) const
    {
        if (!seen.insert(this).second) {
            return;
        }
        for (const auto& [slot, variable] : own) {
            out.emplace_back(prefix + "/" + slot, variable);
        }
        for (const auto& [edge, child] : children) {
            child->collect(prefix + "/" + edge, seen, out);
        }
    }

    // One row per layer, its parts indented under it: path, the output shape
    // of its first call, and the parameters it holds with its parts.
    void describe(const std::string& prefix, std::size_t depth,
                  std::vector<std::array<std::string, 3>>& rows) const
    {
        std::vector<std::pair<std::string, basic_variable<T>>> held;
        std::set<const layer_node*> seen;
        collect(prefix, seen, held);
        std::size_t count = 0;
        for (const auto& [slot, variable] : held) {
            count += variable.size();
        }
        rows.push_back({std::string(depth * 2, ' ') + prefix,
                        built ? format_shape(first_output_shape) : std::string("(not built)"),
                        std::to_string(count)});
        for (const auto& [edge, child] : children) {
            child->describe(prefix + "/" + edge, depth + 1, rows);
        }
    }

    bool contains(const layer_node* other) const
    {
        return this == other ||
               std::ranges::any_of(children, [&](const auto& child) { return child.second->contains(other); });
    }

    // Takes `child` as a part of this node, under a name unique among its
    // siblings ("dense", "dense_1", ...). A layer shared by two models has a
    // name in each; its own name and path are those of the first.
    void adopt(const std::shared_ptr<layer_node>& child, const std::source_location& site)
    {
        if (child->contains(this)) {
            fail<argument_error>("add", site, "layer '" + child->path + "' cannot be a part of itself");
        }
        if (std::ranges::any_of(children, [&](const auto& c) { return c.second == child; })) {
            fail<argument_error>("add", site, "layer '" + child->path + "' is already a part of '" + path + "'");
        }
        std::string unique = child->name;
        for (int n = 1; std::ranges::any_of(children, [&](const auto& c) { return c.first == unique; }); ++n) {
            unique = child->name + "_" + std::to_string(n);
        }
        if (!child->adopted) {
            child->name = unique;
            child->adopted = true;
            child->repath(path + "/" + unique);
        }
        children.emplace_back(unique, child);
    }

    void repath(const std::string& new_path)
    {
        const std::string old_path = std::exchange(path, new_path);
        for (const auto& [edge, child] : children) {
            if (child->path == old_path + "/" + edge) {
                child->repath(path + "/" + edge);
            }
        }
    }

    std::string name;
    std::string path;
    bool adopted = false;
    bool built = false;
    std::optional<input_spec> spec;
    shape_type first_output_shape;
    std::vector<std::pair<std::string, basic_variable<T>>> own;
    // Each part with its name here.
    std::vector<std::pair<std::string, std::shared_ptr<layer_node>>> children;
};

struct layer_access {
    template <dtype T>
    static const std::shared_ptr<layer_node<T>>& node(const basic_layer<T>& layer)
    {
        return layer.node_;
    }
};

}  // namespace detail

namespace {

using detail::activation_kind;
using detail::input_spec;
using detail::layer_node;

std::string chosen_name(const std::string& given, std::string_view fallback)
{
    return given.empty() ? std::string(fallback) : given;
}

void check_positive(std::string_view op, const std::source_location& site, std::string_view what, std::ptrdiff_t value)
{
    if (value <= 0) {
        detail::fail<argument_error>(op, site, std::string(what) + " must be positive, got " + std::to_string(value));
    }
}

std::size_t last_dimension(const shape_type& shape)
{
    return shape.empty() ? 1 : shape.back();
}

template <dtype T>
class sequential_node final : public layer_node<T> {
public:
    using layer_node<T>::layer_node;
    void build(const shape_type&, const std::source_location&) override {}
    basic_tensor<T> call(const basic_tensor<T>& input, bool training, const std::source_location& site) override
    {
        basic_tensor<T> x = input;
        for (const auto& [edge, child] : this->children) {
            x = child->run(x, training, site);
        }
        return x;
    }
};

template <dtype T>
class model_node final : public layer_node<T> {
public:
    model_node(std::string name, basic_model<T>* owner) : layer_node<T>(std::move(name)), owner(owner) {}
    void build(const shape_type&, const std::source_location&) override {}
    basic_tensor<T> call(const basic_tensor<T>& input, bool training, const std::source_location& site) override
    {
        if (!owner) {
            detail::fail<argument_error>("model '" + this->path + "'", site,
                                         "is called through a handle that outlived its model object");
        }
        return owner->call(input, training);
    }
    basic_model<T>* owner;
};

template <dtype T>
class dense_node final : public layer_node<T> {
public:
    dense_node(std::size_t units, dense_options options, const std::source_location& site)
        : layer_node<T>(options.name), units(units), kind(detail::activation_named(options.activation, site)),
          kernel_initializer(detail::initializer_named<T>(options.kernel_initializer, site)), use_bias(options.use_bias)
    {
        check_positive("Dense", site, "units", std::ptrdiff_t(units));
    }
    void build(const shape_type& shape, const std::source_location& site) override
    {
        if (shape.empty()) {
            detail::fail<shape_error>("layer '" + this->path + "'", site, "takes inputs of rank 1 or more, got ()");
        }
        this->spec = input_spec{{std::ptrdiff_t(shape.back())}, true};
        kernel = this->make_variable("kernel", kernel_initializer({shape.back(), units}, site));
        if (use_bias) {
            bias = this->make_variable("bias", zeros<T>({units}, site));
        }
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) override
    {
        basic_tensor<T> y;
        if (x.dimension() <= 2) {
            y = matmul(x, *kernel, {}, site);
        } else {
            // One product over all leading dimensions rather than a batch of small ones.
            std::vector<std::ptrdiff_t> flat{-1, std::ptrdiff_t(x.shape().back())};
            std::vector<std::ptrdiff_t> back(x.shape().begin(), x.shape().end());
            back.back() = std::ptrdiff_t(units);
            y = reshape(matmul(reshape(x, flat, site), *kernel, {}, site), back, site);
        }
        if (bias) {
            y = add(y, *bias, site);
        }
        return detail::activate(kind, y, site);
    }
    std::size_t units;
    activation_kind kind;
    detail::initializer_function<T> kernel_initializer;
    bool use_bias;
    std::optional<basic_variable<T>> kernel;
    std::optional<basic_variable<T>> bias;
};

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
                     const std::source_location& site)
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

    void build(const shape_type& shape, const std::source_location& site) final
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

    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) final
    {
        const basic_tensor<T> y = convolve(x, site);
        return detail::activate(nonlinearity, bias ? add(y, *bias, site) : y, site);
    }

    virtual shape_type kernel_shape(std::size_t channels) const = 0;
    virtual std::size_t output_channels(std::size_t channels) const = 0;
    virtual basic_tensor<T> convolve(const basic_tensor<T>& x, const std::source_location& site) const = 0;

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
                const std::source_location& site)
        : convolution_node<T>({"Conv2D", "conv2d", "kernel", 4}, kernel_size, options, site), filters(filters)
    {
        check_positive("Conv2D", site, "filters", std::ptrdiff_t(filters));
    }
    shape_type kernel_shape(std::size_t channels) const override
    {
        return {this->height(), this->width(), channels, filters};
    }
    std::size_t output_channels(std::size_t) const override { return filters; }
    basic_tensor<T> convolve(const basic_tensor<T>& x, const std::source_location& site) const override
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
                const std::source_location& site)
        : convolution_node<T>({"Conv1D", "conv1d", "kernel", 3}, {kernel_size, 1}, options, site), filters(filters)
    {
        check_positive("Conv1D", site, "filters", std::ptrdiff_t(filters));
    }
    shape_type kernel_shape(std::size_t channels) const override { return {this->height(), channels, filters}; }
    std::size_t output_channels(std::size_t) const override { return filters; }
    basic_tensor<T> convolve(const basic_tensor<T>& x, const std::source_location& site) const override
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
                          const std::source_location& site)
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
    basic_tensor<T> convolve(const basic_tensor<T>& x, const std::source_location& site) const override
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
                detail::fail<argument_error>("layer '" + this->path + "'", site,
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
                          const conv_options& options, const std::source_location& site)
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
    basic_tensor<T> convolve(const basic_tensor<T>& x, const std::source_location& site) const override
    {
        const conv_options& o = this->options;
        return depthwise_conv2d(x, *this->kernel, {o.strides, o.padding, o.dilation_rate}, site);
    }
    std::size_t multiplier;
};

template <dtype T, bool maximum>
class pool_node final : public layer_node<T> {
public:
    pool_node(pool_options options, const std::source_location& site)
        : layer_node<T>(chosen_name(options.name, maximum ? "max_pooling2d" : "average_pooling2d"))
    {
        const std::string_view layer = maximum ? "MaxPool2D" : "AveragePool2D";
        for (std::size_t axis = 0; axis < 2; ++axis) {
            check_positive(layer, site, "pool_size", options.pool_size[axis]);
            if (options.strides[axis] == 0) {
                options.strides[axis] = options.pool_size[axis];
            }
            check_positive(layer, site, "strides", options.strides[axis]);
        }
        pool = {options.pool_size, options.strides, options.padding};
    }
    void build(const shape_type&, const std::source_location&) override { this->spec = input_spec{{-1, -1, -1, -1}}; }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) override
    {
        return maximum ? max_pool2d(x, pool, site) : avg_pool2d(x, pool, site);
    }
    pool2d_options pool;
};

// A layer without variables: a function of its input (and the mode).
template <dtype T>
class function_node final : public layer_node<T> {
public:
    using function = std::function<basic_tensor<T>(const basic_tensor<T>&, bool, const std::source_location&)>;
    function_node(std::string name, std::optional<input_spec> takes, function f)
        : layer_node<T>(std::move(name)), takes(std::move(takes)), f(std::move(f))
    {
    }
    void build(const shape_type&, const std::source_location&) override { this->spec = takes; }
    basic_tensor<T> call(const basic_tensor<T>& x, bool training, const std::source_location& site) override
    {
        return f(x, training, site);
    }
    std::optional<input_spec> takes;
    function f;
};

template <dtype T>
class batch_normalization_node final : public layer_node<T> {
public:
    batch_normalization_node(batch_normalization_options options, const std::source_location& site)
        : layer_node<T>(options.name), options(options)
    {
        if (!(options.momentum >= 0 && options.momentum <= 1) || !(options.epsilon > 0)) {
            detail::fail<argument_error>("BatchNormalization", site,
                                         "needs momentum in [0, 1] and a positive epsilon, got " +
                                             std::to_string(options.momentum) + " and " +
                                             std::to_string(options.epsilon));
        }
    }
    void build(const shape_type& shape, const std::source_location& site) override
    {
        const std::size_t channels = last_dimension(shape);
        this->spec = input_spec{{std::ptrdiff_t(channels)}, true};
        if (options.scale) {
            gamma = this->make_variable("gamma", ones<T>({channels}, site));
        }
        if (options.center) {
            beta = this->make_variable("beta", zeros<T>({channels}, site));
        }
        moving_mean = this->make_variable("moving_mean", zeros<T>({channels}, site), false);
        moving_variance = this->make_variable("moving_variance", ones<T>({channels}, site), false);
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool training, const std::source_location& site) override
    {
        const basic_tensor<T> offset = beta ? basic_tensor<T>(*beta) : basic_tensor<T>();
        const basic_tensor<T> scale = gamma ? basic_tensor<T>(*gamma) : basic_tensor<T>();
        if (!training) {
            return batch_normalization(x, *moving_mean, *moving_variance, offset, scale, T(options.epsilon), site);
        }
        axes_type axes;
        for (std::size_t axis = 0; axis + 1 < x.dimension(); ++axis) {
            axes.push_back(std::ptrdiff_t(axis));
        }
        const auto [mean, variance] = moments(x, axes, false, site);
        // An empty batch has no moments (0 / 0); its output is empty whatever
        // they are, and the moving statistics stay as they were, as PyTorch's.
        if (x.size() > 0) {
            const auto pause = stop_recording();
            const T keep = T(options.momentum);
            moving_mean->assign(add(multiply(*moving_mean, keep, site), multiply(mean, T(1) - keep, site), site),
                                site);
            moving_variance->assign(
                add(multiply(*moving_variance, keep, site), multiply(variance, T(1) - keep, site), site), site);
        }
        return batch_normalization(x, mean, variance, offset, scale, T(options.epsilon), site);
    }
    batch_normalization_options options;
    std::optional<basic_variable<T>> gamma, beta, moving_mean, moving_variance;
};

template <dtype T>
class layer_normalization_node final : public layer_node<T> {
public:
    layer_normalization_node(layer_normalization_layer_options options, const std::source_location& site)
        : layer_node<T>(options.name), epsilon(options.epsilon)
    {
        if (!(epsilon > 0)) {
            detail::fail<argument_error>("LayerNormalization", site,
                                         "needs a positive epsilon, got " + std::to_string(epsilon));
        }
    }
    void build(const shape_type& shape, const std::source_location& site) override
    {
        const std::size_t width = last_dimension(shape);
        this->spec = input_spec{{std::ptrdiff_t(width)}, true};
        gamma = this->make_variable("gamma", ones<T>({width}, site));
        beta = this->make_variable("beta", zeros<T>({width}, site));
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) override
    {
        return layer_normalization(x, *gamma, *beta, {.axes = {-1}, .epsilon = epsilon}, site);
    }
    double epsilon;
    std::optional<basic_variable<T>> gamma, beta;
};

template <dtype T>
class embedding_node final : public layer_node<T> {
public:
    embedding_node(std::size_t input_dim, std::size_t output_dim, std::string name, const std::source_location& site)
        : layer_node<T>(std::move(name)), input_dim(input_dim), output_dim(output_dim)
    {
        check_positive("Embedding", site, "input_dim", std::ptrdiff_t(input_dim));
        check_positive("Embedding", site, "output_dim", std::ptrdiff_t(output_dim));
    }
    void build(const shape_type&, const std::source_location& site) override
    {
        embeddings = this->make_variable("embeddings",
                                         random_uniform<T>({input_dim, output_dim}, T(-0.05), T(0.05), site));
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) override
    {
        xt::xarray<std::int64_t> ids = xt::xarray<std::int64_t>::from_shape(x.shape());
        const auto& values = x.value();
        for (std::size_t i = 0; i < values.size(); ++i) {
            const T id = values.data()[i];
            if (!(std::trunc(id) == id) || std::abs(id) > T(1e15)) {
                detail::fail<argument_error>("layer '" + this->path + "'", site,
                                             "takes whole-number ids, got " + std::to_string(id));
            }
            ids.data()[i] = std::int64_t(id);
        }
        return embedding_lookup(*embeddings, ids, site);
    }
    basic_tensor<T> lookup(const xt::xarray<std::int64_t>& ids, const std::source_location& site)
    {
        const shape_type shape(ids.shape().begin(), ids.shape().end());
        return this->run_checked(
            shape, site, [&] { build(shape, site); }, [&] { return embedding_lookup(*embeddings, ids, site); });
    }
    std::size_t input_dim;
    std::size_t output_dim;
    std::optional<basic_variable<T>> embeddings;
};

template <dtype T>
class multi_head_attention_node final : public layer_node<T> {
public:
    multi_head_attention_node(std::size_t heads, std::size_t key_dim, multi_head_attention_options options,
                              const std::source_location& site)
        : layer_node<T>(options.name), heads(heads), key_dim(key_dim),
          value_dim(options.value_dim == 0 ? key_dim : options.value_dim), use_bias(options.use_bias),
          causal(options.use_causal_mask)
    {
        check_positive("MultiHeadAttention", site, "num_heads", std::ptrdiff_t(heads));
        check_positive("MultiHeadAttention", site, "key_dim", std::ptrdiff_t(key_dim));
    }
    void build(const shape_type& shape, const std::source_location& site) override
    {
        build_projections(shape, shape, shape, site);
    }
    void build_projections(const shape_type& query, const shape_type& value, const shape_type& key,
                           const std::source_location& site)
    {
        const std::size_t width = last_dimension(query);
        this->spec = input_spec{{-1, -1, std::ptrdiff_t(width)}};
        if (query.size() != 3) {
            return;
        }
        projections[0] = projection("query", width, key_dim, site);
        projections[1] = projection("key", last_dimension(key), key_dim, site);
        projections[2] = projection("value", last_dimension(value), value_dim, site);
        output_kernel = this->make_variable("attention_output/kernel", glorot_uniform<T>({heads, value_dim, width}, site));
        if (use_bias) {
            output_bias = this->make_variable("attention_output/bias", zeros<T>({width}, site));
        }
        value_spec = input_spec{{-1, -1, std::ptrdiff_t(last_dimension(value))}};
        key_spec = input_spec{{-1, -1, std::ptrdiff_t(last_dimension(key))}};
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const std::source_location& site) override
    {
        return attend(x, x, x, {.mask = {}, .causal = causal}, site);
    }
    basic_tensor<T> run_attention(const basic_tensor<T>& query, const basic_tensor<T>& value,
                                  const basic_tensor<T>& key, const attention_options<T>& options,
                                  const std::source_location& site)
    {
        return this->run_checked(
            query.shape(), site, [&] { build_projections(query.shape(), value.shape(), key.shape(), site); },
            [&] { return attend(query, value, key, options, site); });
    }
    basic_tensor<T> attend(const basic_tensor<T>& query, const basic_tensor<T>& value, const basic_tensor<T>& key,
                           const attention_options<T>& options, const std::source_location& site)
    {
        const auto check = [&](const input_spec& spec, const basic_tensor<T>& given, std::string_view what) {
            if (!spec.accepts(given.shape())) {
                detail::fail<shape_error>("layer '" + this->path + "'", site,
                                          "takes a " + std::string(what) + " of shape " + spec.describe() + ", got " +
                                              detail::format_shape(given.shape()));
            }
        };
        check(value_spec, value, "value");
        check(key_spec, key, "key");
        const basic_tensor<T> q = split_heads(query, projections[0], key_dim, site);
        const basic_tensor<T> k = split_heads(key, projections[1], key_dim, site);
        const basic_tensor<T> v = split_heads(value, projections[2], value_dim, site);
        attention_options<T> per_head = options;
        if (per_head.mask.defined() && per_head.mask.dimension() == 3) {
            per_head.mask = expand_dims(per_head.mask, 1, site);
        }
        // [B, H, T, Dv] -> [B, T, H * Dv] -> [B, T, D]
        const basic_tensor<T> attended = scaled_dot_product_attention(q, k, v, per_head, site);
        const std::ptrdiff_t batch = std::ptrdiff_t(query.shape()[0]);
        const std::ptrdiff_t steps = std::ptrdiff_t(query.shape()[1]);
        const basic_tensor<T> merged = reshape(transpose(attended, {0, 2, 1, 3}, site),
                                               {batch * steps, std::ptrdiff_t(heads * value_dim)}, site);
        basic_tensor<T> y = matmul(merged, reshape(*output_kernel, {std::ptrdiff_t(heads * value_dim), -1}, site), {},
                                   site);
        if (output_bias) {
            y = add(y, *output_bias, site);
        }
        return reshape(y, {batch, steps, -1}, site);
    }

    struct dense_projection {
        std::optional<basic_variable<T>> kernel;  // [D, heads, dim]
        std::optional<basic_variable<T>> bias;    // [heads, dim]
    };
    dense_projection projection(const std::string& role, std::size_t width, std::size_t dim,
                                const std::source_location& site)
    {
        dense_projection p;
        p.kernel = this->make_variable(role + "/kernel", glorot_uniform<T>({width, heads, dim}, site));
        if (use_bias) {
            p.bias = this->make_variable(role + "/bias", zeros<T>({heads, dim}, site));
        }
        return p;
    }
    // [B, T, D] -> [B, H, T, dim]
    basic_tensor<T> split_heads(const basic_tensor<T>& x, const dense_projection& p, std::size_t dim,
                                const std::source_location& site) const
    {
        const auto batch = std::ptrdiff_t(x.shape()[0]);
        const auto steps = std::ptrdiff_t(x.shape()[1]);
        const auto width = std::ptrdiff_t(x.shape()[2]);
        const auto columns = std::ptrdiff_t(heads * dim);
        basic_tensor<T> y = matmul(reshape(x, {batch * steps, width}, site), reshape(*p.kernel, {width, columns}, site),
                                   {}, site);
        if (p.bias) {
            y = add(y, reshape(*p.bias, {columns}, site), site);
        }
        return transpose(reshape(y, {batch, steps, std::ptrdiff_t(heads), std::ptrdiff_t(dim)}, site), {0, 2, 1, 3},
                         site);
    }

    std::size_t heads;
    std::size_t key_dim;
    std::size_t value_dim;
    bool use_bias;
    bool causal;
    std::array<dense_projection, 3> projections;
    std::optional<basic_variable<T>> output_kernel;
    std::optional<basic_variable<T>> output_bias;
    input_spec value_spec;
    input_spec key_spec;
};

}  // namespace

template <dtype T>
basic_tensor<T> basic_layer<T>::operator()(const basic_tensor<T>& input, bool training,
                                           std::source_location site) const
{
    return node_->run(input, training, site);
}

template <dtype T>
void basic_layer<T>::build(const shape_type& input_shape, std::source_location site) const
{
    node_->build_for(input_shape, site);
}

template <dtype T>
bool basic_layer<T>::built() const
{
    return node_->built;
}

template <dtype T>
const std::string& basic_layer<T>::name() const
{
    return node_->name;
}

template <dtype T>
const std::string& basic_layer<T>::path() const
{
    return node_->path;
}

template <dtype T>
std::vector<std::pair<std::string, basic_variable<T>>> basic_layer<T>::named_variables() const
{
    std::vector<std::pair<std::string, basic_variable<T>>> out;
    std::set<const layer_node<T>*> seen;
    node_->collect(node_->path, seen, out);
    return out;
}

template <dtype T>
std::vector<basic_variable<T>> basic_layer<T>::variables() const
{
    std::vector<basic_variable<T>> out;
    for (auto& [path, variable] : named_variables()) {
        out.push_back(variable);
    }
    return out;
}

template <dtype T>
std::vector<basic_variable<T>> basic_layer<T>::trainable_variables() const
{
    std::vector<basic_variable<T>> out;
    for (auto& [path, variable] : named_variables()) {
        if (variable.trainable()) {
            out.push_back(variable);
        }
    }
    return out;
}

namespace {

// 1234567 -> "1,234,567", as Keras prints counts.
std::string with_thousands(std::size_t count)
{
    const std::string digits = std::to_string(count);
    std::string grouped;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) {
            grouped += ',';
        }
        grouped += digits[i];
    }
    return grouped;
}

}  // namespace

template <dtype T>
std::string basic_layer<T>::summary() const
{
    std::vector<std::array<std::string, 3>> rows{{"Layer", "Output shape", "Params"}};
    node_->describe(node_->path, 0, rows);
    std::array<std::size_t, 2> widths{};
    for (const auto& row : rows) {
        widths[0] = std::max(widths[0], row[0].size());
        widths[1] = std::max(widths[1], row[1].size());
    }
    std::ostringstream out;
    for (const auto& row : rows) {
        out << row[0] << std::string(widths[0] - row[0].size() + 2, ' ') << row[1]
            << std::string(widths[1] - row[1].size() + 2, ' ') << row[2] << '\n';
    }
    std::size_t trainable = 0;
    std::size_t frozen = 0;
    for (const auto& variable : variables()) {
        (variable.trainable() ? trainable : frozen) += variable.size();
    }
    out << "Total params: " << with_thousands(trainable + frozen) << '\n'
        << "Trainable params: " << with_thousands(trainable) << '\n'
        << "Non-trainable params: " << with_thousands(frozen) << '\n';
    return out.str();
}

template <dtype T>
basic_model<T>::basic_model(std::string name) : basic_layer<T>(std::make_shared<model_node<T>>(std::move(name), this))
{
}

template <dtype T>
basic_model<T>::~basic_model()
{
    static_cast<model_node<T>&>(*this->node_).owner = nullptr;
}

template <dtype T>
void basic_model<T>::adopt(const basic_layer<T>& layer, const std::source_location& site)
{
    this->node_->adopt(detail::layer_access::node(layer), site);
}

template <dtype T>
basic_sequential<T>::basic_sequential(std::vector<basic_layer<T>> layers, std::string name, std::source_location site)
    : basic_layer<T>(std::make_shared<sequential_node<T>>(std::move(name)))
{
    for (const auto& layer : layers) {
        add(layer, site);
    }
}

template <dtype T>
void basic_sequential<T>::add(const basic_layer<T>& layer, std::source_location site)
{
    this->node_->adopt(detail::layer_access::node(layer), site);
}

template <dtype T>
std::vector<basic_layer<T>> basic_sequential<T>::layers() const
{
    std::vector<basic_layer<T>> out;
    for (const auto& [edge, child] : this->node_->children) {
        out.push_back(basic_layer<T>(child));
    }
    return out;
}

template <dtype T>
basic_dense<T>::basic_dense(std::size_t units, dense_options options, std::source_location site)
    : basic_layer<T>(std::make_shared<dense_node<T>>(units, std::move(options), site))
{
}

template <dtype T>
basic_conv2d<T>::basic_conv2d(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, conv_options options,
                              std::source_location site)
    : basic_layer<T>(std::make_shared<conv2d_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_conv1d<T>::basic_conv1d(std::size_t filters, std::ptrdiff_t kernel_size, conv_options options,
                              std::source_location site)
    : basic_layer<T>(std::make_shared<conv1d_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_conv2d_transpose<T>::basic_conv2d_transpose(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size,
                                                  conv_options options, std::source_location site)
    : basic_layer<T>(std::make_shared<conv2d_transpose_node<T>>(filters, kernel_size, options, site))
{
}

template <dtype T>
basic_depthwise_conv2d<T>::basic_depthwise_conv2d(std::array<std::ptrdiff_t, 2> kernel_size,
                                                  std::size_t depth_multiplier, conv_options options,
                                                  std::source_location site)
    : basic_layer<T>(std::make_shared<depthwise_conv2d_node<T>>(kernel_size, depth_multiplier, options, site))
{
}

template <dtype T>
basic_max_pool2d<T>::basic_max_pool2d(pool_options options, std::source_location site)
    : basic_layer<T>(std::make_shared<pool_node<T, true>>(std::move(options), site))
{
}

template <dtype T>
basic_average_pool2d<T>::basic_average_pool2d(pool_options options, std::source_location site)
    : basic_layer<T>(std::make_shared<pool_node<T, false>>(std::move(options), site))
{
}

template <dtype T>
basic_global_average_pooling2d<T>::basic_global_average_pooling2d(std::string name)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), input_spec{{-1, -1, -1, -1}},
          [](const basic_tensor<T>& x, bool, const std::source_location& site) {
              return reduce_mean(x, {1, 2}, false, site);
          }))
{
}

template <dtype T>
basic_flatten<T>::basic_flatten(std::string name)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), input_spec{{-1}, true},
          [](const basic_tensor<T>& x, bool, const std::source_location& site) {
              return reshape(x, {std::ptrdiff_t(x.shape()[0]), -1}, site);
          }))
{
}

template <dtype T>
basic_dropout<T>::basic_dropout(double rate, std::string name, std::source_location site)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), std::nullopt,
          [rate](const basic_tensor<T>& x, bool training, const std::source_location& at) {
              return training ? dropout(x, rate, at) : x;
          }))
{
    if (!(rate >= 0 && rate < 1)) {
        detail::fail<argument_error>("Dropout", site, "needs a rate in [0, 1), got " + std::to_string(rate));
    }
}

template <dtype T>
basic_activation_layer<T>::basic_activation_layer(::gradtape::activation chosen, std::source_location site)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          "activation", std::nullopt,
          [kind = detail::activation_named(chosen, site)](const basic_tensor<T>& x, bool,
                                                          const std::source_location& at) {
              return detail::activate(kind, x, at);
          }))
{
}

template <dtype T>
basic_batch_normalization<T>::basic_batch_normalization(batch_normalization_options options,
                                                        std::source_location site)
    : basic_layer<T>(std::make_shared<batch_normalization_node<T>>(std::move(options), site))
{
}

template <dtype T>
basic_layer_normalization<T>::basic_layer_normalization(layer_normalization_layer_options options,
                                                        std::source_location site)
    : basic_layer<T>(std::make_shared<layer_normalization_node<T>>(std::move(options), site))
{
}

template <dtype T>
basic_embedding<T>::basic_embedding(std::size_t input_dim, std::size_t output_dim, std::string name,
                                    std::source_location site)
    : basic_layer<T>(std::make_shared<embedding_node<T>>(input_dim, output_dim, std::move(name), site))
{
}

template <dtype T>
basic_tensor<T> basic_embedding<T>::operator()(const xt::xarray<std::int64_t>& ids, std::source_location site) const
{
    return static_cast<embedding_node<T>&>(*this->node_).lookup(ids, site);
}

template <dtype T>
basic_multi_head_attention<T>::basic_multi_head_attention(std::size_t num_heads, std::size_t key_dim,
                                                          multi_head_attention_options options,
                                                          std::source_location site)
    : basic_layer<T>(std::make_shared<multi_head_attention_node<T>>(num_heads, key_dim, std::move(options), site))
{
}

template <dtype T>
basic_tensor<T> basic_multi_head_attention<T>::operator()(const basic_tensor<T>& query, const basic_tensor<T>& value,
                                                          const basic_tensor<T>& key, attention_options<T> options,
                                                          bool, std::source_location site) const
{
    auto& node = static_cast<multi_head_attention_node<T>&>(*this->node_);
    return node.run_attention(query, value, key.defined() ? key : value, options, site);
}

#define GRADTAPE_INSTANTIATE_LAYERS(T)                  \
    template class basic_layer<T>;                      \
    template class basic_model<T>;                      \
    template class basic_sequential<T>;                 \
    template class basic_dense<T>;                      \
    template class basic_conv1d<T>;                     \
    template class basic_conv2d<T>;                     \
    template class basic_conv2d_transpose<T>;           \
    template class basic_depthwise_conv2d<T>;           \
    template class basic_max_pool2d<T>;                 \
    template class basic_average_pool2d<T>;             \
    template class basic_global_average_pooling2d<T>;   \
    template class basic_flatten<T>;                    \
    template class basic_dropout<T>;                    \
    template class basic_activation_layer<T>;           \
    template class basic_batch_normalization<T>;        \
    template class basic_layer_normalization<T>;        \
    template class basic_embedding<T>;                  \
    template class basic_multi_head_attention<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
