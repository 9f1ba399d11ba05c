// Layers that own their variables, and models made of layers, with Keras's
// names and defaults.
//
//   gt::Sequential model({gt::Conv2D(32, {5, 5}, {.padding = gt::padding::same, .activation = "relu"}),
//                         gt::MaxPool2D(), gt::Flatten(), gt::Dense(10)});
//   auto loss = optimizer.minimize([&] { return loss_of(model(images, true)); }, model);
//
// A layer is a handle: copies share one layer and its variables. Variables are
// made on the first call, from the input's shape (or by build()), and named
// by the layer's place in its model: "cnn/conv2d_1/kernel". A model written
// as a class derives from Model and adds its layers:
//
//   class cnn : public gt::Model {
//   public:
//       cnn() : gt::Model("cnn") {}
//       gt::Tensor call(const gt::Tensor& x, bool training) override { return dense_(flatten_(x)); }
//   private:
//       gt::Flatten flatten_ = add(gt::Flatten());
//       gt::Dense dense_ = add(gt::Dense(10));
//   };
//
// A layer used in a step but never added is found by optimizer.minimize(fn,
// model), which refuses to take the step. A layer builds on its first call:
// call (or build) it once before threads share it; a call of a built layer
// writes nothing on it, so threads may then call it at once.
//
// A layer with weights of its own derives from Model too, makes them with
// add_weight (in its constructor, or in make_weights() once the input's
// shape is known) and reads them in call(); see "Writing a layer" in the README.
//
// Training or inference (dropout on or off, batch normalization on the
// batch's moments or on the moving ones) is decided at each call, in order:
//   1. the `training` argument, when given;
//   2. else the mode of the layer call this one runs inside (a model's call()
//      that calls its layers without the argument passes its own mode on);
//   3. else training when a GradientTape records on this thread (inside
//      minimize, a tape of your own, a captured step), inference otherwise.
// So a step written as the README writes it trains, and evaluation outside a
// tape does not; pass `false` to run inference under a tape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "nn.hpp"
#include "source_location.hpp"
#include "variable.hpp"

namespace gradtape {

template <dtype T>
class basic_sequential;

namespace detail {
template <dtype T>
class layer_node;
struct layer_access;
}  // namespace detail

/// An activation by Keras's name: "linear" (the default: none), "relu",
/// "sigmoid", "tanh", "elu", "softplus", "softmax" (over the last axis),
/// "swish" (also "silu": x * sigmoid(x)). An unknown name is an argument_error
/// when the layer is made.
struct activation {
    /// The activation named so.
    activation(const char* name = "linear") : name(name) {}
    /// The activation named so.
    activation(std::string name) : name(std::move(name)) {}
    std::string name;  ///< Keras's name.
};

/// An initializer by Keras's name: "glorot_uniform" (the default),
/// "glorot_normal", "he_uniform", "he_normal", "orthogonal" (random.hpp),
/// "zeros" or "ones".
struct initializer {
    /// The initializer named so.
    initializer(const char* name = "glorot_uniform") : name(name) {}
    /// The initializer named so.
    initializer(std::string name) : name(std::move(name)) {}
    std::string name;  ///< Keras's name.
};

/// A handle to a layer: Dense, Conv2D, a model of layers... Copies share the
/// layer and its variables. Calling it runs the layer (operator()).
template <dtype T>
class basic_layer {
public:
    using value_type = T;  ///< The dtype of its variables and inputs.

    /// Runs the layer, training or not as the rule above decides. The first
    /// call makes the variables from input's shape (a first call that throws
    /// leaves the layer, and the layers under it that it built, as new); a
    /// later input of another shape is a shape_error naming the layer, the
    /// shape it takes and the one given.
    basic_tensor<T> operator()(const basic_tensor<T>& input, std::optional<bool> training = std::nullopt,
                               source_location site = source_location::current()) const;

    /// Makes the variables now, for an input of `input_shape` (any batch size).
    void build(const shape_type& input_shape, source_location site = source_location::current()) const;
    /// Whether the variables have been made.
    [[nodiscard]] bool built() const;

