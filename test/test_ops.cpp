// Every op: its value against a hand-computed expectation, its gradient
// against central finite differences in float64 (broadcast shapes and negative
// axes included), and its second derivative where it has one.
#include <cmath>

#include "support.hpp"


namespace gt = gradtape;
using gt::Tensor;
using gt::Tensor64;
using support::make64;
using support::random64;
using support::require_gradients;
using support::require_second_gradients;
using Catch::Matchers::WithinRel;

namespace {

void require_values(const Tensor64& actual, std::initializer_list<double> expected, const gt::shape_type& shape)
{
    INFO(actual);
    REQUIRE(actual.shape() == shape);
    std::size_t i = 0;
    for (double e : expected) {
        REQUIRE_THAT(actual.value().flat(i++), WithinRel(e, 1e-12) || Catch::Matchers::WithinAbs(e, 1e-12));
    }
}

// Pairs of shapes that broadcast, the second often smaller.
const std::vector<std::pair<gt::shape_type, gt::shape_type>> broadcast_pairs = {
    {{3}, {3}}, {{2, 3}, {2, 3}}, {{2, 3}, {3}}, {{2, 3}, {2, 1}}, {{3}, {2, 3}},
    {{2, 1, 4}, {3, 1}}, {{2, 3}, {}}, {{}, {4}}, {{1, 3}, {2, 1}},
};

}  // namespace

