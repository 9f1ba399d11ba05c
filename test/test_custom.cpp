// lib/ops/custom.cpp: custom_gradient replaces the gradient of its forward,
// on nested tapes too, and refuses a backward that returns the wrong gradients.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>

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

namespace {

// The identity, with its gradient clipped to [-1, 1].
Tensor64 clip_gradient(const Tensor64& x)
{
    return gt::custom_gradient(
        {x}, [](const auto& in) { return in[0]; },
        [](const Tensor64& grad, const auto&, const auto&) { return std::vector{gt::clip_by_value(grad, -1.0, 1.0)}; });
}

}  // namespace

TEST_CASE("custom_gradient replaces the gradient of its forward", "[tape][custom]")
{
    const Tensor64 x = support::make64({1, 2, 3});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = clip_gradient(x);
    REQUIRE(y.value() == x.value());
    REQUIRE(tape.size() == 1);
    const Tensor64 gradient = tape.gradient(gt::reduce_sum(y * support::make64({0.5, -3, 4})), x);
    REQUIRE(gradient.value() == xt::xarray<double>{0.5, -1, 1});
}

TEST_CASE("custom_gradient on nested tapes: a stable softplus with its own derivative", "[tape][custom]")
{
    const auto softplus = [](const Tensor64& x) {
        return gt::custom_gradient<double>(
            {x}, [](const auto& in) { return gt::log1p(gt::exp(-gt::abs(in[0]))) + gt::relu(in[0]); },
            [](const Tensor64& grad, const auto& in, const auto&) { return std::vector{grad * gt::sigmoid(in[0])}; });
    };
    const Tensor64 x = support::make64({-1000, -0.5, 0.3, 1000});
    support::require_gradients([&](const auto& in) { return softplus(in[0]); }, {support::make64({-0.5, 0.3})});
    support::require_second_gradients([&](const auto& in) { return softplus(in[0]); }, {support::make64({-0.5, 0.3})});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 gradient = tape.gradient(gt::reduce_sum(softplus(x)), x);
    REQUIRE(xt::all(xt::isfinite(gradient.value())));
    REQUIRE(gradient.value()(3) == 1.0);
}

TEST_CASE("custom_gradient refuses a backward that returns the wrong gradients", "[tape][custom][errors]")
{
    const Tensor64 x = support::make64({1, 2});
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    const Tensor64 too_many = gt::custom_gradient<double>(
        {x}, [](const auto& in) { return in[0] * 2.0; },
        [](const Tensor64& grad, const auto&, const auto&) { return std::vector{grad, grad}; });
    REQUIRE_THROWS_WITH(tape.gradient(gt::reduce_sum(too_many), x), Contains("custom_gradient") && Contains("2 gradients for 1"));
    const Tensor64 misshapen = gt::custom_gradient<double>(
        {x}, [](const auto& in) { return in[0] * 2.0; },
        [](const Tensor64&, const auto&, const auto&) { return std::vector{gt::ones<double>({3})}; });
    REQUIRE_THROWS_WITH(tape.gradient(gt::reduce_sum(misshapen), x), Contains("(3,)") && Contains("(2,)"));
}
