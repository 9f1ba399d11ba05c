// lib/ops/nn.cpp: softmax, the losses and dropout: values against their
// definitions, gradients, and stability at plus or minus 1000.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <tuple>
#include <type_traits>

#include <functional>
#include <limits>
#include <vector>
#include "support.hpp"

#include <xtensor/xview.hpp>

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

TEST_CASE("softmax and log_softmax sum to one and stay finite at plus or minus 1000", "[nn][values]")
{
    const Tensor64 logits = make64({1000, 0, -1000, 1, 2, 3}, {2, 3});
    const Tensor64 probabilities = gt::softmax(logits);
    REQUIRE(xt::allclose(xt::sum(probabilities.value(), {1}), xt::xarray<double>{1, 1}));
    REQUIRE(probabilities.value()(0, 0) == 1.0);
    const double normaliser = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
    REQUIRE(probabilities.value()(1, 2) == Approx(std::exp(3.0) / normaliser));
    const Tensor64 log_probabilities = gt::log_softmax(logits);
    REQUIRE(log_probabilities.value()(0, 2) == Approx(-2000.0));
    REQUIRE(log_probabilities.value()(1, 0) == Approx(1.0 - std::log(normaliser)));
    REQUIRE(xt::all(xt::isfinite(gt::softmax(logits, 0).value())));
}

TEST_CASE("the cross-entropies are stable and equal their definitions", "[nn][values]")
{
    const Tensor64 logits = make64({1000, 0, -1000, 1, 2, 3}, {2, 3});
    const Tensor64 labels = make64({0, 1, 0, 0.2, 0.3, 0.5}, {2, 3});
    const Tensor64 dense = gt::softmax_cross_entropy_with_logits(labels, logits);
    REQUIRE(dense.value()(0) == Approx(1000.0));
    const double normaliser = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
    REQUIRE(dense.value()(1) == Approx(-(0.2 * (1 - normaliser) + 0.3 * (2 - normaliser) + 0.5 * (3 - normaliser))));
    const Tensor64 sparse = gt::sparse_softmax_cross_entropy_with_logits({2, 1}, logits);
    REQUIRE(sparse.value()(0) == Approx(2000.0));
    REQUIRE(sparse.value()(1) == Approx(normaliser - 2));

    const Tensor64 x = make64({1000, -1000, 0, 2});
    const Tensor64 z = make64({1, 0, 0.5, 0.3});
    const Tensor64 binary = gt::sigmoid_cross_entropy_with_logits(z, x);
    REQUIRE(binary.value()(0) == Approx(0.0).margin(1e-12));
    REQUIRE(binary.value()(1) == Approx(0.0).margin(1e-12));
    REQUIRE(binary.value()(2) == Approx(std::log(2.0)));
    const double p = 1 / (1 + std::exp(-2.0));
    REQUIRE(binary.value()(3) == Approx(-(0.3 * std::log(p) + 0.7 * std::log(1 - p))));
    REQUIRE(gt::mean_squared_error(make64({1, 2}, {1, 2}), make64({2, 4}, {1, 2})).value()(0) == Approx(2.5));
}

TEST_CASE("gradients of the nn ops are finite at plus or minus 1000", "[nn][stability]")
{
    const Tensor64 logits = make64({1000, 0, -1000, -1000, 1000, 1000}, {2, 3});
    const Tensor64 labels = make64({0, 1, 0, 1, 0, 0}, {2, 3});
    gt::GradientTape tape({.persistent = true});
    tape.watch(logits);
    for (const Tensor64& loss :
         {gt::reduce_sum(gt::log_softmax(logits)), gt::reduce_sum(gt::softmax(logits) * labels),
          gt::reduce_sum(gt::softmax_cross_entropy_with_logits(labels, logits)),
          gt::reduce_sum(gt::sparse_softmax_cross_entropy_with_logits({1, 0}, logits)),
          gt::reduce_sum(gt::sigmoid_cross_entropy_with_logits(labels, logits)),
          gt::reduce_sum(gt::softplus(logits)), gt::reduce_sum(gt::sigmoid(logits)),
          gt::reduce_logsumexp(logits)}) {
        REQUIRE(std::isfinite(loss.item()));
        const Tensor64 gradient = tape.gradient(loss, logits);
        INFO(gradient);
        REQUIRE(xt::all(xt::isfinite(gradient.value())));
    }
    const Tensor64 gradient =
        tape.gradient(gt::reduce_sum(gt::sigmoid_cross_entropy_with_logits(labels, logits)), logits);
    REQUIRE(xt::allclose(gradient.value(), make64({1, -0.5, 0, -1, 1, 1}, {2, 3}).value()));
}

