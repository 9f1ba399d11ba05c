// Elementwise ops. Binary ones broadcast as NumPy does; the core sums the
// gradient of a broadcast operand back to its shape (Note [The op contract]).
#include <cmath>
#include <functional>

#include "kernels/unary.hpp"
#include "ops/op.hpp"
#include "kernels/strided.hpp"

#include <xtensor/xmath.hpp>

namespace gradtape {

using detail::apply;
using detail::backward_args;
using detail::saved;

namespace {

// The contiguous loops of an elementwise function f(x, y) of two numbers.
template <class F>
struct loops {
    F f;
    template <class T>
    void same(const T* a, const T* b, T* out, std::size_t n) const
    {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = f(a[i], b[i]);
        }
    }
    template <class T>
    void scalar_left(T a, const T* b, T* out, std::size_t n) const
    {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = f(a, b[i]);
        }
    }
    template <class T>
    void scalar_right(const T* a, T b, T* out, std::size_t n) const
    {
        for (std::size_t i = 0; i < n; ++i) {
            out[i] = f(a[i], b);
        }
    }
};
template <class F>
loops(F) -> loops<F>;

// A mask: an elementwise function F of two broadcast tensors that no
// gradient flows through (a comparison, where maximum takes its first
// operand). F names it and gives each element.
template <dtype T, class F>
struct mask_op : detail::broadcasting<mask_op<T, F>> {
    using value_type = T;
    static constexpr std::string_view name = F::name;
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    void forward(xt::xarray<T>& out, const xt::xarray<T>& a, const xt::xarray<T>& b) const
    {
        detail::broadcast_into(out, a, b, loops{F()});
    }
};

template <class F, dtype T>
basic_tensor<T> mask(const basic_tensor<T>& a, const basic_tensor<T>& b, const source_location& site = {})
{
    return apply(mask_op<T, F>{}, site, a, b);
}

#define GRADTAPE_COMPARISON(NAME, EXPRESSION)                                                                          \
    struct NAME##_values {                                                                                             \
        static constexpr std::string_view name = #NAME;                                                                \
        template <class T>                                                                                             \
        T operator()(T x, T y) const                                                                                   \
        {                                                                                                              \
            return T(EXPRESSION);                                                                                      \
        }                                                                                                              \
    };
GRADTAPE_COMPARISON(greater, x > y)
GRADTAPE_COMPARISON(greater_equal, x >= y)
GRADTAPE_COMPARISON(less, x < y)
GRADTAPE_COMPARISON(less_equal, x <= y)
GRADTAPE_COMPARISON(equal, x == y)
GRADTAPE_COMPARISON(not_equal, x != y)
#undef GRADTAPE_COMPARISON

// Where maximum and minimum take a rather than b: where a wins the
// comparison, and where a is NaN, so that a NaN on either side propagates (as
// in NumPy).
template <class Compare>
struct selects_a {
    static constexpr std::string_view name =
        std::is_same_v<Compare, std::greater_equal<>> ? "maximum" : "minimum";
    template <class T>
    T operator()(T a, T b) const
    {
        return T(Compare()(a, b) || std::isnan(a));
    }
};

}  // namespace

namespace {

// A row's value computed by a kernel at the machine's width (kernels/unary.hpp).
struct kernel_of {
    detail::unary_function function;
};

template <dtype T>
void evaluate(xt::xarray<T>& out, const xt::xarray<T>& x, kernel_of kernel)
{
    detail::unary_kernel(kernel.function, x.data(), out.data(), x.size());
}

template <dtype T, class Expression>
void evaluate(xt::xarray<T>& out, const xt::xarray<T>&, const Expression& value)
{
    xt::noalias(out) = value;
}

}  // namespace

