// Activations over an axis, losses and dropout. The cross-entropies are
// compositions of recorded ops; their derivatives follow from those.
#include <gradtape/nn.hpp>

#include <cmath>
#include <limits>
#include <numeric>

#include <gradtape/random.hpp>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>
#include <xtensor/xsort.hpp>

#include "ops/op.hpp"
#include "kernels/strided.hpp"
#include "kernels/unary.hpp"
#include "core/random_draws.hpp"

namespace gradtape {

using detail::backward_args;
using detail::fail;
using detail::format_shape;
using detail::saved;

namespace {

// softmax (or, with `log`, log_softmax) of each line of x along `axis`,
// written into out with no array of its own. Each line is shifted by its
// maximum first, so that exp() cannot overflow; a maximum that is not finite
// shifts by 0, so that an infinite logit gives the formula's NaN.
template <bool log, dtype T>
void softmax_lines(xt::xarray<T>& out, const xt::xarray<T>& x, std::size_t axis)
{
    const detail::around_axis parts = detail::split_at(x.shape(), axis);
    const std::size_t step = parts.inner;
    for (std::size_t o = 0; o < parts.outer; ++o) {
        for (std::size_t i = 0; i < parts.inner; ++i) {
            const std::size_t first = o * parts.length * parts.inner + i;
            const T* line = x.data() + first;
            T* into = out.data() + first;
            T maximum = -std::numeric_limits<T>::infinity();
            for (std::size_t j = 0; j < parts.length; ++j) {
                maximum = std::max(maximum, line[j * step]);
            }
            if (!std::isfinite(maximum)) {
                maximum = T(0);
            }
            for (std::size_t j = 0; j < parts.length; ++j) {
                into[j * step] = line[j * step] - maximum;
            }
            if (step == 1) {
                detail::unary_kernel(detail::unary_function::exp, into, into, parts.length);
            } else {
                for (std::size_t j = 0; j < parts.length; ++j) {
                    into[j * step] = std::exp(into[j * step]);
                }
            }
            T total = T(0);
            for (std::size_t j = 0; j < parts.length; ++j) {
                total += into[j * step];
            }
            if constexpr (log) {
                const T log_total = std::log(total);
                for (std::size_t j = 0; j < parts.length; ++j) {
                    into[j * step] = (line[j * step] - maximum) - log_total;
                }
            } else {
                for (std::size_t j = 0; j < parts.length; ++j) {
                    into[j * step] /= total;
                }
            }
        }
    }
}

// What softmax and log_softmax share: the class axis and the shape rule.
template <class Op>
struct along_classes {
    std::ptrdiff_t axis;
    shape_type shape(const source_location& site, const shape_type& x) const
    {
        detail::normalize_axis(Op::name, site, axis, x.size());
        return x;
    }
};

template <dtype T>
struct softmax_op : along_classes<softmax_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "softmax";
    static constexpr saved saves = saved::output;
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        softmax_lines<false>(out, x, detail::normalize_axis(name, {}, this->axis, x.dimension()));
    }
    // y * (grad - sum(grad * y))
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        const basic_tensor<T>& y = args.output;
        return {y * (args.grad - reduce_sum(args.grad * y, this->axis, true))};
    }
    // y * (v - sum(v * y)): the Jacobian is symmetric
    basic_tensor<T> jvp(const detail::jvp_args<T, 1>& args) const
    {
        const basic_tensor<T>& y = args.output;
        return y * (args.tangents[0] - reduce_sum(args.tangents[0] * y, this->axis, true));
    }
};

template <dtype T>
struct log_softmax_op : along_classes<log_softmax_op<T>> {
    using value_type = T;
    static constexpr std::string_view name = "log_softmax";
    static constexpr saved saves = saved::output;
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        softmax_lines<true>(out, x, detail::normalize_axis(name, {}, this->axis, x.dimension()));
    }
    // grad - exp(y) * sum(grad)
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {args.grad - exp(args.output) * reduce_sum(args.grad, this->axis, true)};
    }
    // v - sum(exp(y) * v)
    basic_tensor<T> jvp(const detail::jvp_args<T, 1>& args) const
    {
        return args.tangents[0] - reduce_sum(exp(args.output) * args.tangents[0], this->axis, true);
    }
};

