// lib/ops/reduce.cpp: reductions over any axes, their values against their
// definitions, gradients and second derivatives, ties, NaN and empty axes.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>

#include <limits>

#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;
using gt::Tensor64;
using support::make64;
using support::random64;
using support::require_gradients;
using support::require_second_gradients;
using support::require_values;
using support::same;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinRel;

TEST_CASE("reductions take negative axes and keepdims", "[ops][values]")
{
    const Tensor64 a = make64({1, 2, 3, 4, 5, 6}, {2, 3});
    require_values(gt::reduce_sum(a), {21}, {});
    require_values(gt::reduce_sum(a, {0}), {5, 7, 9}, {3});
    require_values(gt::reduce_sum(a, {-1}), {6, 15}, {2});
    require_values(gt::reduce_sum(a, {1}, true), {6, 15}, {2, 1});
    require_values(gt::reduce_sum(a, {0, 1}, true), {21}, {1, 1});
    require_values(gt::reduce_sum(a, gt::axes_type{}), {1, 2, 3, 4, 5, 6}, {2, 3});
    require_values(gt::reduce_mean(a), {3.5}, {});
    require_values(gt::reduce_mean(a, {-2}), {2.5, 3.5, 4.5}, {3});
    require_values(gt::reduce_mean(a, {1}, true), {2, 5}, {2, 1});
}

