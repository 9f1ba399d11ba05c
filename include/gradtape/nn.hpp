// Activations over an axis, losses, dropout, and convolutions.
//
//   auto logits = gradtape::matmul(hidden, w2);
//   auto loss = gradtape::reduce_mean(gradtape::sparse_softmax_cross_entropy_with_logits(labels, logits));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "ops.hpp"
#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

#define GRADTAPE_SITE source_location site = source_location::current()

/// exp(x) / sum(exp(x)) along `axis`, computed without overflow.
template <dtype T>
[[nodiscard]] basic_tensor<T> softmax(const basic_tensor<T>& x, std::ptrdiff_t axis = -1, GRADTAPE_SITE);
/// x - log(sum(exp(x))) along `axis`, computed without overflow.
template <dtype T>
[[nodiscard]] basic_tensor<T> log_softmax(const basic_tensor<T>& x, std::ptrdiff_t axis = -1, GRADTAPE_SITE);

/// -sum(labels * log_softmax(logits)) over the last axis: one loss per row.
/// labels is a distribution over the classes, shaped like logits.
template <dtype T>
[[nodiscard]] basic_tensor<T> softmax_cross_entropy_with_logits(const basic_tensor<T>& labels,
                                                                const basic_tensor<T>& logits, GRADTAPE_SITE);
/// The same with one class index per row: labels has logits' shape without its last axis.
template <dtype T>
[[nodiscard]] basic_tensor<T> sparse_softmax_cross_entropy_with_logits(const xt::xarray<std::int64_t>& labels,
                                                                       const basic_tensor<T>& logits, GRADTAPE_SITE);
/// Elementwise max(x, 0) - x * z + log(1 + exp(-|x|)) for logits x and labels z: stable for any x.
template <dtype T>
[[nodiscard]] basic_tensor<T> sigmoid_cross_entropy_with_logits(const basic_tensor<T>& labels,
                                                                const basic_tensor<T>& logits, GRADTAPE_SITE);

/// sum(x * x) / 2, as tf.nn.l2_loss.
template <dtype T> [[nodiscard]] basic_tensor<T> l2_loss(const basic_tensor<T>& x, GRADTAPE_SITE);
/// The mean of (y_pred - y_true)^2 over the last axis, as Keras's mean_squared_error.
template <dtype T>
[[nodiscard]] basic_tensor<T> mean_squared_error(const basic_tensor<T>& y_true, const basic_tensor<T>& y_pred,
                                                 GRADTAPE_SITE);

/// Zeroes each element with probability `rate` and scales the others by
/// 1 / (1 - rate), drawing from this thread's seeded generator.
template <dtype T>
[[nodiscard]] basic_tensor<T> dropout(const basic_tensor<T>& x, double rate, GRADTAPE_SITE);

/// TensorFlow's padding: `valid` pads nothing; `same` pads so that the output
/// has ceil(input / stride) positions, in total
/// max((ceil(in / stride) - 1) * stride + (k - 1) * dilation + 1 - in, 0),
/// the smaller half before.
enum class padding { valid, same };

/// How a convolution computes its products, as oneDNN and cuDNN let one choose.
/// - automatic: the process's setting (set_conv_algorithm), by default Winograd's
///   minimal filtering where it is faster (unit strides and dilations, a 3x3
///   or 5x5 kernel, 16 channels or more each way) and im2col elsewhere;
/// - winograd: Winograd's wherever it applies (unit strides and dilations, a
///   3x3 or 5x5 kernel); asked of a convolution it does not apply to, an
///   argument_error. Its rounding differs from im2col's: README, "Convolutions";
/// - im2col: one product of the windows' columns, as TensorFlow's CPU kernels.
/// A NaN or an infinity in either operand sends a convolution to im2col
/// whatever is asked, so that it reaches only the outputs whose windows hold it.
enum class conv_algorithm { automatic, winograd, im2col };

/// How conv2d and its relatives slide their filters (tf.nn.conv2d's arguments).
struct conv2d_options {
    std::array<std::ptrdiff_t, 2> strides{1, 1};                ///< Step along height and width.
    ::gradtape::padding padding = ::gradtape::padding::valid;  ///< valid, or same (zeros around).
    std::array<std::ptrdiff_t, 2> dilations{1, 1};              ///< Gap between filter taps, plus one.
    conv_algorithm algorithm = conv_algorithm::automatic;      ///< Winograd, im2col, or chosen per shape.
};

/// The algorithm of every convolution left `automatic`, for the whole process:
/// `winograd` then takes it wherever it applies, `im2col` never, and
/// `automatic` restores the default. GRADTAPE_CONV_ALGORITHM (automatic,
/// winograd or im2col) sets it when the first convolution runs.
void set_conv_algorithm(conv_algorithm algorithm);
/// The algorithm set_conv_algorithm set.
[[nodiscard]] conv_algorithm get_conv_algorithm();

/// input [N, H, W, C] (NHWC), filters [KH, KW, C, O] -> [N, OH, OW, O].
/// Gradients: conv2d_transpose(grad, filters) for the input, the correlation
/// of input and grad for the filters; both are convolutions again, so every
/// order of derivative is exact.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                     conv2d_options options = {}, GRADTAPE_SITE);

/// The gradient of conv2d with respect to its input, as tf.nn.conv2d_transpose:
/// input [N, OH, OW, O], filters [KH, KW, C, O] (as conv2d's) -> output_shape
/// [N, H, W, C], which must be a shape conv2d maps to input's.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv2d_transpose(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                               const shape_type& output_shape, conv2d_options options = {},
                                               GRADTAPE_SITE);