    /// The name among its siblings ("conv2d_1") and the path from the model
    /// that holds it ("cnn/conv2d_1"); both are the name until it is added.
    [[nodiscard]] const std::string& name() const;
    [[nodiscard]] const std::string& path() const;  ///< See name().

    /// Every variable of this layer and the layers under it, each once, in the
    /// order of their layers; named by path, as checkpoints store them.
    [[nodiscard]] std::vector<std::pair<std::string, basic_variable<T>>> named_variables() const;
    /// named_variables() without the names.
    [[nodiscard]] std::vector<basic_variable<T>> variables() const;
    /// The variables optimizers train: variables() but moving statistics and
    /// other weights made with `.trainable = false`.
    [[nodiscard]] std::vector<basic_variable<T>> trainable_variables() const;
    /// A table of the layers, parts indented under their model: path, the
    /// output shape of the first call, and the parameters each holds with its
    /// parts; then Keras's totals of all, trainable and non-trainable parameters.
    [[nodiscard]] std::string summary() const;

    /// @cond INTERNAL
protected:
    friend struct detail::layer_access;
    friend class basic_sequential<T>;

    explicit basic_layer(std::shared_ptr<detail::layer_node<T>> node) : node_(std::move(node)) {}

    std::shared_ptr<detail::layer_node<T>> node_;
    /// @endcond
};

/// How add_weight makes a weight.
struct weight_options {
    ::gradtape::initializer initializer{"glorot_uniform"};  ///< Its first value.
    /// Trained by optimizers, or kept as state (as moving statistics are).
    bool trainable = true;
};

/// A model (or a layer of your own) written as a class: derive, add layers
/// (and other models) as members, make weights with add_weight, and write
/// call(). Not copyable: its layers and weights are part of it.
template <dtype T>
class basic_model : public basic_layer<T> {
public:
    /// An empty model named `name`; its constructor adds the layers.
    explicit basic_model(std::string name = "model");
    basic_model(const basic_model&) = delete;
    basic_model& operator=(const basic_model&) = delete;
    virtual ~basic_model();

    /// `training` is the call's decided mode; layers called in here without
    /// the argument take it.
    virtual basic_tensor<T> call(const basic_tensor<T>& input, bool training) = 0;
    /// A call() without the mode is the common slip: declared here, deleted,
    /// so that the compiler stops at it and quotes this line.
    virtual basic_tensor<T> call(const basic_tensor<T>& input) = delete;  // write call(const Tensor& x, bool training)

protected:
    /// Runs once, before the first call(), with that input's shape: the place
    /// for weights whose shape follows the input's (Keras's build(); here
    /// build() is what every layer offers its users, so the hook has its own name).
    virtual void make_weights(const shape_type& input_shape);

    /// A weight of this model, named by its path ("tempered/temperature"),
    /// held, trained, listed and saved as a layer's variables are. Made in the
    /// constructor or in make_weights(); a name a sibling weight or layer has
    /// (or one with '/'), a dimension of zero, an unknown initializer, or a
    /// model already built is an argument_error naming the path (a shape too
    /// large, a shape_error), and nothing is added.
    basic_variable<T> add_weight(const std::string& name, const shape_type& shape, weight_options options = {},
                                 source_location site = source_location::current());