TEST_CASE("gradients of reductions over any axes", "[ops][gradient]")
{
    const Tensor64 x = random64({2, 3, 4});
    require_gradients([](const auto& in) { return gt::reduce_sum(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::reduce_mean(in[0]); }, {x});
    const gt::axes_type axes = GENERATE(gt::axes_type{0}, gt::axes_type{-1}, gt::axes_type{1, -1},
                                        gt::axes_type{0, 1, 2}, gt::axes_type{});
    const bool keepdims = GENERATE(false, true);
    CAPTURE(axes, keepdims);
    require_gradients([&](const auto& in) { return gt::reduce_sum(in[0], axes, keepdims); }, {x});
    require_gradients([&](const auto& in) { return gt::reduce_mean(in[0], axes, keepdims); }, {x});
}

TEST_CASE("max, min, prod, logsumexp and variance reduce as their definitions say", "[reduce][values]")
{
    const Tensor64 a = make64({1, 5, 3, 4, 2, 6}, {2, 3});
    REQUIRE(same(gt::reduce_max(a), make64({6})));
    REQUIRE(same(gt::reduce_max(a, {0}), make64({4, 5, 6})));
    REQUIRE(same(gt::reduce_min(a, {-1}, true), make64({1, 2}, {2, 1})));
    REQUIRE(same(gt::reduce_prod(a, {1}), make64({15, 48})));
    REQUIRE(same(gt::reduce_prod(a), make64({720})));
    const double lse_row0 = std::log(std::exp(1.0) + std::exp(5.0) + std::exp(3.0));
    const double lse_row1 = std::log(std::exp(4.0) + std::exp(2.0) + std::exp(6.0));
    REQUIRE(same(gt::reduce_logsumexp(a, {1}), make64({lse_row0, lse_row1})));
    const double mean0 = 3.0, mean1 = 4.0;
    REQUIRE(same(gt::reduce_variance(a, {-1}), make64({(4 + 4 + 0) / 3.0 + 0 * mean0, (0 + 4 + 4) / 3.0 + 0 * mean1})));
    REQUIRE(same(gt::reduce_variance(a), make64({17.5 / 6})));
}

TEST_CASE("a single axis needs no braces, and only a signed integer is one", "[reduce][values]")
{
    const Tensor64 a = make64({1, 5, 3, 4, 2, 6}, {2, 3});
    REQUIRE(same(gt::reduce_sum(a, 1), make64({9, 12})));
    REQUIRE(same(gt::reduce_max(a, -1, true), make64({5, 6}, {2, 1})));
    REQUIRE(same(gt::reduce_mean(a, 0), make64({2.5, 3.5, 4.5})));
    REQUIRE(gt::squeeze(make64({1, 2}, {1, 2, 1}), 2).shape() == gt::shape_type{1, 2});
    STATIC_REQUIRE(std::is_convertible_v<int, gt::axes_type>);
    STATIC_REQUIRE(std::is_convertible_v<std::ptrdiff_t, gt::axes_type>);
    STATIC_REQUIRE_FALSE(std::is_convertible_v<bool, gt::axes_type>);
    // A size is refused at compile time with a message: test/compile_errors/unsigned_axis.cpp.
}

TEST_CASE("reduce_logsumexp stays finite for inputs of plus or minus 1000", "[reduce][stability]")
{
    const Tensor64 x = make64({1000, 1000, -1000, -1000}, {2, 2});
    const Tensor64 lse = gt::reduce_logsumexp(x, {1});
    REQUIRE_THAT(lse.value()(0), WithinRel(1000 + std::log(2.0), 1e-12));
    REQUIRE_THAT(lse.value()(1), WithinRel(-1000 + std::log(2.0), 1e-12));
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 gradient = tape.gradient(gt::reduce_sum(gt::reduce_logsumexp(x, {1})), x);
    REQUIRE(xt::allclose(gradient.value(), 0.5));
}

TEST_CASE("the gradient of reduce_max and reduce_min is shared equally among ties", "[reduce][gradient]")
{
    const Tensor64 x = make64({3, 1, 3, 2, 2, 2}, {2, 3});
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    REQUIRE(same(tape.gradient(gt::reduce_max(x), x), make64({0.5, 0, 0.5, 0, 0, 0}, {2, 3})));
    REQUIRE(same(tape.gradient(gt::reduce_sum(gt::reduce_max(x, {1})), x),
                 make64({0.5, 0, 0.5, 1 / 3.0, 1 / 3.0, 1 / 3.0}, {2, 3})));
    REQUIRE(same(tape.gradient(gt::reduce_sum(gt::reduce_min(x, {0})), x), make64({0, 1, 0, 1, 0, 1}, {2, 3})));
}

TEST_CASE("the gradient of reduce_prod is the product of the others, zeros included", "[reduce][gradient]")
{
    const Tensor64 x = make64({2, 0, 3, 0, 0, 5, 4, 1, 2}, {3, 3});
    gt::GradientTape tape;
    tape.watch(x);
    // Row 0 has one zero, row 1 two, row 2 none.
    REQUIRE(same(tape.gradient(gt::reduce_sum(gt::reduce_prod(x, {1})), x),
                 make64({0, 6, 0, 0, 0, 0, 2, 8, 4}, {3, 3})));
}

TEST_CASE("gradients of the reductions over any axes", "[reduce][gradient]")
{
    const Tensor64 x = random64({2, 3, 4});
    const gt::axes_type axes = GENERATE(gt::axes_type{0}, gt::axes_type{-1}, gt::axes_type{0, 2});
    const bool keepdims = GENERATE(false, true);
    CAPTURE(axes, keepdims);
    require_gradients([&](const auto& in) { return gt::reduce_max(in[0], axes, keepdims); }, {x});
    require_gradients([&](const auto& in) { return gt::reduce_min(in[0], axes, keepdims); }, {x});
    require_gradients([&](const auto& in) { return gt::reduce_prod(in[0], axes, keepdims); }, {x});
    require_gradients([&](const auto& in) { return gt::reduce_logsumexp(in[0], axes, keepdims); }, {x});
    require_gradients([&](const auto& in) { return gt::reduce_variance(in[0], axes, keepdims); }, {x});
    require_second_gradients([&](const auto& in) { return gt::reduce_prod(in[0], axes, keepdims); }, {x});
    require_second_gradients([&](const auto& in) { return gt::reduce_logsumexp(in[0], axes, keepdims); }, {x});
    require_second_gradients([&](const auto& in) { return gt::reduce_variance(in[0], axes, keepdims); }, {x});
    require_second_gradients([&](const auto& in) { return gt::square(gt::reduce_max(in[0], axes, keepdims)); }, {x});
}

TEST_CASE("the second derivative of reduce_prod is exact at zeros", "[reduce][gradient]")
{
    // p = x0 x1 x2; the Hessian-vector product with v = (1, 0, 0) is (0, x2, x1).
    const auto hessian_times_first_axis = [](const Tensor64& x) {
        gt::GradientTape outer;
        outer.watch(x);
        Tensor64 first;
        {
            gt::GradientTape inner;
            inner.watch(x);
            first = inner.gradient(gt::reduce_prod(x), x);
        }
        return outer.gradient(gt::reduce_sum(first * make64({1, 0, 0})), x);
    };
    REQUIRE(same(hessian_times_first_axis(make64({0, 2, 3})), make64({0, 3, 2})));
    REQUIRE(same(hessian_times_first_axis(make64({1, 2, 3})), make64({0, 3, 2})));
    REQUIRE(same(hessian_times_first_axis(make64({0, 0, 3})), make64({0, 3, 0})));
    // Slices with one, two and no zeros, reduced over either axis, against finite differences.
    const Tensor64 x = make64({2, 0, 3, 0, 0, 5, 4, 1, 2}, {3, 3});
    support::require_second_gradients([](const auto& in) { return gt::reduce_prod(in[0], {1}); }, {x});
    support::require_second_gradients([](const auto& in) { return gt::reduce_prod(in[0], {0}, true); }, {x});
    support::require_second_gradients([](const auto& in) { return gt::reduce_prod(in[0]); }, {x});
}

TEST_CASE("a NaN propagates through max, min and their relatives wherever it stands", "[reduce][values]")
{
    const double nan = std::nan("");
    const auto is_nan = [](const Tensor64& t) { return std::isnan(t.item()); };
    REQUIRE(is_nan(gt::reduce_max(make64({nan, 1, 2}))));
    REQUIRE(is_nan(gt::reduce_max(make64({1, 2, nan}))));
    REQUIRE(is_nan(gt::reduce_min(make64({nan, 1, 2}))));
    REQUIRE(is_nan(gt::reduce_min(make64({1, 2, nan}))));
    const Tensor64 columns = gt::reduce_max(make64({nan, 1, 2, 3}, {2, 2}), {0});
    REQUIRE(std::isnan(columns.value()(0)));
    REQUIRE(columns.value()(1) == 3);
    REQUIRE(is_nan(gt::relu(Tensor64(nan))));
    REQUIRE(is_nan(gt::sign(Tensor64(nan))));
    REQUIRE(is_nan(gt::clip_by_value(Tensor64(nan), -1.0, 1.0)));
    REQUIRE(is_nan(gt::maximum(Tensor64(nan), Tensor64(1.0))));
    REQUIRE(is_nan(gt::maximum(Tensor64(1.0), Tensor64(nan))));
    REQUIRE(is_nan(gt::minimum(Tensor64(nan), Tensor64(1.0))));
    REQUIRE(is_nan(gt::minimum(Tensor64(1.0), Tensor64(nan))));
    gt::check_numerics guard;
    REQUIRE_THROWS_AS(gt::relu(Tensor64(nan)), gt::numeric_error);
}

TEST_CASE("reductions and softmax over an empty axis give the identity, or an empty result", "[reduce][values]")
{
    const Tensor64 empty_rows = gt::zeros<double>({2, 0});
    REQUIRE(gt::reduce_sum(empty_rows, {1}).value() == xt::xarray<double>{0, 0});
    REQUIRE(gt::reduce_prod(empty_rows, {1}).value() == xt::xarray<double>{1, 1});
    REQUIRE(xt::all(xt::isnan(gt::reduce_mean(empty_rows, {1}).value())));
    REQUIRE(gt::reduce_sum(empty_rows).item() == 0);
    REQUIRE(gt::reduce_max(gt::zeros<double>({0, 3}), {1}).shape() == gt::shape_type{0});
    REQUIRE(gt::reduce_logsumexp(gt::zeros<double>({0, 3}), {1}).shape() == gt::shape_type{0});
    REQUIRE(gt::softmax(empty_rows, 1).shape() == gt::shape_type{2, 0});
    REQUIRE(gt::log_softmax(empty_rows, 1).shape() == gt::shape_type{2, 0});
    REQUIRE(gt::softmax(gt::zeros<double>({0, 3}), 1).shape() == gt::shape_type{0, 3});
    gt::GradientTape tape;
    tape.watch(empty_rows);
    REQUIRE(tape.gradient(gt::reduce_sum(gt::softmax(empty_rows, 1)), empty_rows).shape() == gt::shape_type{2, 0});
}

TEST_CASE("argmax, argmin and top_k pick as NumPy and TensorFlow do: first of ties, NaN first", "[reduce][arg]")
{
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const Tensor64 x = make64({3, 1, 3, 2, 7, 0, 7, 7, nan, 2, 1, 2}, {3, 4});
    REQUIRE((gt::argmax(x, 1) == xt::xarray<std::int64_t>{0, 0, 0}));
    REQUIRE((gt::argmax(x, 0) == xt::xarray<std::int64_t>{2, 2, 1, 1}));
    REQUIRE((gt::argmin(x, -1) == xt::xarray<std::int64_t>{1, 1, 0}));
    REQUIRE(gt::argmax(make64({1, 5, 5, 2}), 0)() == 1);

    const Tensor64 y = make64({4, 9, 1, 9, 3, 0, 5, 2}, {2, 4});
    gt::GradientTape tape;
    tape.watch(y);
    const auto [values, indices] = gt::top_k(y, 2);
    REQUIRE(same(values, make64({9, 9, 5, 3}, {2, 2})));
    REQUIRE((indices == xt::xarray<std::int64_t>{{1, 3}, {2, 0}}));
    REQUIRE(same(tape.gradient(gt::reduce_sum(values * make64({1, 2, 3, 4}, {2, 2})), y),
                 make64({0, 1, 0, 2, 4, 0, 3, 0}, {2, 4})));
    REQUIRE_THROWS_AS(gt::top_k(y, 5), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::argmax(gt::zeros<double>({2, 0}), 1), Contains("argmax") && Contains("empty"));
}