/// How conv1d slides its filters.
struct conv1d_options {
    std::ptrdiff_t stride = 1;                                 ///< Step along the width.
    ::gradtape::padding padding = ::gradtape::padding::valid;  ///< valid, or same (zeros around).
    std::ptrdiff_t dilation = 1;                               ///< Gap between filter taps, plus one.
};

/// input [N, W, C], filters [K, C, O] -> [N, OW, O]: conv2d over a height of 1.
template <dtype T>
[[nodiscard]] basic_tensor<T> conv1d(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                     conv1d_options options = {}, GRADTAPE_SITE);

/// The window of max_pool2d and avg_pool2d.
struct pool2d_options {
    std::array<std::ptrdiff_t, 2> ksize{2, 2};                 ///< Window height and width.
    std::array<std::ptrdiff_t, 2> strides{2, 2};               ///< Step along height and width.
    ::gradtape::padding padding = ::gradtape::padding::valid;  ///< valid, or same (partial windows at the edges).
};

/// The largest element of each window, per channel, over [N, H, W, C]; same
/// padding never picks the padding. The gradient goes to that element (the
/// first of equal ones, as in TensorFlow); a NaN in a window is its maximum.
template <dtype T>
[[nodiscard]] basic_tensor<T> max_pool2d(const basic_tensor<T>& input, pool2d_options options = {}, GRADTAPE_SITE);
/// The mean of each window, over the elements inside the input only (same
/// padding, as TensorFlow); the gradient spreads evenly over the window.
/// Global average pooling is reduce_mean over axes {1, 2}.
template <dtype T>
[[nodiscard]] basic_tensor<T> avg_pool2d(const basic_tensor<T>& input, pool2d_options options = {}, GRADTAPE_SITE);

/// A depthwise convolution's strides, padding and dilations; it has no
/// Winograd kernels, and asking for them is an argument_error.
using depthwise_conv2d_options = conv2d_options;
/// Each input channel convolved with its own M filters: input [N, H, W, C],
/// filter [KH, KW, C, M] -> [N, OH, OW, C * M], channel c * M + m from input
/// channel c and filter[..., c, m], as tf.nn.depthwise_conv2d.
template <dtype T>
[[nodiscard]] basic_tensor<T> depthwise_conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filter,
                                               depthwise_conv2d_options options = {}, GRADTAPE_SITE);

/// Rows of params picked by integer ids: params[ids[...], :] with shape
/// ids + params[1:]. Repeated ids add their gradients; an id outside
/// [0, rows) is an argument_error.
template <dtype T>
[[nodiscard]] basic_tensor<T> embedding_lookup(const basic_tensor<T>& params, const xt::xarray<std::int64_t>& ids,
                                               GRADTAPE_SITE);

/// The mean and the (population) variance of x over `axes`. Both carry their
/// whole gradient, the variance's through the mean too, so that derivatives of
/// every order are exact (tf.nn.moments stops the mean's gradient inside the
/// variance).
template <dtype T>
[[nodiscard]] std::pair<basic_tensor<T>, basic_tensor<T>> moments(const basic_tensor<T>& x, const axes_type& axes,
                                                                  bool keepdims = false, GRADTAPE_SITE);

/// (x - mean) / sqrt(variance + variance_epsilon) * scale + offset, all
/// broadcast; an undefined offset or scale is left out (tf.nn.batch_normalization).
template <dtype T>
[[nodiscard]] basic_tensor<T> batch_normalization(const basic_tensor<T>& x, const basic_tensor<T>& mean,
                                                  const basic_tensor<T>& variance, const basic_tensor<T>& offset,
                                                  const basic_tensor<T>& scale, std::type_identity_t<T> variance_epsilon,
                                                  GRADTAPE_SITE);

/// What layer_normalization normalises over.
struct layer_normalization_options {
    axes_type axes{-1};     ///< The axes of the moments.
    double epsilon = 1e-3;  ///< Added to the variance.
};
/// x normalised by its own moments over `axes`, then * gamma + beta (as
/// Keras's LayerNormalization; gamma and beta broadcast against x).
template <dtype T>
[[nodiscard]] basic_tensor<T> layer_normalization(const basic_tensor<T>& x, const basic_tensor<T>& gamma,
                                                  const basic_tensor<T>& beta, layer_normalization_options options = {},
                                                  GRADTAPE_SITE);

/// The masks of scaled_dot_product_attention.
template <dtype T>
struct attention_options {
    /// Where it is 0, a query may not attend to a key; broadcast against the
    /// scores [..., T_q, T_k]. Undefined: no mask.
    basic_tensor<T> mask{};
    /// Query i attends to keys 0..i only.
    bool causal = false;
};
/// softmax(q k^T / sqrt(D) masked) v over q [..., T_q, D], k [..., T_k, D],
/// v [..., T_k, D_v]; leading dimensions broadcast, so that heads are one more
/// leading dimension. A query row with every key masked gives NaN, as in PyTorch.
template <dtype T>
[[nodiscard]] basic_tensor<T> scaled_dot_product_attention(const basic_tensor<T>& q, const basic_tensor<T>& k,
                                                           const basic_tensor<T>& v, attention_options<T> options = {},
                                                           GRADTAPE_SITE);

#undef GRADTAPE_SITE

}  // namespace gradtape
