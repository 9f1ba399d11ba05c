// Elementwise ops. Binary ones broadcast as NumPy does; the gradient of a
// broadcast operand is summed back to its shape.
#include <xtensor/xmath.hpp>

#include "op.hpp"

namespace gradtape {

using detail::record_op;
using detail::sum_to_shape;

template <dtype T>
basic_tensor<T> add(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::check_broadcastable("add", site, a.shape(), b.shape());
    return record_op<T>(
        "add", site, a.value() + b.value(),
        [sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad) {
            return std::array{sum_to_shape(grad, sa), sum_to_shape(grad, sb)};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> subtract(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::check_broadcastable("subtract", site, a.shape(), b.shape());
    return record_op<T>(
        "subtract", site, a.value() - b.value(),
        [sa = a.shape(), sb = b.shape()](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{sum_to_shape(grad, sa), needed[1] ? negative(sum_to_shape(grad, sb)) : basic_tensor<T>{}};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> multiply(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::check_broadcastable("multiply", site, a.shape(), b.shape());
    return record_op<T>(
        "multiply", site, a.value() * b.value(),
        [a, b](const basic_tensor<T>& grad, detail::input_mask needed) {
            return std::array{needed[0] ? sum_to_shape(grad * b, a.shape()) : basic_tensor<T>{},
                              needed[1] ? sum_to_shape(grad * a, b.shape()) : basic_tensor<T>{}};
        },
        a, b);
}

template <dtype T>
basic_tensor<T> divide(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, std::source_location site)
{
    detail::check_broadcastable("divide", site, a.shape(), b.shape());
    basic_tensor<T> quotient = a.value() / b.value();
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
basic_tensor<T> tanh(const basic_tensor<T>& x, std::source_location site)
{
    basic_tensor<T> result = xt::tanh(x.value());
    return record_op<T>(
        "tanh", site, result, [result](const basic_tensor<T>& grad) { return grad * (T(1) - square(result)); }, x);
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
    template basic_tensor<T> tanh(const basic_tensor<T>&, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
