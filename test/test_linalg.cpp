// lib/ops/linalg.cpp: matmul of matrices, batches and vectors, transposed
// operands included, against sums written out, and its gradients.
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

TEST_CASE("matmul broadcasts batch dimensions and follows NumPy's rules for vectors", "[linalg][values]")
{
    const Tensor64 a = random64({2, 1, 3, 4});
    const Tensor64 b = random64({5, 4, 2});
    const Tensor64 product = gt::matmul(a, b);
    REQUIRE(product.shape() == gt::shape_type{2, 5, 3, 2});
    for (std::size_t i = 0; i < 2; ++i) {
        for (std::size_t j = 0; j < 5; ++j) {
            for (std::size_t r = 0; r < 3; ++r) {
                for (std::size_t c = 0; c < 2; ++c) {
                    double expected = 0;
                    for (std::size_t k = 0; k < 4; ++k) {
                        expected += a.value()(i, 0, r, k) * b.value()(j, k, c);
                    }
                    REQUIRE(product.value()(i, j, r, c) == Approx(expected));
                }
            }
        }
    }
    const Tensor64 v = make64({1, 2, 3});
    const Tensor64 m = make64({1, 0, 0, 1, 1, 1}, {3, 2});
    REQUIRE(gt::matmul(v, m).value() == xt::xarray<double>{4, 5});
    REQUIRE(gt::matmul(gt::transpose(m), v).value() == xt::xarray<double>{4, 5});
    REQUIRE(gt::matmul(v, v).dimension() == 0);
    REQUIRE(gt::matmul(v, v).item() == 14.0);
}

TEST_CASE("gradients of batched and vector matmul", "[linalg][gradient]")
{
    const bool transpose_b = GENERATE(false, true);
    const gt::matmul_options options{.transpose_b = transpose_b};
    const Tensor64 a = random64({2, 3, 4});
    const Tensor64 b = transpose_b ? random64({2, 4}) : random64({4, 2});
    require_gradients([&](const auto& in) { return gt::matmul(in[0], in[1], options); }, {a, b});
    require_second_gradients([&](const auto& in) { return gt::square(gt::matmul(in[0], in[1], options)); }, {a, b});
    require_gradients([](const auto& in) { return gt::matmul(in[0], in[1]); }, {random64({4}), random64({3, 4, 2})});
    require_gradients([](const auto& in) { return gt::matmul(in[0], in[1]); }, {random64({3, 4}), random64({4})});
}
