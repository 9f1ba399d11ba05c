// Elementwise ops. Binary ones broadcast as NumPy does; the gradient of a
// broadcast operand is summed back to its shape.
#include <functional>

#include <xtensor/xmath.hpp>

#include "op.hpp"

namespace gradtape {

using detail::record_op;
using detail::sum_to_shape;

namespace {

// Whether `inner` is a trailing part of `outer`'s shape: a bias added to
// every row, the most common broadcast in a network.
bool is_trailing_shape(const shape_type& inner, const shape_type& outer)
{
    return inner.size() < outer.size() &&
           std::equal(inner.begin(), inner.end(), outer.end() - std::ptrdiff_t(inner.size()));
}

// f(a, b) with NumPy broadcasting. xtensor broadcasts through a stepper that
// visits one element at a time; the two common cases take faster paths: a
// one-element operand (a scalar, a loss, a constant factor in a backward
// rule) is passed as a plain number, and an operand repeated along leading
// dimensions (a bias) is applied row by row.
template <dtype T, class F>
xt::xarray<T> broadcast_apply(const xt::xarray<T>& a, const xt::xarray<T>& b, F f)
{
    if (a.shape() == b.shape()) {
        return f(a, b);
    }
    if (a.size() == 1 && a.dimension() <= b.dimension()) {
        return f(*a.data(), b);
    }
    if (b.size() == 1 && b.dimension() <= a.dimension()) {
        return f(a, *b.data());
    }
    const bool b_repeats = is_trailing_shape(b.shape(), a.shape());
    if ((b_repeats || is_trailing_shape(a.shape(), b.shape())) && a.size() != 0 && b.size() != 0) {
        const xt::xarray<T>& whole = b_repeats ? a : b;
        const std::size_t row = b_repeats ? b.size() : a.size();
        auto result = xt::xarray<T>::from_shape(whole.shape());
        const T* pa = a.data();
        const T* pb = b.data();
        T* out = result.data();
        for (std::size_t start = 0; start < whole.size(); start += row) {
            for (std::size_t i = 0; i < row; ++i) {
                out[start + i] = b_repeats ? f(pa[start + i], pb[i]) : f(pa[i], pb[start + i]);
            }
        }
        return result;
    }
    return f(a, b);
}

}  // namespace

template <dtype T>
basic_tensor<T> add(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::broadcast_shape("add", site, a.shape(), b.shape(), sizeof(T));
    return record_op<T>(
        "add", site, broadcast_apply(a.value(), b.value(), std::plus<>()),
        [sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad) {
            return std::array{sum_to_shape(grad, sa), sum_to_shape(grad, sb)};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> subtract(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::broadcast_shape("subtract", site, a.shape(), b.shape(), sizeof(T));
    return record_op<T>(
        "subtract", site, broadcast_apply(a.value(), b.value(), std::minus<>()),
        [sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{sum_to_shape(grad, sa), needed[1] ? negative(sum_to_shape(grad, sb)) : basic_tensor<T>{}};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> multiply(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::broadcast_shape("multiply", site, a.shape(), b.shape(), sizeof(T));
    return record_op<T>(
        "multiply", site, broadcast_apply(a.value(), b.value(), std::multiplies<>()),
        [a, b](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{needed[0] ? sum_to_shape(grad * b, a.shape()) : basic_tensor<T>{},
                              needed[1] ? sum_to_shape(grad * a, b.shape()) : basic_tensor<T>{}};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> divide(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::broadcast_shape("divide", site, a.shape(), b.shape(), sizeof(T));
    basic_tensor<T> quotient = broadcast_apply(a.value(), b.value(), std::divides<>());
    return record_op<T>(
        "divide", site, quotient,
        [quotient, b, sa = a.shape()](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{needed[0] ? sum_to_shape(grad / b, sa) : basic_tensor<T>{},
                              needed[1] ? negative(sum_to_shape(grad * quotient / b, b.shape())) : basic_tensor<T>{}};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> negative(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>("negative", site, -x.value(), [](const basic_tensor<T>& grad) { return negative(grad); }, x);
}

template <dtype T>
basic_tensor<T> abs(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>("abs", site, xt::abs(x.value()), [x](const basic_tensor<T>& grad) { return grad * sign(x); }, x);
}

template <dtype T>
basic_tensor<T> sign(const basic_tensor<T>& x, std::source_location site)
{
    // Recorded with its zero gradient, as TensorFlow does, so that a target
    // computed through it stays connected to x. NaN stays NaN, as in NumPy.
    return record_op<T>(
        "sign", site, xt::where(xt::isnan(x.value()), x.value(), xt::sign(x.value())),
        [](const basic_tensor<T>& grad) { return zeros<T>(grad.shape()); }, x);
}

template <dtype T>
basic_tensor<T> sqrt(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::sqrt(x.value());
    return record_op<T>(
        "sqrt", site, result, [result](const basic_tensor<T>& grad) { return grad / (T(2) * result); }, x);
}

template <dtype T>
basic_tensor<T> rsqrt(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = T(1) / xt::sqrt(x.value());
    return record_op<T>(
        "rsqrt", site, result,
        [result](const basic_tensor<T>& grad) { return grad * (T(-0.5) * result * square(result)); }, x);
}

template <dtype T>
basic_tensor<T> square(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>(
        "square", site, xt::square(x.value()), [x](const basic_tensor<T>& grad) { return grad * (T(2) * x); }, x);
}

template <dtype T>
basic_tensor<T> exp(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::exp(x.value());
    return record_op<T>("exp", site, result, [result](const basic_tensor<T>& grad) { return grad * result; }, x);
}

template <dtype T>
basic_tensor<T> log(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>("log", site, xt::log(x.value()), [x](const basic_tensor<T>& grad) { return grad / x; }, x);
}

template <dtype T>
basic_tensor<T> log1p(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>(
        "log1p", site, xt::log1p(x.value()), [x](const basic_tensor<T>& grad) { return grad / (x + T(1)); }, x);
}

template <dtype T>
basic_tensor<T> expm1(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::expm1(x.value());
    return record_op<T>(
        "expm1", site, result, [result](const basic_tensor<T>& grad) { return grad * (result + T(1)); }, x);
}

template <dtype T>
basic_tensor<T> sin(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>("sin", site, xt::sin(x.value()), [x](const basic_tensor<T>& grad) { return grad * cos(x); }, x);
}

template <dtype T>
basic_tensor<T> cos(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>(
        "cos", site, xt::cos(x.value()), [x](const basic_tensor<T>& grad) { return -(grad * sin(x)); }, x);
}

template <dtype T>
basic_tensor<T> tanh(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::tanh(x.value());
    return record_op<T>(
        "tanh", site, result, [result](const basic_tensor<T>& grad) { return grad * (T(1) - square(result)); }, x);
}

template <dtype T>
basic_tensor<T> sigmoid(const basic_tensor<T>& x, std::source_location site)
{
    // exp(-x) overflows to inf for x far below zero, and 1 / inf is the right 0.
    basic_tensor<T> result = T(1) / (T(1) + xt::exp(-x.value()));
    return record_op<T>(
        "sigmoid", site, result, [result](const basic_tensor<T>& grad) { return grad * (result - square(result)); },
        x);
}

template <dtype T>
basic_tensor<T> relu(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>(
        "relu", site, xt::where(x.value() < T(0), T(0), x.value()),
        [positive = greater(x, T(0))](const basic_tensor<T>& grad) { return grad * positive; }, x);
}

template <dtype T>
basic_tensor<T> leaky_relu(const basic_tensor<T>& x, T alpha, std::source_location site)
{
    basic_tensor<T> slope = xt::where(x.value() > T(0), T(1), alpha);
    return record_op<T>(
        "leaky_relu", site, x.value() * slope.value(),
        [slope](const basic_tensor<T>& grad) { return grad * slope; }, x);
}

template <dtype T>
basic_tensor<T> elu(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::where(x.value() > T(0), x.value(), xt::expm1(x.value()));
    return record_op<T>(
        "elu", site, result,
        [result, positive = greater(x, T(0))](const basic_tensor<T>& grad) {
            return grad * where(positive, T(1), result + T(1));
        },
        x);
}

template <dtype T>
basic_tensor<T> softplus(const basic_tensor<T>& x, std::source_location site)
{
    return record_op<T>(
        "softplus", site, xt::log1p(xt::exp(-xt::abs(x.value()))) + xt::maximum(x.value(), T(0)),
        [x](const basic_tensor<T>& grad) { return grad * sigmoid(x); }, x);
}

template <dtype T>
basic_tensor<T> pow(const basic_tensor<T>& x, std::type_identity_t<T> exponent, std::source_location site)
{
    return record_op<T>(
        "pow", site, xt::pow(x.value(), exponent),
        [x, exponent](const basic_tensor<T>& grad) { return grad * (exponent * pow(x, exponent - T(1))); }, x);
}

template <dtype T>
basic_tensor<T> pow(const basic_tensor<T>& x, const basic_tensor<T>& y, std::source_location site)
{
    detail::broadcast_shape("pow", site, x.shape(), y.shape(), sizeof(T));
    basic_tensor<T> result = xt::pow(x.value(), y.value());
    return record_op<T>(
        "pow", site, result,
        [x, y, result](const basic_tensor<T>& grad, detail::input_mask needed) {
            basic_tensor<T> grad_x;
            basic_tensor<T> grad_y;
            if (needed[0]) {
                grad_x = sum_to_shape(grad * y * pow(x, y - T(1)), x.shape());
            }
            if (needed[1]) {
                const basic_tensor<T> positive = greater(x, T(0));
                const basic_tensor<T> log_x = where(positive, log(where(positive, x, T(1))), T(0));
                grad_y = sum_to_shape(grad * result * log_x, y.shape());
            }
            return std::array{std::move(grad_x), std::move(grad_y)};
        },
        x, y);
}

template <dtype T>
basic_tensor<T> clip_by_value(const basic_tensor<T>& x, std::type_identity_t<T> low, std::type_identity_t<T> high,
                              std::source_location site)
{
    if (!(low <= high)) {
        detail::fail<argument_error>("clip_by_value", site,
                                     "needs low <= high, got " + std::to_string(low) + " and " + std::to_string(high));
    }
    basic_tensor<T> inside = xt::cast<T>(x.value() >= low && x.value() <= high);
    return record_op<T>(
        "clip_by_value", site, xt::where(x.value() < low, low, xt::where(x.value() > high, high, x.value())),
        [inside](const basic_tensor<T>& grad) { return grad * inside; }, x);
}

namespace {

// maximum and minimum: the gradient goes to a where `a_wins(a, b)` holds, to
// b elsewhere. a wins where it is NaN and b where b is, so that a NaN on
// either side propagates, as in NumPy. The comparison stays lazy: xtensor
// 0.24 with xsimd fills an xt::xarray<bool> from a broadcasting comparison
// wrongly.
template <dtype T, class Compare>
basic_tensor<T> select_op(std::string_view op, const std::source_location& site, const basic_tensor<T>& a,
                          const basic_tensor<T>& b, Compare a_wins)
{
    detail::broadcast_shape(op, site, a.shape(), b.shape(), sizeof(T));
    basic_tensor<T> mask_a = xt::xarray<T>(xt::cast<T>(a_wins(a.value(), b.value())));
    return record_op<T>(
        op, site, xt::where(a_wins(a.value(), b.value()), a.value(), b.value()),
        [mask_a, sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad) {
            return std::array{sum_to_shape(grad * mask_a, sa), sum_to_shape(grad - grad * mask_a, sb)};
        },
        a, b);
}

template <dtype T, class Compare>
basic_tensor<T> compare(std::string_view op, const std::source_location& site, const basic_tensor<T>& a,
                        const basic_tensor<T>& b, Compare holds)
{
    detail::broadcast_shape(op, site, a.shape(), b.shape(), sizeof(T));
    // The comparison is lazy and refers to its operands: it is cast and
    // evaluated in one expression, never kept in a local.
    return broadcast_apply(a.value(), b.value(), [&](const auto& x, const auto& y) {
        if constexpr (std::is_same_v<decltype(holds(x, y)), bool>) {
            return T(holds(x, y));
        } else {
            return xt::xarray<T>(xt::cast<T>(holds(x, y)));
        }
    });
}

}  // namespace

template <dtype T>
basic_tensor<T> maximum(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                        std::source_location site)
{
    return select_op("maximum", site, a, b, [](const auto& x, const auto& y) { return x >= y || xt::isnan(x); });
}

template <dtype T>
basic_tensor<T> minimum(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                        std::source_location site)
{
    return select_op("minimum", site, a, b, [](const auto& x, const auto& y) { return x <= y || xt::isnan(x); });
}

template <dtype T>
basic_tensor<T> greater(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                        std::source_location site)
{
    return compare("greater", site, a, b, [](const auto& x, const auto& y) { return x > y; });
}

template <dtype T>
basic_tensor<T> greater_equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                              std::source_location site)
{
    return compare("greater_equal", site, a, b, [](const auto& x, const auto& y) { return x >= y; });
}

template <dtype T>
basic_tensor<T> less(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                     std::source_location site)
{
    return compare("less", site, a, b, [](const auto& x, const auto& y) { return x < y; });
}

template <dtype T>
basic_tensor<T> less_equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                           std::source_location site)
{
    return compare("less_equal", site, a, b, [](const auto& x, const auto& y) { return x <= y; });
}

template <dtype T>
basic_tensor<T> equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                      std::source_location site)
{
    // On two whole expressions, == compares them as a whole: xt::equal is elementwise.
    return compare("equal", site, a, b, [](const auto& x, const auto& y) {
        using X = std::decay_t<decltype(x)>;
        using Y = std::decay_t<decltype(y)>;
        if constexpr (std::is_arithmetic_v<X> && std::is_arithmetic_v<Y>) {
            return x == y;
        } else {
            return xt::equal(x, y);
        }
    });
}

template <dtype T>
basic_tensor<T> where(const basic_tensor<T>& condition, const std::type_identity_t<basic_tensor<T>>& a,
                      const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::broadcast_shape("where", site, detail::broadcast_shape("where", site, condition.shape(), a.shape(), sizeof(T)),
                            b.shape(), sizeof(T));
    const auto chosen = xt::not_equal(condition.value(), T(0));
    basic_tensor<T> mask = xt::cast<T>(chosen);
    return record_op<T>(
        "where", site, xt::where(chosen, a.value(), b.value()),
        [mask, sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{basic_tensor<T>{}, needed[1] ? sum_to_shape(grad * mask, sa) : basic_tensor<T>{},
                              needed[2] ? sum_to_shape(grad - grad * mask, sb) : basic_tensor<T>{}};
        },
        condition, a, b);
}

template <dtype To, dtype From>
basic_tensor<To> cast(const basic_tensor<From>& x, std::source_location site)
{
    return record_op<To>(
        "cast", site, xt::cast<To>(x.value()), [](const basic_tensor<To>& grad) { return cast<From>(grad); }, x);
}

namespace detail {

void accumulate(any_tensor& total, any_tensor&& addend)
{
    if (std::holds_alternative<std::monostate>(total)) {
        total = std::move(addend);
        return;
    }
    std::visit(
        [&addend](auto& sum) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(sum)>, std::monostate>) {
                using tensor = std::decay_t<decltype(sum)>;
                sum = add(sum, std::get<tensor>(addend));
            }
        },
        total);
}

}  // namespace detail

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> add(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,         \
                                 std::source_location);             \
    template basic_tensor<T> subtract(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,         \
                                 std::source_location);        \
    template basic_tensor<T> multiply(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,         \
                                 std::source_location);        \
    template basic_tensor<T> divide(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,         \
                                 std::source_location);          \
    template basic_tensor<T> negative(const basic_tensor<T>&, std::source_location);                                \
    template basic_tensor<T> square(const basic_tensor<T>&, std::source_location);                                  \
    template basic_tensor<T> exp(const basic_tensor<T>&, std::source_location);                                     \
    template basic_tensor<T> log(const basic_tensor<T>&, std::source_location);                                     \
    template basic_tensor<T> tanh(const basic_tensor<T>&, std::source_location);                                   \
    template basic_tensor<T> abs(const basic_tensor<T>&, std::source_location);                                    \
    template basic_tensor<T> sign(const basic_tensor<T>&, std::source_location);                                   \
    template basic_tensor<T> sqrt(const basic_tensor<T>&, std::source_location);                                   \
    template basic_tensor<T> rsqrt(const basic_tensor<T>&, std::source_location);                                  \
    template basic_tensor<T> log1p(const basic_tensor<T>&, std::source_location);                                  \
    template basic_tensor<T> expm1(const basic_tensor<T>&, std::source_location);                                  \
    template basic_tensor<T> sin(const basic_tensor<T>&, std::source_location);                                    \
    template basic_tensor<T> cos(const basic_tensor<T>&, std::source_location);                                    \
    template basic_tensor<T> sigmoid(const basic_tensor<T>&, std::source_location);                                \
    template basic_tensor<T> relu(const basic_tensor<T>&, std::source_location);                                   \
    template basic_tensor<T> leaky_relu(const basic_tensor<T>&, T, std::source_location);                          \
    template basic_tensor<T> elu(const basic_tensor<T>&, std::source_location);                                    \
    template basic_tensor<T> softplus(const basic_tensor<T>&, std::source_location);                               \
    template basic_tensor<T> pow(const basic_tensor<T>&, std::type_identity_t<T>, std::source_location);           \
    template basic_tensor<T> pow(const basic_tensor<T>&, const basic_tensor<T>&, std::source_location);            \
    template basic_tensor<T> clip_by_value(const basic_tensor<T>&, std::type_identity_t<T>, std::type_identity_t<T>, \
                                           std::source_location);                                                   \
    template basic_tensor<T> maximum(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,          \
                                     std::source_location);                                                         \
    template basic_tensor<T> minimum(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,          \
                                     std::source_location);                                                         \
    template basic_tensor<T> greater(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,          \
                                     std::source_location);                                                         \
    template basic_tensor<T> greater_equal(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,    \
                                           std::source_location);                                                   \
    template basic_tensor<T> less(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,             \
                                  std::source_location);                                                            \
    template basic_tensor<T> less_equal(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,       \
                                        std::source_location);                                                      \
    template basic_tensor<T> equal(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,            \
                                   std::source_location);                                                           \
    template basic_tensor<T> where(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,            \
                                   const std::type_identity_t<basic_tensor<T>>&, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
template basic_tensor<float> cast(const basic_tensor<float>&, std::source_location);
template basic_tensor<float> cast(const basic_tensor<double>&, std::source_location);
template basic_tensor<double> cast(const basic_tensor<float>&, std::source_location);
template basic_tensor<double> cast(const basic_tensor<double>&, std::source_location);

}  // namespace gradtape
