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