// max(x, 0) - x z + log(1 + exp(-|x|)) for logits x and labels z.
template <dtype T>
struct sigmoid_cross_entropy_op {
    using value_type = T;
    static constexpr std::string_view name = "sigmoid_cross_entropy_with_logits";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::diagonal;
    shape_type shape(const source_location& site, const shape_type& labels, const shape_type& logits) const
    {
        if (labels != logits) {
            fail<shape_error>(name, site,
                              "labels " + format_shape(labels) + " and logits " + format_shape(logits) +
                                  " must have one shape");
        }
        return logits;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& z, const xt::xarray<T>& x) const
    {
        xt::noalias(out) = xt::maximum(x, T(0)) - x * z + xt::log1p(xt::exp(-xt::abs(x)));
    }
    // -grad * x, grad * (sigmoid(x) - z)
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& labels = args.inputs[0];
        const basic_tensor<T>& logits = args.inputs[1];
        return {args.needed[0] ? -(args.grad * logits) : basic_tensor<T>{},
                args.needed[1] ? args.grad * (sigmoid(logits) - labels) : basic_tensor<T>{}};
    }
};

template <dtype T>
struct l2_loss_op {
    using value_type = T;
    static constexpr std::string_view name = "l2_loss";
    static constexpr saved saves = saved::inputs;
    shape_type shape(const source_location&, const shape_type&) const { return {}; }
    // A plain loop: xt::sum over a lazy square steps one element at a time.
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        out() = std::inner_product(x.storage().begin(), x.storage().end(), x.storage().begin(), T(0)) / T(2);
    }
    // grad * x
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {args.grad * args.inputs[0]};
    }
    // sum(x * v)
    basic_tensor<T> jvp(const detail::jvp_args<T, 1>& args) const
    {
        return reduce_sum(args.inputs[0] * args.tangents[0]);
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> softmax(const basic_tensor<T>& x, std::ptrdiff_t axis, source_location site)
{
    return detail::apply(softmax_op<T>{{axis}}, site, x);
}

template <dtype T>
basic_tensor<T> log_softmax(const basic_tensor<T>& x, std::ptrdiff_t axis, source_location site)
{
    return detail::apply(log_softmax_op<T>{{axis}}, site, x);
}

template <dtype T>
basic_tensor<T> softmax_cross_entropy_with_logits(const basic_tensor<T>& labels, const basic_tensor<T>& logits,
                                                  source_location site)
{
    if (labels.shape() != logits.shape() || logits.dimension() == 0) {
        fail<shape_error>("softmax_cross_entropy_with_logits", site,
                          "labels " + format_shape(labels.shape()) + " and logits " + format_shape(logits.shape()) +
                              " must have one shape, of rank 1 or more");
    }
    return negative(reduce_sum(multiply(labels, log_softmax(logits, -1, site), site), {-1}, false, site), site);
}

template <dtype T>
basic_tensor<T> sparse_softmax_cross_entropy_with_logits(const xt::xarray<std::int64_t>& labels,
                                                         const basic_tensor<T>& logits, source_location site)
{
    constexpr std::string_view op = "sparse_softmax_cross_entropy_with_logits";
    const shape_type& shape = logits.shape();
    if (shape.empty() || labels.shape() != shape_type(shape.begin(), shape.end() - 1)) {
        fail<shape_error>(op, site,
                          "labels " + format_shape(labels.shape()) + " must have the shape of logits " +
                              format_shape(shape) + " without its last axis");
    }
    const basic_tensor<T> indicators = detail::class_indicators<T>(labels, shape.back(), op, site);
    return negative(reduce_sum(multiply(indicators, log_softmax(logits, -1, site), site), {-1}, false, site), site);
}

template <dtype T>
basic_tensor<T> sigmoid_cross_entropy_with_logits(const basic_tensor<T>& labels, const basic_tensor<T>& logits,
                                                  source_location site)
{
    return detail::apply(sigmoid_cross_entropy_op<T>{}, site, labels, logits);
}

template <dtype T>
basic_tensor<T> l2_loss(const basic_tensor<T>& x, source_location site)
{
    return detail::apply(l2_loss_op<T>{}, site, x);
}

template <dtype T>
basic_tensor<T> mean_squared_error(const basic_tensor<T>& y_true, const basic_tensor<T>& y_pred,
                                   source_location site)
{
    if (y_true.dimension() == 0 && y_pred.dimension() == 0) {
        return square(subtract(y_pred, y_true, site), site);
    }
    return reduce_mean(square(subtract(y_pred, y_true, site), site), {-1}, false, site);
}

namespace {

// Which elements dropout keeps, scaled by 1 / (1 - rate), the rest 0: drawn
// from the thread's generator each time the kernel runs, as random_uniform
// draws, so that a replay draws a new mask where eager mode would.
template <dtype T>
struct dropout_mask_op {
    using value_type = T;
    static constexpr std::string_view name = "dropout";
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    shape_type of;
    double rate;

    shape_type shape(const source_location&) const { return of; }
    void forward(xt::xarray<T>& out) const
    {
        detail::draw_uniform(out.data(), out.size(), T(0), T(1));
        const T kept = T(1 / (1 - rate));
        for (T& value : out) {
            value = value >= T(rate) ? kept : T(0);
        }
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> dropout(const basic_tensor<T>& x, double rate, source_location site)
{
    if (!(rate >= 0 && rate < 1)) {
        fail<argument_error>("dropout", site, "rate must be in [0, 1), got " + std::to_string(rate));
    }
    if (rate == 0) {
        return x;
    }
    return multiply(x, detail::apply(dropout_mask_op<T>{x.shape(), rate}, site), site);
}

namespace {

template <dtype T>
struct add_rows_by_id_op;

// Rows of params picked by ids held as whole numbers in a tensor of params'
// dtype (an Embedding called on a float tensor). The ids are an input, read
// and checked when the kernel runs, so that a replay reads its call's.
template <dtype T>
struct rows_by_id_op {
    using value_type = T;
    static constexpr std::string_view name = "embedding_lookup";
    static constexpr saved saves = saved::inputs;
    // What the message about an id that is not a whole number names: the layer.
    std::string_view caller;
    source_location site;

    shape_type shape(const source_location& at, const shape_type& params, const shape_type& ids) const
    {
        if (params.empty()) {
            fail<shape_error>(name, at, "needs params of rank 1 or more, got " + format_shape(params));
        }
        shape_type out = ids;
        out.insert(out.end(), params.begin() + 1, params.end());
        return out;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& params, const xt::xarray<T>& ids) const
    {
        const std::size_t rows = params.shape()[0];
        const std::size_t width = rows == 0 ? 0 : params.size() / rows;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const T id = ids.data()[i];
            if (!(std::trunc(id) == id) || std::abs(id) > T(1e15)) {
                fail<argument_error>(caller, site, "takes whole-number ids, got " + std::to_string(id));
            }
            if (id < 0 || std::size_t(id) >= rows) {
                fail<argument_error>(name, site,
                                     "id " + std::to_string(std::int64_t(id)) + " is not a row of params " +
                                         format_shape(params.shape()));
            }
            std::copy_n(params.data() + std::size_t(id) * width, width, out.data() + i * width);
        }
    }
    // grad's rows added into zeros of the params' shape at their ids; none for the ids
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        return {detail::apply(add_rows_by_id_op<T>{caller, site, args.input_shape(0)}, {}, args.grad, args.inputs[1]),
                basic_tensor<T>{}};
    }
    // the rows of v_params at the ids: linear in params, the ids fixed
    basic_tensor<T> jvp(const detail::jvp_args<T, 2>& args) const
    {
        return args.tangents[0].defined() ? detail::apply(*this, {}, args.tangents[0], args.inputs[1])
                                          : basic_tensor<T>{};
    }
};

// The gradient of rows_by_id_op: each row of grad added into zeros of the
// params' shape at its id.
template <dtype T>
struct add_rows_by_id_op {
    using value_type = T;
    static constexpr std::string_view name = "embedding_lookup_gradient";
    static constexpr saved saves = saved::inputs;
    std::string_view caller;
    source_location site;
    shape_type params;

    shape_type shape(const source_location&, const shape_type&, const shape_type&) const { return params; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad, const xt::xarray<T>& ids) const
    {
        out.fill(T(0));
        const std::size_t width = params.empty() || params[0] == 0 ? 0 : out.size() / params[0];
        for (std::size_t i = 0; i < ids.size(); ++i) {
            T* row = out.data() + std::size_t(ids.data()[i]) * width;
            const T* from = grad.data() + i * width;
            for (std::size_t k = 0; k < width; ++k) {
                row[k] += from[k];
            }
        }
    }
    // the rows of g at the ids; none for the ids
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        return {detail::apply(rows_by_id_op<T>{caller, site}, {}, args.grad, args.inputs[1]), basic_tensor<T>{}};
    }
    // v_grad's rows added at the ids: linear in grad, the ids fixed
    basic_tensor<T> jvp(const detail::jvp_args<T, 2>& args) const
    {
        return args.tangents[0].defined() ? detail::apply(*this, {}, args.tangents[0], args.inputs[1])
                                          : basic_tensor<T>{};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> detail::embedding_of_numbers(const basic_tensor<T>& params, const basic_tensor<T>& ids,
                                             std::string_view caller, const source_location& site)
{
    return detail::apply(rows_by_id_op<T>{caller, site}, site, params, ids);
}

template <dtype T>
basic_tensor<T> embedding_lookup(const basic_tensor<T>& params, const xt::xarray<std::int64_t>& ids,
                                 source_location site)
{
    if (params.dimension() == 0) {
        fail<shape_error>("embedding_lookup", site, "needs params of rank 1 or more, got " + format_shape(params.shape()));
    }
    for (std::int64_t id : ids) {
        if (id < 0 || std::size_t(id) >= params.shape()[0]) {
            fail<argument_error>("embedding_lookup", site,
                                 "id " + std::to_string(id) + " is not a row of params " + format_shape(params.shape()));
        }
    }
    return gather(params, ids, 0, site);
}

template <dtype T>
std::pair<basic_tensor<T>, basic_tensor<T>> moments(const basic_tensor<T>& x, const axes_type& axes, bool keepdims,
                                                    source_location site)
{
    const basic_tensor<T> mean = reduce_mean(x, axes, true, site);
    const basic_tensor<T> variance = reduce_mean(square(subtract(x, mean, site), site), axes, true, site);
    if (keepdims) {
        return {mean, variance};
    }
    return {squeeze(mean, axes, site), squeeze(variance, axes, site)};
}

template <dtype T>
basic_tensor<T> batch_normalization(const basic_tensor<T>& x, const basic_tensor<T>& mean,
                                    const basic_tensor<T>& variance, const basic_tensor<T>& offset,
                                    const basic_tensor<T>& scale, std::type_identity_t<T> variance_epsilon,
                                    source_location site)
{
    if (!(variance_epsilon >= 0)) {
        fail<argument_error>("batch_normalization", site,
                             "variance_epsilon must be >= 0, got " + std::to_string(variance_epsilon));
    }
    basic_tensor<T> normalized =
        multiply(subtract(x, mean, site), rsqrt(add(variance, basic_tensor<T>(variance_epsilon), site), site), site);
    if (scale.defined()) {
        normalized = multiply(normalized, scale, site);
    }
    return offset.defined() ? add(normalized, offset, site) : normalized;
}

template <dtype T>
basic_tensor<T> layer_normalization(const basic_tensor<T>& x, const basic_tensor<T>& gamma, const basic_tensor<T>& beta,
                                    layer_normalization_options options, source_location site)
{
    const auto [mean, variance] = moments(x, options.axes, true, site);
    return batch_normalization(x, mean, variance, beta, gamma, T(options.epsilon), site);
}

template <dtype T>
basic_tensor<T> scaled_dot_product_attention(const basic_tensor<T>& q, const basic_tensor<T>& k,
                                             const basic_tensor<T>& v, attention_options<T> options,
                                             source_location site)
{
    constexpr std::string_view op = "scaled_dot_product_attention";
    if (q.dimension() < 2 || k.dimension() < 2 || v.dimension() < 2 || q.shape().back() != k.shape().back() ||
        k.shape()[k.dimension() - 2] != v.shape()[v.dimension() - 2]) {
        fail<shape_error>(op, site,
                          "needs q [..., T_q, D], k [..., T_k, D] and v [..., T_k, D_v], got " +
                              format_shape(q.shape()) + ", " + format_shape(k.shape()) + " and " +
                              format_shape(v.shape()));
    }
    const T scale = T(1) / std::sqrt(T(q.shape().back()));
    basic_tensor<T> scores = multiply(matmul(q, k, {.transpose_b = true}, site), basic_tensor<T>(scale), site);
    const basic_tensor<T> masked(-std::numeric_limits<T>::infinity());
    if (options.causal) {
        const std::size_t queries = q.shape()[q.dimension() - 2];
        const std::size_t keys = k.shape()[k.dimension() - 2];
        xt::xarray<T> allowed = xt::zeros<T>({queries, keys});
        for (std::size_t i = 0; i < queries; ++i) {
            for (std::size_t j = 0; j <= i && j < keys; ++j) {
                allowed(i, j) = T(1);
            }
        }
        scores = where(basic_tensor<T>(std::move(allowed)), scores, masked, site);
    }
    if (options.mask.defined()) {
        // A mask of more dimensions than the scores would broadcast them up,
        // and the result would no longer be [..., T_q, D_v].
        if (detail::broadcast_shape(op, site, options.mask.shape(), scores.shape(), sizeof(T)) != scores.shape()) {
            fail<shape_error>(op, site,
                              "the mask " + format_shape(options.mask.shape()) + " does not broadcast to the scores " +
                                  format_shape(scores.shape()) + " ([..., T_q, T_k])");
        }
        scores = where(options.mask, scores, masked, site);
    }
    return matmul(softmax(scores, -1, site), v, {}, site);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> detail::embedding_of_numbers(const basic_tensor<T>&, const basic_tensor<T>&,            \
                                                          std::string_view, const source_location&);           \
    template basic_tensor<T> embedding_lookup(const basic_tensor<T>&, const xt::xarray<std::int64_t>&,              \
                                              source_location);                                                \
    template std::pair<basic_tensor<T>, basic_tensor<T>> moments(const basic_tensor<T>&, const axes_type&, bool,    \
                                                                 source_location);                             \
    template basic_tensor<T> batch_normalization(const basic_tensor<T>&, const basic_tensor<T>&,                    \
                                                 const basic_tensor<T>&, const basic_tensor<T>&,                    \
                                                 const basic_tensor<T>&, std::type_identity_t<T>,                   \
                                                 source_location);                                             \
    template basic_tensor<T> layer_normalization(const basic_tensor<T>&, const basic_tensor<T>&,                    \
                                                 const basic_tensor<T>&, layer_normalization_options,               \
                                                 source_location);                                             \
    template basic_tensor<T> scaled_dot_product_attention(const basic_tensor<T>&, const basic_tensor<T>&,           \
                                                          const basic_tensor<T>&, attention_options<T>,             \
                                                          source_location);                                    \
    template basic_tensor<T> softmax(const basic_tensor<T>&, std::ptrdiff_t, source_location);                 \
    template basic_tensor<T> log_softmax(const basic_tensor<T>&, std::ptrdiff_t, source_location);             \
    template basic_tensor<T> softmax_cross_entropy_with_logits(const basic_tensor<T>&, const basic_tensor<T>&,       \
                                                               source_location);                               \
    template basic_tensor<T> sparse_softmax_cross_entropy_with_logits(const xt::xarray<std::int64_t>&,              \
                                                                      const basic_tensor<T>&, source_location); \
    template basic_tensor<T> sigmoid_cross_entropy_with_logits(const basic_tensor<T>&, const basic_tensor<T>&,       \
                                                               source_location);                               \
    template basic_tensor<T> l2_loss(const basic_tensor<T>&, source_location);                                 \
    template basic_tensor<T> mean_squared_error(const basic_tensor<T>&, const basic_tensor<T>&,                      \
                                                source_location);                                              \
    template basic_tensor<T> dropout(const basic_tensor<T>&, double, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