TEST_CASE("gradients and second derivatives of the nn ops", "[nn][gradient]")
{
    const Tensor64 logits = random64({3, 4}, -3, 3);
    const Tensor64 labels = gt::softmax(random64({3, 4}));
    require_gradients([](const auto& in) { return gt::softmax(in[0]); }, {logits});
    require_gradients([](const auto& in) { return gt::softmax(in[0], 0); }, {logits});
    require_gradients([](const auto& in) { return gt::log_softmax(in[0]); }, {logits});
    require_gradients([](const auto& in) { return gt::softmax_cross_entropy_with_logits(in[0], in[1]); },
                      {labels, logits});
    require_gradients([](const auto& in) { return gt::sparse_softmax_cross_entropy_with_logits({3, 0, 1}, in[0]); },
                      {logits});
    require_gradients([](const auto& in) { return gt::sigmoid_cross_entropy_with_logits(in[0], in[1]); },
                      {labels, logits});
    require_gradients([](const auto& in) { return gt::mean_squared_error(in[0], in[1]); }, {labels, logits});
    require_second_gradients([](const auto& in) { return gt::softmax(in[0]); }, {logits});
    require_second_gradients([](const auto& in) { return gt::log_softmax(in[0], 0); }, {logits});
    require_second_gradients([](const auto& in) { return gt::sigmoid_cross_entropy_with_logits(in[0], in[1]); },
                             {labels, logits});
    require_second_gradients([](const auto& in) { return gt::sparse_softmax_cross_entropy_with_logits({3, 0, 1}, in[0]); },
                             {logits});
}

TEST_CASE("dropout keeps the expectation and draws from the seeded generator", "[nn]")
{
    const Tensor64 x = gt::ones<double>({20000});
    gt::set_seed(3);
    const Tensor64 dropped = gt::dropout(x, 0.25);
    gt::set_seed(3);
    REQUIRE(gt::dropout(x, 0.25).value() == dropped.value());
    const double kept = double(xt::sum(xt::cast<double>(xt::not_equal(dropped.value(), 0.0)))());
    REQUIRE(kept / 20000 == Approx(0.75).margin(0.02));
    REQUIRE(xt::mean(dropped.value())() == Approx(1.0).margin(0.03));
    REQUIRE(xt::all(xt::equal(dropped.value(), 0.0) || xt::isclose(dropped.value(), 1 / 0.75)));
    REQUIRE_THROWS_AS(gt::dropout(x, 1.0), gt::argument_error);
}

TEST_CASE("moments, batch_normalization and layer_normalization equal their definitions", "[nn][norm][values]")
{
    const Tensor64 x = make64({1, 2, 3, 4, 6, 8}, {2, 3});
    const auto [mean, variance] = gt::moments(x, 1);
    REQUIRE(same(mean, make64({2, 6})));
    REQUIRE(same(variance, make64({2.0 / 3, 8.0 / 3})));
    const auto [kept_mean, kept_variance] = gt::moments(x, {0, 1}, true);
    REQUIRE(kept_mean.shape() == gt::shape_type{1, 1});
    REQUIRE(kept_variance.item() == Approx((1 + 4 + 9 + 16 + 36 + 64) / 6.0 - 16.0));

    // Row 0: (x - 2) / sqrt(2/3 + 0.01) * scale + offset, element by element.
    const Tensor64 scale = make64({1, 2, 3});
    const Tensor64 offset = make64({0, 0.5, -1});
    const Tensor64 normalized = gt::batch_normalization(x, gt::moments(x, 1, true).first,
                                                        gt::moments(x, 1, true).second, offset, scale, 0.01);
    const double d0 = std::sqrt(2.0 / 3 + 0.01);
    const double d1 = std::sqrt(8.0 / 3 + 0.01);
    support::require_values(normalized, {-1 / d0, 0.5, 3 / d0 - 1, -2 / d1, 0.5, 6 / d1 - 1}, {2, 3});
    support::require_values(gt::batch_normalization(x, Tensor64(2.0), Tensor64(4.0), {}, {}, 0.0),
                            {-0.5, 0, 0.5, 1, 2, 3}, {2, 3});
    support::require_values(gt::layer_normalization(x, scale, offset, {.epsilon = 0.01}),
                            {-1 / d0, 0.5, 3 / d0 - 1, -2 / d1, 0.5, 6 / d1 - 1}, {2, 3});
}