TEST_CASE("arithmetic ops compute NumPy's broadcast values", "[ops][values]")
{
    const Tensor64 a = make64({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor64 row = make64({10, 20, 30}, {3});
    const Tensor64 column = make64({2, 4}, {2, 1});
    require_values(a + row, {11, 22, 33, 14, 25, 36}, {2, 3});
    require_values(a - column, {-1, 0, 1, 0, 1, 2}, {2, 3});
    require_values(a * row, {10, 40, 90, 40, 100, 180}, {2, 3});
    require_values(a / column, {0.5, 1, 1.5, 1, 1.25, 1.5}, {2, 3});
    require_values(-a, {-1, -2, -3, -4, -5, -6}, {2, 3});
    require_values(2.0 * a - 1.0, {1, 3, 5, 7, 9, 11}, {2, 3});
    require_values(1.0 / column, {0.5, 0.25}, {2, 1});
    require_values(gt::add(row, column), {12, 22, 32, 14, 24, 34}, {2, 3});
    require_values(gt::subtract(row, 1.0), {9, 19, 29}, {3});
    require_values(gt::multiply(column, column), {4, 16}, {2, 1});
    require_values(gt::divide(row, 10.0), {1, 2, 3}, {3});
}

TEST_CASE("unary ops compute their formulas", "[ops][values]")
{
    const Tensor64 x = make64({-1, 0.5, 2}, {3});
    require_values(gt::square(x), {1, 0.25, 4}, {3});
    require_values(gt::exp(x), {std::exp(-1.0), std::exp(0.5), std::exp(2.0)}, {3});
    require_values(gt::log(make64({1, std::exp(1.0), 0.25}, {3})), {0, 1, std::log(0.25)}, {3});
    require_values(gt::tanh(x), {std::tanh(-1.0), std::tanh(0.5), std::tanh(2.0)}, {3});
    require_values(gt::l2_loss(x), {(1 + 0.25 + 4) / 2}, {});
    require_values(gt::stop_gradient(x), {-1, 0.5, 2}, {3});
}

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

TEST_CASE("matmul multiplies matrices, transposed operands included", "[ops][values]")
{
    const Tensor64 a = make64({1, 2, 3, 4, 5, 6}, {2, 3});
    const Tensor64 b = make64({1, 0, 0, 1, 1, 1}, {3, 2});
    require_values(gt::matmul(a, b), {4, 5, 10, 11}, {2, 2});
    require_values(gt::matmul(a, a, {.transpose_b = true}), {14, 32, 32, 77}, {2, 2});
    require_values(gt::matmul(a, a, {.transpose_a = true}), {17, 22, 27, 22, 29, 36, 27, 36, 45}, {3, 3});
    require_values(gt::matmul(b, a, {.transpose_a = true, .transpose_b = true}), {4, 10, 5, 11}, {2, 2});
    require_values(gt::matmul(make64({}, {2, 0}), make64({}, {0, 3})), {0, 0, 0, 0, 0, 0}, {2, 3});
    xt::xarray<float> row = {1.f, 2.f};
    row.reshape({1, 2});
    xt::xarray<float> column = {3.f, 4.f};
    column.reshape({2, 1});
    REQUIRE(gt::matmul(Tensor(row), Tensor(column)).item() == 11.f);
}

TEST_CASE("gradients of elementwise binary ops are summed back to broadcast operands", "[ops][gradient]")
{
    const auto [shape_a, shape_b] = GENERATE(from_range(broadcast_pairs));
    CAPTURE(shape_a, shape_b);
    const Tensor64 a = random64(shape_a);
    const Tensor64 b = random64(shape_b, 0.5, 2.0);
    require_gradients([](const auto& in) { return in[0] + in[1]; }, {a, b});
    require_gradients([](const auto& in) { return in[0] - in[1]; }, {a, b});
    require_gradients([](const auto& in) { return in[0] * in[1]; }, {a, b});
    require_gradients([](const auto& in) { return in[0] / in[1]; }, {a, b});
}

TEST_CASE("gradients of ops with a scalar on either side", "[ops][gradient]")
{
    const Tensor64 x = random64({2, 3}, 0.5, 2.0);
    require_gradients([](const auto& in) { return 3.0 * in[0] + 1.0; }, {x});
    require_gradients([](const auto& in) { return 1.0 - in[0] / 4.0; }, {x});
    require_gradients([](const auto& in) { return 2.0 / in[0] - in[0] * 5.0; }, {x});
    require_gradients([](const auto& in) { return -in[0]; }, {x});
}

TEST_CASE("gradients of unary ops", "[ops][gradient]")
{
    const gt::shape_type shape = GENERATE(gt::shape_type{}, gt::shape_type{4}, gt::shape_type{2, 3});
    const Tensor64 x = random64(shape);
    const Tensor64 positive = random64(shape, 0.3, 3.0);
    require_gradients([](const auto& in) { return gt::square(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::exp(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::log(in[0]); }, {positive});
    require_gradients([](const auto& in) { return gt::tanh(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::negative(in[0]); }, {x});
    require_gradients([](const auto& in) { return gt::l2_loss(in[0]); }, {x});
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

TEST_CASE("gradients of matmul, transposed operands included", "[ops][gradient]")
{
    const bool transpose_a = GENERATE(false, true);
    const bool transpose_b = GENERATE(false, true);
    CAPTURE(transpose_a, transpose_b);
    const Tensor64 a = transpose_a ? random64({4, 3}) : random64({3, 4});
    const Tensor64 b = transpose_b ? random64({2, 4}) : random64({4, 2});
    const gt::matmul_options options{.transpose_a = transpose_a, .transpose_b = transpose_b};
    require_gradients([&](const auto& in) { return gt::matmul(in[0], in[1], options); }, {a, b});
    require_second_gradients([&](const auto& in) { return gt::square(gt::matmul(in[0], in[1], options)); }, {a, b});
}

TEST_CASE("second derivatives through nested tapes", "[ops][gradient][higher-order]")
{
    const Tensor64 x = random64({2, 3});
    const Tensor64 y = random64({3}, 0.5, 2.0);
    require_second_gradients([](const auto& in) { return gt::square(in[0]); }, {x});
    require_second_gradients([](const auto& in) { return gt::exp(in[0]); }, {x});
    require_second_gradients([](const auto& in) { return gt::log(in[0]); }, {y});
    require_second_gradients([](const auto& in) { return gt::tanh(in[0]); }, {x});
    require_second_gradients([](const auto& in) { return gt::l2_loss(in[0]); }, {x});
    require_second_gradients([](const auto& in) { return in[0] * in[1]; }, {x, y});
    require_second_gradients([](const auto& in) { return in[0] / in[1]; }, {x, y});
    require_second_gradients([](const auto& in) { return gt::reduce_mean(gt::square(in[0]), {-1}); }, {x});
    require_second_gradients([](const auto& in) { return gt::transpose(gt::exp(in[0])); }, {x});
    require_second_gradients([](const auto& in) { return gt::reshape(gt::tanh(in[0]), {-1}); }, {x});
}

TEST_CASE("the second derivative of tanh is its closed form", "[ops][gradient][higher-order]")
{
    const Tensor64 x = make64({-0.7, 0.2, 1.3}, {3});
    gt::GradientTape outer;
    outer.watch(x);
    Tensor64 first;
    {
        gt::GradientTape inner;
        inner.watch(x);
        first = inner.gradient(gt::reduce_sum(gt::tanh(x)), x);
    }
    const Tensor64 second = outer.gradient(gt::reduce_sum(first), x);
    for (std::size_t i = 0; i < 3; ++i) {
        const double t = std::tanh(x.value()(i));
        REQUIRE_THAT(first.value()(i), WithinRel(1 - t * t, 1e-12));
        REQUIRE_THAT(second.value()(i), WithinRel(-2 * t * (1 - t * t), 1e-12));
    }
}