// One row per elementwise function of one tensor (the list is in ops.hpp):
// its name, what its gradient reads (the input x, the output y), its value (a
// kernel, or an xtensor expression of x), and its gradient in gradtape ops of
// grad, x and y.
#define GRADTAPE_UNARY(NAME, SAVES, VALUE, GRADIENT)                                                                   \
    template <dtype T>                                                                                                 \
    struct NAME##_op {                                                                                                 \
        using value_type = T;                                                                                          \
        static constexpr std::string_view name = #NAME;                                                                \
        static constexpr saved saves = saved::SAVES;                                                                   \
        static constexpr auto tangent = detail::tangent_family::diagonal;                                              \
        shape_type shape(const source_location&, const shape_type& x) const { return x; }                         \
        void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const { evaluate(out, x, VALUE); }                   \
        std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const                                 \
        {                                                                                                              \
            [[maybe_unused]] const basic_tensor<T>& grad = args.grad;                                                  \
            [[maybe_unused]] const basic_tensor<T>& x = args.inputs[0];                                                \
            [[maybe_unused]] const basic_tensor<T>& y = args.output;                                                   \
            return {GRADIENT};                                                                                         \
        }                                                                                                              \
    };                                                                                                                 \
    template <dtype T>                                                                                                 \
    basic_tensor<T> NAME(const basic_tensor<T>& x, source_location site)                                          \
    {                                                                                                                  \
        return apply(NAME##_op<T>{}, site, x);                                                                         \
    }

GRADTAPE_UNARY(negative, nothing, -x, negative(grad))
GRADTAPE_UNARY(abs, inputs, xt::abs(x), grad * sign(x))
// Recorded with its zero gradient, as TensorFlow does, so that a target
// computed through it stays connected to x.
GRADTAPE_UNARY(sign, nothing, xt::where(xt::isnan(x), x, xt::sign(x)), zeros<T>(grad.shape()))
GRADTAPE_UNARY(sqrt, output, kernel_of{detail::unary_function::sqrt}, grad / (T(2) * y))
GRADTAPE_UNARY(rsqrt, output, T(1) / xt::sqrt(x), grad * (T(-0.5) * y * square(y)))
GRADTAPE_UNARY(square, inputs, xt::square(x), grad * (T(2) * x))
GRADTAPE_UNARY(exp, output, kernel_of{detail::unary_function::exp}, grad * y)
GRADTAPE_UNARY(log, inputs, kernel_of{detail::unary_function::log}, grad / x)
GRADTAPE_UNARY(log1p, inputs, kernel_of{detail::unary_function::log1p}, grad / (x + T(1)))
GRADTAPE_UNARY(expm1, output, kernel_of{detail::unary_function::expm1}, grad * (y + T(1)))
GRADTAPE_UNARY(sin, inputs, xt::sin(x), grad * cos(x))
GRADTAPE_UNARY(cos, inputs, xt::cos(x), -(grad * sin(x)))
GRADTAPE_UNARY(tanh, output, kernel_of{detail::unary_function::tanh}, grad * (T(1) - square(y)))
// exp(-x) overflows to inf for x far below zero, and 1 / inf is the right 0.
GRADTAPE_UNARY(sigmoid, output, kernel_of{detail::unary_function::sigmoid}, grad * (y - square(y)))
// NaN < 0 is false: a NaN passes through.
GRADTAPE_UNARY(relu, inputs, xt::where(x < T(0), T(0), x), grad * greater(x, T(0)))
GRADTAPE_UNARY(elu, inputs_and_output, xt::where(x > T(0), x, xt::expm1(x)),
               grad * where(greater(x, T(0)), T(1), y + T(1)))
GRADTAPE_UNARY(softplus, inputs, xt::log1p(xt::exp(-xt::abs(x))) + xt::maximum(x, T(0)), grad * sigmoid(x))

#undef GRADTAPE_UNARY

// One row per elementwise function of two tensors (the list is in
// tensor.hpp): its name, what its gradients read (the inputs a and b, the
// output y), its value (a kernel of kernels/arithmetic.hpp, or a function of
// two numbers), and its gradients for a and for b in gradtape ops of grad,
// a, b and y, each computed only where that input needs one.
#define GRADTAPE_BINARY(NAME, SAVES, VALUE, GRADIENT_A, GRADIENT_B)                                                    \
    template <dtype T>                                                                                                 \
    struct NAME##_op : detail::broadcasting<NAME##_op<T>> {                                                            \
        using value_type = T;                                                                                          \
        static constexpr std::string_view name = #NAME;                                                                \
        static constexpr saved saves = saved::SAVES;                                                                   \
        static constexpr auto tangent = detail::tangent_family::diagonal;                                              \
        void forward(xt::xarray<T>& out, const xt::xarray<T>& a, const xt::xarray<T>& b) const                         \
        {                                                                                                              \
            detail::broadcast_into(out, a, b, VALUE);                                                                  \
        }                                                                                                              \
        std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const                                 \
        {                                                                                                              \
            [[maybe_unused]] const basic_tensor<T>& grad = args.grad;                                                  \
            [[maybe_unused]] const basic_tensor<T>& a = args.inputs[0];                                                \
            [[maybe_unused]] const basic_tensor<T>& b = args.inputs[1];                                                \
            [[maybe_unused]] const basic_tensor<T>& y = args.output;                                                   \
            return {args.needed[0] ? basic_tensor<T>(GRADIENT_A) : basic_tensor<T>{},                                  \
                    args.needed[1] ? basic_tensor<T>(GRADIENT_B) : basic_tensor<T>{}};                                 \
        }                                                                                                              \
    };                                                                                                                 \
    template <dtype T>                                                                                                 \
    basic_tensor<T> NAME(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,                     \
                         source_location site)                                                                    \
    {                                                                                                                  \
        return apply(NAME##_op<T>{}, site, a, b);                                                                      \
    }

namespace {

template <detail::arithmetic op>
constexpr auto arithmetic_of = detail::arithmetic_loops<op>();

// The mask of where maximum or minimum takes a: where a wins the comparison
// (a tie included) or a is NaN.
template <class Compare, dtype T>
basic_tensor<T> takes_a(const basic_tensor<T>& a, const basic_tensor<T>& b)
{
    return mask<selects_a<Compare>>(a, b);
}

// The gradient of pow for its exponent: grad * y * log(a), 0 where a <= 0.
template <dtype T>
basic_tensor<T> exponent_gradient(const basic_tensor<T>& grad, const basic_tensor<T>& a, const basic_tensor<T>& y)
{
    const basic_tensor<T> positive = greater(a, T(0));
    return grad * y * where(positive, log(where(positive, a, T(1))), T(0));
}

// max or min of two numbers, a NaN on either side propagating.
template <class Compare>
constexpr auto selection = loops{[](auto a, auto b) { return selects_a<Compare>()(a, b) != 0 ? a : b; }};

}  // namespace

using detail::arithmetic;

GRADTAPE_BINARY(add, nothing, arithmetic_of<arithmetic::add>, grad, grad)
GRADTAPE_BINARY(subtract, nothing, arithmetic_of<arithmetic::subtract>, grad, negative(grad))
GRADTAPE_BINARY(multiply, inputs, arithmetic_of<arithmetic::multiply>, grad * b, grad * a)
GRADTAPE_BINARY(divide, inputs_and_output, arithmetic_of<arithmetic::divide>, grad / b, negative(grad * y / b))
GRADTAPE_BINARY(maximum, inputs, selection<std::greater_equal<>>, grad * takes_a<std::greater_equal<>>(a, b),
                grad * (T(1) - takes_a<std::greater_equal<>>(a, b)))
GRADTAPE_BINARY(minimum, inputs, selection<std::less_equal<>>, grad * takes_a<std::less_equal<>>(a, b),
                grad * (T(1) - takes_a<std::less_equal<>>(a, b)))
GRADTAPE_BINARY(pow, inputs_and_output, loops{[](auto base, auto exponent) { return std::pow(base, exponent); }},
                grad * b * pow(a, b - T(1)), exponent_gradient(grad, a, y))

#undef GRADTAPE_BINARY

namespace {

template <dtype T>
struct pow_scalar_op {
    using value_type = T;
    static constexpr std::string_view name = "pow";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::diagonal;
    T exponent;
    shape_type shape(const source_location&, const shape_type& x) const { return x; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const { xt::noalias(out) = xt::pow(x, exponent); }
    // grad * exponent * x^(exponent - 1)
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {args.grad * (exponent * pow(args.inputs[0], exponent - T(1)))};
    }
};

template <dtype T>
struct leaky_relu_op {
    using value_type = T;
    static constexpr std::string_view name = "leaky_relu";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::diagonal;
    T alpha;
    shape_type shape(const source_location&, const shape_type& x) const { return x; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        xt::noalias(out) = xt::where(x > T(0), x, alpha * x);
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {args.grad * where(greater(args.inputs[0], T(0)), T(1), alpha)};
    }
};

// The mask of where clip_by_value passes its gradient: low <= x <= high.
template <dtype T>
struct within_op {
    using value_type = T;
    static constexpr std::string_view name = "clip_by_value";
    static constexpr saved saves = saved::nothing;
    static constexpr bool recorded = false;
    T low;
    T high;
    shape_type shape(const source_location&, const shape_type& x) const { return x; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        xt::noalias(out) = xt::cast<T>(x >= low && x <= high);
    }
};

template <dtype T>
struct clip_by_value_op {
    using value_type = T;
    static constexpr std::string_view name = "clip_by_value";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::diagonal;
    T low;
    T high;
    shape_type shape(const source_location& site, const shape_type& x) const
    {
        if (!(low <= high)) {
            detail::fail<argument_error>(name, site,
                                         "needs low <= high, got " + std::to_string(low) + " and " +
                                             std::to_string(high));
        }
        return x;
    }
    // NaN compares false both ways: it passes through.
    void forward(xt::xarray<T>& out, const xt::xarray<T>& x) const
    {
        xt::noalias(out) = xt::where(x < low, low, xt::where(x > high, high, x));
    }
    // grad where low <= x <= high, 0 elsewhere
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {args.grad * apply(within_op<T>{low, high}, {}, args.inputs[0])};
    }
};

template <dtype T>
struct where_op {
    using value_type = T;
    static constexpr std::string_view name = "where";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::diagonal;
    shape_type shape(const source_location& site, const shape_type& condition, const shape_type& a,
                     const shape_type& b) const
    {
        return detail::broadcast_shape(name, site, detail::broadcast_shape(name, site, condition, a, 1), b, 1);
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& condition, const xt::xarray<T>& a,
                 const xt::xarray<T>& b) const
    {
        xt::noalias(out) = xt::where(xt::not_equal(condition, T(0)), a, b);
    }
    // nothing for the condition; grad where it holds to a, elsewhere to b
    std::array<basic_tensor<T>, 3> backward(const backward_args<T, 3>& args) const
    {
        const basic_tensor<T>& condition = args.inputs[0];
        const basic_tensor<T> chosen = mask<not_equal_values>(condition, basic_tensor<T>(T(0)));
        const basic_tensor<T> to_a = args.grad * chosen;
        return {basic_tensor<T>{}, to_a, args.needed[2] ? args.grad - to_a : basic_tensor<T>{}};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> pow(const basic_tensor<T>& x, std::type_identity_t<T> exponent, source_location site)
{
    return apply(pow_scalar_op<T>{exponent}, site, x);
}

template <dtype T>
basic_tensor<T> leaky_relu(const basic_tensor<T>& x, T alpha, source_location site)
{
    return apply(leaky_relu_op<T>{alpha}, site, x);
}

template <dtype T>
basic_tensor<T> clip_by_value(const basic_tensor<T>& x, std::type_identity_t<T> low, std::type_identity_t<T> high,
                              source_location site)
{
    return apply(clip_by_value_op<T>{low, high}, site, x);
}

template <dtype T>
basic_tensor<T> where(const basic_tensor<T>& condition, const std::type_identity_t<basic_tensor<T>>& a,
                      const std::type_identity_t<basic_tensor<T>>& b, source_location site)
{
    return apply(where_op<T>{}, site, condition, a, b);
}

// Comparisons are not recorded: no gradient flows through a mask (mask_op).
template <dtype T>
basic_tensor<T> greater(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                        source_location site)
{
    return mask<greater_values>(a, b, site);
}

template <dtype T>
basic_tensor<T> greater_equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                              source_location site)
{
    return mask<greater_equal_values>(a, b, site);
}

template <dtype T>
basic_tensor<T> less(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                     source_location site)
{
    return mask<less_values>(a, b, site);
}

template <dtype T>
basic_tensor<T> less_equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                           source_location site)
{
    return mask<less_equal_values>(a, b, site);
}

template <dtype T>
basic_tensor<T> equal(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b,
                      source_location site)
{
    return mask<equal_values>(a, b, site);
}

namespace {

template <dtype To, dtype From>
struct cast_op {
    using value_type = To;
    using input_type = From;
    static constexpr std::string_view name = "cast";
    static constexpr saved saves = saved::nothing;
    static constexpr auto tangent = detail::tangent_family::linear;
    shape_type shape(const source_location&, const shape_type& x) const { return x; }
    void forward(xt::xarray<To>& out, const xt::xarray<From>& x) const { xt::noalias(out) = xt::cast<To>(x); }
    // the gradient cast back
    std::array<basic_tensor<From>, 1> backward(const backward_args<To, 1, From>& args) const
    {
        return {cast<From>(args.grad)};
    }
};

}  // namespace

template <dtype To, dtype From>
basic_tensor<To> cast(const basic_tensor<From>& x, source_location site)
{
    return apply(cast_op<To, From>{}, site, x);
}

namespace detail {

// Note [Core functions made of ops] (core/tape_core.hpp).
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

#define GRADTAPE_INSTANTIATE_UNARY_AS(T, NAME) template basic_tensor<T> NAME(const basic_tensor<T>&, source_location);
#define GRADTAPE_INSTANTIATE_UNARY(NAME) GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_UNARY_AS, NAME)
GRADTAPE_UNARY_OPS(GRADTAPE_INSTANTIATE_UNARY)
GRADTAPE_INSTANTIATE_UNARY(negative)

#define GRADTAPE_INSTANTIATE_BINARY_AS(T, NAME)                                                                        \
    template basic_tensor<T> NAME(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,                \
                                  source_location);
#define GRADTAPE_INSTANTIATE_BINARY(NAME) GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_BINARY_AS, NAME)
GRADTAPE_BINARY_OPS(GRADTAPE_INSTANTIATE_BINARY)
GRADTAPE_INSTANTIATE_BINARY(greater)
GRADTAPE_INSTANTIATE_BINARY(greater_equal)
GRADTAPE_INSTANTIATE_BINARY(less)
GRADTAPE_INSTANTIATE_BINARY(less_equal)
GRADTAPE_INSTANTIATE_BINARY(equal)

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> leaky_relu(const basic_tensor<T>&, T, source_location);                          \
    template basic_tensor<T> pow(const basic_tensor<T>&, std::type_identity_t<T>, source_location);           \
    template basic_tensor<T> clip_by_value(const basic_tensor<T>&, std::type_identity_t<T>, std::type_identity_t<T>, \
                                           source_location);                                                   \
    template basic_tensor<T> where(const basic_tensor<T>&, const std::type_identity_t<basic_tensor<T>>&,            \
                                   const std::type_identity_t<basic_tensor<T>>&, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
template basic_tensor<float> cast(const basic_tensor<float>&, source_location);
template basic_tensor<float> cast(const basic_tensor<double>&, source_location);
template basic_tensor<double> cast(const basic_tensor<float>&, source_location);
template basic_tensor<double> cast(const basic_tensor<double>&, source_location);

}  // namespace gradtape