TEST_CASE("gradients and second derivatives of the normalizations are exact, through the mean too",
          "[nn][norm][gradient]")
{
    const auto variance_of = [](const auto& in) { return gt::moments(in[0], {0, 2}).second; };
    require_gradients(variance_of, {random64({3, 2, 4})});
    require_second_gradients(variance_of, {random64({3, 2, 4})});
    const auto normalize = [](const auto& in) {
        const auto [mean, variance] = gt::moments(in[0], 0, true);
        return gt::batch_normalization(in[0], mean, variance, in[2], in[1], 1e-3);
    };
    require_gradients(normalize, {random64({5, 3}), random64({3}), random64({3})});
    require_second_gradients(normalize, {random64({5, 3}), random64({3}), random64({3})});
    const auto layer = [](const auto& in) { return gt::layer_normalization(in[0], in[1], in[2], {.axes = {1, 2}}); };
    require_gradients(layer, {random64({2, 3, 4}), random64({3, 4}), random64({4})});
    require_second_gradients(layer, {random64({2, 3, 4}), random64({3, 4}), random64({4})});
}

TEST_CASE("embedding_lookup picks rows, adds the gradients of repeated ids and refuses unknown ones", "[nn][embedding]")
{
    const Tensor64 table = make64({1, 2, 3, 4, 5, 6}, {3, 2});
    const xt::xarray<std::int64_t> ids = {{2, 0}, {2, 2}};
    gt::GradientTape tape;
    tape.watch(table);
    const Tensor64 rows = gt::embedding_lookup(table, ids);
    REQUIRE(same(rows, make64({5, 6, 1, 2, 5, 6, 5, 6}, {2, 2, 2})));
    REQUIRE(same(tape.gradient(rows, table, gt::ones<double>({2, 2, 2})), make64({1, 1, 0, 0, 3, 3}, {3, 2})));
    REQUIRE_THROWS_AS(gt::embedding_lookup(table, xt::xarray<std::int64_t>{3}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::embedding_lookup(table, xt::xarray<std::int64_t>{-1}),
                        Contains("embedding_lookup") && Contains("id -1") && Contains("(3, 2)"));
}

namespace {

// softmax(q k^T / sqrt(d)) v written out for one [T, D] slice, with an
// allowed(i, j) rule.
xt::xarray<double> direct_attention(const xt::xarray<double>& q, const xt::xarray<double>& k,
                                    const xt::xarray<double>& v, const std::function<bool(std::size_t, std::size_t)>& allowed)
{
    const std::size_t tq = q.shape()[0], tk = k.shape()[0], d = q.shape()[1], dv = v.shape()[1];
    xt::xarray<double> out = xt::zeros<double>({tq, dv});
    for (std::size_t i = 0; i < tq; ++i) {
        std::vector<double> weights(tk, 0);
        double largest = -1e300;
        for (std::size_t j = 0; j < tk; ++j) {
            double score = 0;
            for (std::size_t e = 0; e < d; ++e) {
                score += q(i, e) * k(j, e);
            }
            weights[j] = score / std::sqrt(double(d));
            if (allowed(i, j)) {
                largest = std::max(largest, weights[j]);
            }
        }
        double total = 0;
        for (std::size_t j = 0; j < tk; ++j) {
            weights[j] = allowed(i, j) ? std::exp(weights[j] - largest) : 0;
            total += weights[j];
        }
        for (std::size_t j = 0; j < tk; ++j) {
            for (std::size_t e = 0; e < dv; ++e) {
                out(i, e) += weights[j] / total * v(j, e);
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("scaled_dot_product_attention equals its definition, with a causal or a given mask, over heads",
          "[nn][attention][values]")
{
    const Tensor64 q = random64({2, 3, 4, 5});
    const Tensor64 k = random64({2, 3, 6, 5});
    const Tensor64 v = random64({2, 3, 6, 2});
    xt::xarray<double> mask_values = xt::ones<double>({4, 6});
    mask_values(1, 0) = mask_values(1, 3) = mask_values(3, 5) = 0;
    const Tensor64 mask = mask_values;
    const Tensor64 plain = gt::scaled_dot_product_attention(q, k, v);
    const Tensor64 causal = gt::scaled_dot_product_attention(q, k, v, {.causal = true});
    const Tensor64 masked = gt::scaled_dot_product_attention(q, k, v, {.mask = mask});
    REQUIRE(plain.shape() == gt::shape_type{2, 3, 4, 2});
    for (std::size_t b = 0; b < 2; ++b) {
        for (std::size_t h = 0; h < 3; ++h) {
            const xt::xarray<double> qs = xt::view(q.value(), b, h);
            const xt::xarray<double> ks = xt::view(k.value(), b, h);
            const xt::xarray<double> vs = xt::view(v.value(), b, h);
            const auto check = [&](const Tensor64& got, const std::function<bool(std::size_t, std::size_t)>& allowed) {
                const xt::xarray<double> slice = xt::view(got.value(), b, h);
                REQUIRE(xt::allclose(slice, direct_attention(qs, ks, vs, allowed), 1e-12, 1e-12));
            };
            check(plain, [](std::size_t, std::size_t) { return true; });
            check(causal, [](std::size_t i, std::size_t j) { return j <= i; });
            check(masked, [&](std::size_t i, std::size_t j) { return mask_values(i, j) != 0; });
        }
    }
}

TEST_CASE("an attention mask that would broadcast the scores to more dimensions is refused at the call",
          "[nn][attention][errors]")
{
    const Tensor64 q = support::random64({2, 3, 4});
    const Tensor64 mask = gt::ones<double>({1, 1, 1, 2, 3, 3});
    REQUIRE_THROWS_WITH(gt::scaled_dot_product_attention(q, q, q, {.mask = mask}),
                        Contains("scaled_dot_product_attention") && Contains("the mask (1, 1, 1, 2, 3, 3)") &&
                            Contains("(2, 3, 3)") && Contains("test_nn.cpp"));
    gt::MultiHeadAttention64 attention(2, 2);
    const Tensor64 x = support::random64({2, 3, 4});
    REQUIRE_THROWS_WITH(attention(x, x, {}, {.mask = mask}), Contains("the mask") && Contains("test_nn.cpp"));
    // One that broadcasts within them is taken.
    REQUIRE(gt::scaled_dot_product_attention(q, q, q, {.mask = gt::ones<double>({3, 3})}).shape() == q.shape());
}

TEST_CASE("gradients and second derivatives of attention", "[nn][attention][gradient]")
{
    const auto attend = [](const auto& in) { return gt::scaled_dot_product_attention(in[0], in[1], in[2], {.causal = true}); };
    require_gradients(attend, {random64({2, 3, 4}), random64({2, 3, 4}), random64({2, 3, 2})});
    require_second_gradients(attend, {random64({2, 3, 4}), random64({2, 3, 4}), random64({2, 3, 2})});
    REQUIRE_THROWS_WITH(gt::scaled_dot_product_attention(random64({3, 4}), random64({3, 5}), random64({3, 2})),
                        Contains("scaled_dot_product_attention") && Contains("(3, 4)") && Contains("(3, 5)"));
}