    /// Makes `layer` a part of this model, named uniquely among the others
    /// ("dense", "dense_1", ...), and returns it.
    template <class Layer>
        requires std::is_base_of_v<basic_layer<T>, Layer> && std::is_copy_constructible_v<Layer>
    Layer add(Layer layer, source_location site = source_location::current())
    {
        adopt(layer, site);
        return layer;
    }
    /// A model held as a member, made a part of this one; the handle calls it.
    basic_layer<T> add(basic_model& model, source_location site = source_location::current())
    {
        adopt(model, site);
        return model;
    }

private:
    friend struct detail::layer_access;
    void adopt(const basic_layer<T>& layer, const source_location& site);
};

/// Layers applied in order.
template <dtype T>
class basic_sequential : public basic_layer<T> {
public:
    /// The layers, run first to last; each takes the place's name ("dense", "dense_1").
    explicit basic_sequential(std::vector<basic_layer<T>> layers, std::string name = "sequential",
                              source_location site = source_location::current());
    /// Appends a layer.
    void add(const basic_layer<T>& layer, source_location site = source_location::current());
    /// The layers, in order.
    [[nodiscard]] std::vector<basic_layer<T>> layers() const;
};

/// Dense's options, Keras's names and defaults.
struct dense_options {
    ::gradtape::activation activation{};  ///< Applied to the output.
    initializer kernel_initializer{};     ///< The kernel's first value.
    bool use_bias = true;                 ///< Whether to add a bias.
    std::string name = "dense";           ///< Its name; made unique among its siblings.
};
/// activation(x kernel + bias) over the last axis; kernel [in, units], bias zeros.
template <dtype T>
class basic_dense : public basic_layer<T> {
public:
    /// A layer of `units` outputs.
    explicit basic_dense(std::size_t units, dense_options options = {},
                         source_location site = source_location::current());
};

/// The convolution layers' options, Keras's names and defaults.
struct conv_options {
    std::array<std::ptrdiff_t, 2> strides{1, 1};               ///< Step along height and width.
    ::gradtape::padding padding = ::gradtape::padding::valid;  ///< valid, or same.
    std::array<std::ptrdiff_t, 2> dilation_rate{1, 1};          ///< Gap between kernel taps, plus one.
    /// Conv2D and Conv2DTranspose only (nn.hpp).
    conv_algorithm algorithm = conv_algorithm::automatic;
    ::gradtape::activation activation{};  ///< Applied to the output.
    initializer kernel_initializer{};     ///< The kernel's first value.
    bool use_bias = true;                 ///< Whether to add a bias per output channel.
    std::string name{};                   ///< Empty: the layer's kind ("conv2d").
};
/// conv2d with kernel [KH, KW, C, filters] and a bias per filter.
template <dtype T>
class basic_conv2d : public basic_layer<T> {
public:
    /// `filters` output channels, a kernel of kernel_size.
    basic_conv2d(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, conv_options options = {},
                 source_location site = source_location::current());
};
/// conv1d over [N, W, C]: kernel [K, C, filters]; strides[0] and dilation_rate[0] are used.
template <dtype T>
class basic_conv1d : public basic_layer<T> {
public:
    /// `filters` output channels, a kernel of kernel_size.
    basic_conv1d(std::size_t filters, std::ptrdiff_t kernel_size, conv_options options = {},
                 source_location site = source_location::current());
};
/// conv2d_transpose with kernel [KH, KW, filters, C]: the output has
/// input * stride positions with same padding, (input - 1) * stride + kernel with valid.
template <dtype T>
class basic_conv2d_transpose : public basic_layer<T> {
public:
    /// `filters` output channels, a kernel of kernel_size.
    basic_conv2d_transpose(std::size_t filters, std::array<std::ptrdiff_t, 2> kernel_size, conv_options options = {},
                           source_location site = source_location::current());
};
/// depthwise_conv2d with depthwise_kernel [KH, KW, C, depth_multiplier] and a bias per output channel.
template <dtype T>
class basic_depthwise_conv2d : public basic_layer<T> {
public:
    /// A kernel of kernel_size per input channel, depth_multiplier outputs each.
    basic_depthwise_conv2d(std::array<std::ptrdiff_t, 2> kernel_size, std::size_t depth_multiplier = 1,
                           conv_options options = {}, source_location site = source_location::current());
};

/// The pooling layers' options, Keras's names and defaults.
struct pool_options {
    std::array<std::ptrdiff_t, 2> pool_size{2, 2};  ///< Window height and width.
    /// Zero: the pool size, as in Keras.
    std::array<std::ptrdiff_t, 2> strides{0, 0};
    ::gradtape::padding padding = ::gradtape::padding::valid;  ///< valid, or same.
    std::string name{};                                        ///< Empty: the layer's kind.
};
/// max_pool2d over windows of pool_size.
template <dtype T>
class basic_max_pool2d : public basic_layer<T> {
public:
    /// A pooling layer with these options.
    explicit basic_max_pool2d(pool_options options = {}, source_location site = source_location::current());
};
/// avg_pool2d over windows of pool_size.
template <dtype T>
class basic_average_pool2d : public basic_layer<T> {
public:
    /// A pooling layer with these options.
    explicit basic_average_pool2d(pool_options options = {},
                                  source_location site = source_location::current());
};
/// The mean over height and width: [N, H, W, C] -> [N, C].
template <dtype T>
class basic_global_average_pooling2d : public basic_layer<T> {
public:
    /// A layer named `name`.
    explicit basic_global_average_pooling2d(std::string name = "global_average_pooling2d");
};
/// [N, ...] -> [N, product of the rest].
template <dtype T>
class basic_flatten : public basic_layer<T> {
public:
    /// A layer named `name`.
    explicit basic_flatten(std::string name = "flatten");
};
/// dropout(x, rate) when training, x otherwise.
template <dtype T>
class basic_dropout : public basic_layer<T> {
public:
    /// Drops each element with probability `rate` (in [0, 1)) and scales the rest by 1 / (1 - rate).
    explicit basic_dropout(double rate, std::string name = "dropout",
                           source_location site = source_location::current());
};
/// An activation as a layer of its own.
template <dtype T>
class basic_activation_layer : public basic_layer<T> {
public:
    /// A layer applying `activation`.
    explicit basic_activation_layer(::gradtape::activation activation,
                                    source_location site = source_location::current());
};

/// BatchNormalization's options, Keras's names and defaults.
struct batch_normalization_options {
    double momentum = 0.99;                    ///< How much of the moving moments each training call keeps.
    double epsilon = 1e-3;                     ///< Added to the variance.
    bool center = true;                        ///< A trainable offset, beta.
    bool scale = true;                         ///< A trainable scale, gamma.
    std::string name = "batch_normalization";  ///< Its name.
};
/// Over the last axis, as Keras's BatchNormalization: when training, the
/// batch's own moments, and moving_mean/moving_variance (non-trainable) move
/// towards them by 1 - momentum; otherwise the moving ones.
template <dtype T>
class basic_batch_normalization : public basic_layer<T> {
public:
    /// A layer with these options.
    explicit basic_batch_normalization(batch_normalization_options options = {},
                                       source_location site = source_location::current());
};

/// LayerNormalization's options, Keras's names and defaults.
struct layer_normalization_layer_options {
    double epsilon = 1e-3;                     ///< Added to the variance.
    std::string name = "layer_normalization";  ///< Its name.
};
/// layer_normalization over the last axis with gamma (ones) and beta (zeros).
template <dtype T>
class basic_layer_normalization : public basic_layer<T> {
public:
    /// A layer with these options.
    explicit basic_layer_normalization(layer_normalization_layer_options options = {},
                                       source_location site = source_location::current());
};

/// Rows of embeddings [input_dim, output_dim] (uniform on [-0.05, 0.05], as
/// Keras) picked by ids; called with a tensor, its values must be whole numbers.
template <dtype T>
class basic_embedding : public basic_layer<T> {
public:
    /// A table of input_dim rows of output_dim.
    basic_embedding(std::size_t input_dim, std::size_t output_dim, std::string name = "embedding",
                    source_location site = source_location::current());
    /// The rows of `ids`: shape ids.shape + (output_dim,). An id out of range is an argument_error.
    basic_tensor<T> operator()(const xt::xarray<std::int64_t>& ids,
                               source_location site = source_location::current()) const;
    using basic_layer<T>::operator();
};

/// MultiHeadAttention's options, Keras's names and defaults.
struct multi_head_attention_options {
    /// Zero: key_dim.
    std::size_t value_dim = 0;
    bool use_bias = true;  ///< Biases on the four projections.
    /// Query i attends to keys 0..i only when called with one tensor.
    bool use_causal_mask = false;
    std::string name = "multi_head_attention";  ///< Its name.
};
/// Keras's MultiHeadAttention: query, key and value projected to num_heads
/// heads of key_dim (kernels [D, heads, key_dim]), scaled dot-product
/// attention per head, and the heads projected back to the query's width.
/// Called with one tensor it is self-attention.
template <dtype T>
class basic_multi_head_attention : public basic_layer<T> {
public:
    /// num_heads heads of key_dim.
    basic_multi_head_attention(std::size_t num_heads, std::size_t key_dim, multi_head_attention_options options = {},
                               source_location site = source_location::current());
    /// query [B, T_q, D], value [B, T_k, D_v], key (default: value) [B, T_k, D_k].
    basic_tensor<T> operator()(const basic_tensor<T>& query, const basic_tensor<T>& value,
                               const basic_tensor<T>& key, attention_options<T> options,
                               std::optional<bool> training = std::nullopt,
                               source_location site = source_location::current()) const;
    using basic_layer<T>::operator();
};

/// The recurrent layers, as Keras's: an input [batch, time, features] gives
/// the last step's output [batch, units], or every step's [batch, time, units]
/// with return_sequences. Each step adds the input's product with `kernel` to
/// the state's with `recurrent_kernel`.
struct recurrent_options {
    ::gradtape::activation activation{"tanh"};  ///< Of the state (and of the LSTM's cell).
    /// The gates' activation (LSTM and GRU).
    ::gradtape::activation recurrent_activation{"sigmoid"};
    bool use_bias = true;                              ///< Whether to add a bias.
    initializer kernel_initializer{"glorot_uniform"};  ///< The input kernel's first value.
    initializer recurrent_initializer{"orthogonal"};   ///< The recurrent kernel's first value.
    initializer bias_initializer{"zeros"};             ///< The bias's first value.
    /// LSTM: the forget gate's bias starts at one.
    bool unit_forget_bias = true;
    /// GRU: the reset gate scales the recurrent product after it is taken
    /// (Keras 2 and later, cuDNN), with a bias [2, 3 units] (input, recurrent).
    bool reset_after = true;
    bool return_sequences = false;  ///< Every step's output, not only the last.
    /// Runs from the last step to the first; the sequence comes out in that order.
    bool go_backwards = false;
    /// With a mask and return_sequences: zeros at masked steps, rather than
    /// the last unmasked step's output.
    bool zero_output_for_mask = false;
    std::string name{};  ///< Empty: the layer's kind ("lstm").
};

/// What a recurrent layer is called with beside its input.
template <dtype T>
struct recurrent_inputs {
    /// [batch, time]: non-zero where a step is real. A masked step leaves the
    /// state as it was (padding at either end is skipped).
    basic_tensor<T> mask{};
    /// The state to start from, each [batch, units]: h, or h and c for an
    /// LSTM (Bidirectional: the forward layer's, then the backward's). Empty: zeros.
    std::vector<basic_tensor<T>> initial_state{};
    std::optional<bool> training{};  ///< The mode, decided as for any layer call.
};

/// What a recurrent layer called with recurrent_inputs returns.
template <dtype T>
struct recurrent_result {
    basic_tensor<T> output;  ///< As the plain call returns it.
    /// The final state (Keras's return_state), in initial_state's order.
    std::vector<basic_tensor<T>> state;
};

/// What SimpleRNN, LSTM, GRU and Bidirectional share: a call with a mask and
/// an initial state that also returns the final state.
template <dtype T>
class basic_recurrent_layer : public basic_layer<T> {
public:
    using basic_layer<T>::operator();
    /// The output with the final state, from a mask and an initial state.
    recurrent_result<T> operator()(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs,
                                   source_location site = source_location::current()) const;

protected:
    using basic_layer<T>::basic_layer;
};

/// h = activation(x kernel + h recurrent_kernel + bias).
template <dtype T>
class basic_simple_rnn : public basic_recurrent_layer<T> {
public:
    /// A layer of `units`.
    explicit basic_simple_rnn(std::size_t units, recurrent_options options = {},
                              source_location site = source_location::current());
};
/// Gates i, f, c, o side by side in kernel [features, 4 units],
/// recurrent_kernel [units, 4 units] and bias [4 units]:
///   c = f * c + i * activation(z_c),  h = o * activation(c).
template <dtype T>
class basic_lstm : public basic_recurrent_layer<T> {
public:
    /// A layer of `units`.
    explicit basic_lstm(std::size_t units, recurrent_options options = {},
                        source_location site = source_location::current());
};
/// Gates z, r and the candidate h~ side by side in kernel [features, 3 units]
/// and recurrent_kernel [units, 3 units]:  h = z * h + (1 - z) * h~.
template <dtype T>
class basic_gru : public basic_recurrent_layer<T> {
public:
    /// A layer of `units`.
    explicit basic_gru(std::size_t units, recurrent_options options = {},
                       source_location site = source_location::current());
};

/// How Bidirectional merges its two outputs: side by side, or elementwise.
enum class merge_mode { concat, sum, mul, ave };
/// Bidirectional's options, Keras's names and defaults.
struct bidirectional_options {
    ::gradtape::merge_mode merge_mode = ::gradtape::merge_mode::concat;  ///< How the outputs merge.
    std::string name{};                                                  ///< Empty: "bidirectional".
};
/// The layer run forward and a copy of it (its own weights) run backward,
/// their outputs merged step by step: "forward_lstm" and "backward_lstm" under
/// "bidirectional".
template <dtype T>
class basic_bidirectional : public basic_recurrent_layer<T> {
public:
    /// `layer` forward, and a copy of it backward.
    explicit basic_bidirectional(const basic_recurrent_layer<T>& layer, bidirectional_options options = {},
                                 source_location site = source_location::current());
};

/// @name The float32 layers, by Keras's names
/// @{

/// The float32 layer of Keras's (or PyTorch's) name.
using Layer = basic_layer<float>;
using Model = basic_model<float>;
using Sequential = basic_sequential<float>;
using Dense = basic_dense<float>;
using Conv1D = basic_conv1d<float>;
using Conv2D = basic_conv2d<float>;
using Conv2DTranspose = basic_conv2d_transpose<float>;
using DepthwiseConv2D = basic_depthwise_conv2d<float>;
using MaxPool2D = basic_max_pool2d<float>;
using AveragePool2D = basic_average_pool2d<float>;
using GlobalAveragePooling2D = basic_global_average_pooling2d<float>;
using Flatten = basic_flatten<float>;
using Dropout = basic_dropout<float>;
using Activation = basic_activation_layer<float>;
using BatchNormalization = basic_batch_normalization<float>;
using LayerNormalization = basic_layer_normalization<float>;
using Embedding = basic_embedding<float>;
using MultiHeadAttention = basic_multi_head_attention<float>;
using SimpleRNN = basic_simple_rnn<float>;
using LSTM = basic_lstm<float>;
using GRU = basic_gru<float>;
using Bidirectional = basic_bidirectional<float>;
/// @}

/// @name The float64 layers
/// @{

/// The float64 layer of that name.
using Layer64 = basic_layer<double>;
using Model64 = basic_model<double>;
using Sequential64 = basic_sequential<double>;
using Dense64 = basic_dense<double>;
using Conv1D64 = basic_conv1d<double>;
using Conv2D64 = basic_conv2d<double>;
using Conv2DTranspose64 = basic_conv2d_transpose<double>;
using DepthwiseConv2D64 = basic_depthwise_conv2d<double>;
using MaxPool2D64 = basic_max_pool2d<double>;
using AveragePool2D64 = basic_average_pool2d<double>;
using GlobalAveragePooling2D64 = basic_global_average_pooling2d<double>;
using Flatten64 = basic_flatten<double>;
using Dropout64 = basic_dropout<double>;
using Activation64 = basic_activation_layer<double>;
using BatchNormalization64 = basic_batch_normalization<double>;
using LayerNormalization64 = basic_layer_normalization<double>;
using Embedding64 = basic_embedding<double>;
using MultiHeadAttention64 = basic_multi_head_attention<double>;
using SimpleRNN64 = basic_simple_rnn<double>;
using LSTM64 = basic_lstm<double>;
using GRU64 = basic_gru<double>;
using Bidirectional64 = basic_bidirectional<double>;
/// @}

}  // namespace gradtape
