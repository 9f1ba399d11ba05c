// lib/ops/shape.cpp: ops that move values, placed as TensorFlow places them,
// and their gradients.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

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

TEST_CASE("shape ops move values as NumPy does", "[ops][values]")
{
    const Tensor64 a = make64({1, 2, 3, 4, 5, 6}, {2, 3});
    require_values(gt::transpose(a), {1, 4, 2, 5, 3, 6}, {3, 2});
    require_values(gt::transpose(make64({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, {2, 3, 2}), {1, 0, -1}),
                   {0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}, {3, 2, 2});
    require_values(gt::reshape(a, {3, -1}), {1, 2, 3, 4, 5, 6}, {3, 2});
    require_values(gt::reshape(a, {6}), {1, 2, 3, 4, 5, 6}, {6});
    require_values(gt::broadcast_to(make64({1, 2}, {2, 1}), {2, 2}), {1, 1, 2, 2}, {2, 2});
}

TEST_CASE("broadcasts, transposes and sums equal xtensor's on every layout of their axes", "[ops][values]")
{
    // The ops walk merged runs of axes (lib/kernels/strided.hpp); xtensor's
    // element-by-element broadcasting is the reference. The pairs cover a
    // repeated last axis, both operands repeated along different axes, a
    // scalar and length-1 axes between others.
    const std::vector<std::pair<gt::shape_type, gt::shape_type>> pairs{
        {{2, 3, 4}, {2, 3, 1}}, {{2, 1, 4}, {1, 3, 1}}, {{3, 1, 5, 1}, {1, 4, 1, 2}}, {{}, {2, 3}},
        {{5}, {2, 3, 5}},       {{2, 3, 1}, {3, 4}},    {{1, 1, 4}, {2, 1, 1}},       {{2, 0, 3}, {2, 1, 3}}};
    for (const auto& [left, right] : pairs) {
        INFO("shapes " << left << " and " << right);
        const Tensor64 a = random64(left);
        const Tensor64 b = random64(right);
        REQUIRE((a - b).value() == xt::xarray<double>(a.value() - b.value()));
        REQUIRE((b / a).value() == xt::xarray<double>(b.value() / a.value()));
        REQUIRE(gt::maximum(a, b).value() == xt::xarray<double>(xt::maximum(a.value(), b.value())));
        const gt::shape_type both = (a + b).shape();
        REQUIRE(gt::broadcast_to(a, both).value() == xt::xarray<double>(xt::broadcast(a.value(), both)));
    }
    const Tensor64 x = random64({2, 3, 4, 5});
    std::vector<std::ptrdiff_t> perm{0, 1, 2, 3};
    do {
        INFO("perm " << perm[0] << perm[1] << perm[2] << perm[3]);
        REQUIRE(gt::transpose(x, perm).value() == xt::xarray<double>(xt::transpose(x.value(), perm)));
    } while (std::next_permutation(perm.begin(), perm.end()));
    for (unsigned subset = 0; subset < 16; ++subset) {
        std::vector<std::ptrdiff_t> axes;
        for (std::ptrdiff_t axis = 0; axis < 4; ++axis) {
            if ((subset >> axis) & 1U) {
                axes.push_back(axis);
            }
        }
        INFO("axes subset " << subset);
        const xt::xarray<double> expected = axes.empty() ? x.value() : xt::xarray<double>(xt::sum(x.value(), axes));
        REQUIRE(xt::allclose(gt::reduce_sum(x, axes).value(), expected, 1e-14, 1e-14));
    }
}

TEST_CASE("gradients of shape ops", "[ops][gradient]")
{
    const Tensor64 x = random64({2, 3, 4});
    require_gradients([](const auto& in) { return gt::transpose(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::transpose(in[0], {2, 0, 1}); }, {x});
    require_gradients([](const auto& in) { return gt::transpose(in[0], {0, -1, 1}); }, {x});
    require_gradients([](const auto& in) { return gt::reshape(in[0], {4, -1}); }, {x});
    require_gradients([](const auto& in) { return gt::broadcast_to(in[0], {5, 2, 3, 4}); }, {x});
    require_gradients([](const auto& in) { return gt::broadcast_to(in[0], {2, 3, 4}); }, {random64({3, 1})});
}

TEST_CASE("braced lists of tensors and variables name their dtype themselves", "[shape][values]")
{
    const Tensor64 a = make64({1, 2});
    const gt::Variable64 v(make64({3, 4}), "v");
    REQUIRE(same(gt::concat({a, v}, 0), make64({1, 2, 3, 4})));
    REQUIRE(same(gt::stack({v, a}), make64({3, 4, 1, 2}, {2, 2})));
    const Tensor64 doubled = gt::custom_gradient(
        {a}, [](const auto& in) { return in[0] * 2.0; },
        [](const Tensor64& grad, const auto&, const auto&) { return std::vector{grad * 2.0}; });
    REQUIRE(same(doubled, make64({2, 4})));
}

TEST_CASE("a shape prints as NumPy writes it", "[shape][debug]")
{
    const auto printed = [](const Tensor64& t) {
        std::ostringstream out;
        out << t.shape();
        return out.str();
    };
    REQUIRE(printed(make64({1, 2, 3, 4, 5, 6}, {2, 3})) == "(2, 3)");
    REQUIRE(printed(make64({1, 2, 3})) == "(3,)");
    REQUIRE(printed(gt::reduce_sum(make64({1, 2}))) == "()");
    REQUIRE(printed(gt::zeros<double>({4, 0, 1})) == "(4, 0, 1)");
}

TEST_CASE("shape ops place values as TensorFlow does", "[shape][values]")
{
    const Tensor64 a = make64({1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(gt::expand_dims(a, 1).shape() == gt::shape_type{2, 1, 3});
    REQUIRE(gt::expand_dims(a, -1).shape() == gt::shape_type{2, 3, 1});
    REQUIRE(gt::squeeze(make64({1, 2}, {1, 2, 1})).shape() == gt::shape_type{2});
    REQUIRE(gt::squeeze(make64({1, 2}, {1, 2, 1}), {0}).shape() == gt::shape_type{2, 1});
    REQUIRE(same(gt::concat({a, make64({7, 8}, {2, 1})}, 1), make64({1, 2, 3, 7, 4, 5, 6, 8}, {2, 4})));
    REQUIRE(same(gt::concat({a, a}, 0), make64({1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6}, {4, 3})));
    REQUIRE(same(gt::stack({make64({1, 2}), make64({3, 4})}, 1), make64({1, 3, 2, 4}, {2, 2})));
    REQUIRE(same(gt::stack<double>({make64({1, 2}), make64({3, 4})}, -1), make64({1, 3, 2, 4}, {2, 2})));
    const auto pieces = gt::split(a, {1, 2}, 1);
    REQUIRE(same(pieces[0], make64({1, 4}, {2, 1})));
    REQUIRE(same(pieces[1], make64({2, 3, 5, 6}, {2, 2})));
    REQUIRE(same(gt::slice(a, {1, 1}, {1, -1}), make64({5, 6}, {1, 2})));
    REQUIRE(same(gt::gather(a, {1, 0, 1}), make64({4, 5, 6, 1, 2, 3, 4, 5, 6}, {3, 3})));
    REQUIRE(same(gt::gather(a, {2, 2}, 1), make64({3, 3, 6, 6}, {2, 2})));
    xt::xarray<std::int64_t> grid = {0, 1, 1, 0};
    grid.reshape({2, 2});
    REQUIRE(gt::gather(a, grid).shape() == gt::shape_type{2, 2, 3});
    REQUIRE(same(gt::one_hot<double>({2, 0, 5}, 3), make64({0, 0, 1, 1, 0, 0, 0, 0, 0}, {3, 3})));
    REQUIRE(same(gt::tile(make64({1, 2}, {1, 2}), {2, 2}), make64({1, 2, 1, 2, 1, 2, 1, 2}, {2, 4})));
}

TEST_CASE("gradients of the shape ops", "[shape][gradient]")
{
    const Tensor64 x = random64({2, 3});
    const Tensor64 y = random64({2, 2});
    require_gradients([](const auto& in) { return gt::expand_dims(gt::square(in[0]), 1); }, {x});
    require_gradients([](const auto& in) { return gt::squeeze(gt::expand_dims(in[0], 0)); }, {x});
    require_gradients([](const auto& in) { return gt::concat(in, 1); }, {x, y});
    require_gradients([](const auto& in) { return gt::stack(std::vector{in[0], in[0] * 2.0}, 1); }, {x});
    require_gradients([](const auto& in) { return gt::split(in[0], {2, 1}, -1)[1] * 3.0; }, {x});
    require_gradients([](const auto& in) { return gt::slice(in[0], {0, 1}, {2, 2}); }, {x});
    require_gradients([](const auto& in) { return gt::tile(in[0], {2, 3}); }, {x});
    require_gradients([](const auto& in) { return gt::gather(in[0], {2, 0, 2}, 1); }, {x});
    require_second_gradients([](const auto& in) { return gt::square(gt::concat(in, 1)); }, {x, y});
    require_second_gradients([](const auto& in) { return gt::square(gt::slice(in[0], {1, 0}, {1, -1})); }, {x});
    require_second_gradients([](const auto& in) { return gt::exp(gt::gather(in[0], {1, 1, 0})); }, {x});
    require_second_gradients([](const auto& in) { return gt::square(gt::tile(in[0], {1, 2})); }, {x});
}

TEST_CASE("the gradient of gather adds repeated rows, as an embedding lookup needs", "[shape][gradient]")
{
    const Tensor64 table = random64({4, 2});
    gt::GradientTape tape;
    tape.watch(table);
    const Tensor64 gradient = tape.gradient(gt::reduce_sum(gt::gather(table, {3, 1, 3, 3})), table);
    REQUIRE(same(gradient, make64({0, 0, 1, 1, 0, 0, 3, 3}, {4, 2})));
}
