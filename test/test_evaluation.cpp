// evaluate, predict, ReduceLROnPlateau and EarlyStopping (lib/training/evaluation.cpp):
// values against formulas written here, and Keras's rules step by step.
#include <cmath>
#include <limits>

#include "support.hpp"

using gradtape::Tensor64;
using support::random64;
using Catch::Matchers::Contains;

namespace {

namespace gt = gradtape;

// A Dense layer of known weights: logits = x w + b.
struct known_dense {
    gt::Dense64 layer{3, {.name = "head"}};
    xt::xarray<double> w;
    xt::xarray<double> b;

    explicit known_dense(std::size_t features)
    {
        layer.build({1, features});
        const auto variables = layer.variables();
        w = random64({features, 3}).value();
        b = random64({3}).value();
        auto kernel = variables[0];
        auto bias = variables[1];
        kernel.assign(Tensor64(w));
        bias.assign(Tensor64(b));
    }

    double logit(const xt::xarray<double>& x, std::size_t row, std::size_t k) const
    {
        double sum = b(k);
        for (std::size_t f = 0; f < w.shape()[0]; ++f) {
            sum += x(row, f) * w(f, k);
        }
        return sum;
    }
};

}  // namespace

TEST_CASE("evaluate gives the mean loss and accuracy over every example, batch by batch", "[evaluation]")
{
    gt::set_seed(31);
    known_dense model(4);
    const Tensor64 x = random64({10, 4});
    const xt::xarray<std::int64_t> labels = {0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    double loss = 0;
    double correct = 0;
    for (std::size_t i = 0; i < 10; ++i) {
        double top = -std::numeric_limits<double>::infinity();
        std::size_t best = 0;
        double total = 0;
        for (std::size_t k = 0; k < 3; ++k) {
            const double z = model.logit(x.value(), i, k);
            total += std::exp(z);
            if (z > top) {
                top = z;
                best = k;
            }
        }
        loss += std::log(total) - model.logit(x.value(), i, std::size_t(labels(i)));
        correct += best == std::size_t(labels(i)) ? 1 : 0;
    }
    const std::size_t batch_size = GENERATE(1, 4, 10, 64);
    const gt::evaluation result =
        gt::evaluate(model.layer, x, labels, {.batch_size = batch_size, .metrics = {"accuracy"}});
    REQUIRE(result.loss == Approx(loss / 10).epsilon(1e-12));
    REQUIRE(result.metric("accuracy") == Approx(correct / 10).epsilon(1e-12));
    REQUIRE_THROWS_WITH(result.metric("auc"),
                        Contains("no metric 'auc'") && Contains("accuracy") && Contains("test_evaluation.cpp"));

    // The same loss of probabilities.
    gt::Sequential64 probabilities({model.layer, gt::Activation64("softmax")});
    const gt::evaluation of_probabilities =
        gt::evaluate(probabilities, x, labels, {.batch_size = batch_size, .loss = "from_probabilities"});
    REQUIRE(of_probabilities.loss == Approx(loss / 10).epsilon(1e-10));
}

TEST_CASE("evaluate of targets gives Keras's mean squared and absolute errors", "[evaluation]")
{
    gt::set_seed(32);
    known_dense model(2);
    const Tensor64 x = random64({7, 2});
    const Tensor64 targets = random64({7, 3});
    double squares = 0;
    double absolutes = 0;
    for (std::size_t i = 0; i < 7; ++i) {
        for (std::size_t k = 0; k < 3; ++k) {
            const double error = model.logit(x.value(), i, k) - targets.value()(i, k);
            squares += error * error;
            absolutes += std::abs(error);
        }
    }
    const gt::evaluation result = gt::evaluate(model.layer, x, targets, {.batch_size = 3, .metrics = {"mae", "mse"}});
    REQUIRE(result.loss == Approx(squares / 21).epsilon(1e-12));
    REQUIRE(result.metric("mae") == Approx(absolutes / 21).epsilon(1e-12));
    REQUIRE(result.metric("mse") == Approx(squares / 21).epsilon(1e-12));
}

TEST_CASE("evaluate and predict run inference, recording nothing, even under a tape", "[evaluation]")
{
    gt::set_seed(33);
    gt::BatchNormalization64 norm;
    gt::Sequential64 model({gt::Dense64(3), gt::Dropout64(0.5), norm});
    const Tensor64 x = random64({9, 2});
    model.build(x.shape());
    const xt::xarray<double> moving_mean = norm.variables()[2].value();
    gt::GradientTape tape;
    const Tensor64 predicted = gt::predict(model, x, {.batch_size = 4});
    REQUIRE(tape.size() == 0);
    REQUIRE(predicted.shape() == gt::shape_type{9, 3});
    const auto pause = gt::stop_recording();
    REQUIRE(support::same(predicted, model(x, false)));
    const xt::xarray<std::int64_t> labels = xt::zeros<std::int64_t>({9});
    const double first = gt::evaluate(model, x, labels).loss;
    REQUIRE(gt::evaluate(model, x, labels).loss == first);
    REQUIRE(norm.variables()[2].value() == moving_mean);
}

TEST_CASE("evaluate and predict refuse what they cannot run before running anything", "[evaluation][errors]")
{
    gt::Dense64 layer(2);
    const Tensor64 x = random64({4, 3});
    const xt::xarray<std::int64_t> labels = {0, 1, 1, 0};
    REQUIRE_THROWS_WITH(gt::evaluate(layer, gt::zeros<double>({0, 3}), xt::xarray<std::int64_t>::from_shape({0})),
                        Contains("evaluate: has no examples"));
    REQUIRE_THROWS_WITH(gt::predict(layer, x, {.batch_size = 0}), Contains("predict: needs a batch size of 1"));
    REQUIRE_FALSE(layer.built());
    REQUIRE_THROWS_WITH(gt::evaluate(layer, x, xt::xarray<std::int64_t>{0, 1}),
                        Contains("a label per row of x (4, 3), got labels (2,)"));
    REQUIRE_THROWS_WITH(gt::evaluate(layer, x, labels, {.metrics = {"auc"}}), Contains("no metric of integer labels"));
    REQUIRE_THROWS_WITH(gt::evaluate(layer, x, labels, {.loss = "hinge"}), Contains("'hinge'"));
    REQUIRE_THROWS_WITH(gt::evaluate(layer, x, random64({4, 2}), {.metrics = {"accuracy"}}),
                        Contains("no metric of targets is named 'accuracy'"));
    REQUIRE_FALSE(layer.built());
}

TEST_CASE("ReduceLROnPlateau cuts the rate after patience values without improvement, as Keras", "[evaluation]")
{
    gt::ReduceLROnPlateau plateau(1.0, {.factor = 0.5, .patience = 2, .min_delta = 0.01, .cooldown = 1,
                                        .min_lr = 0.2});
    gt::SGD optimizer({.learning_rate = plateau.schedule()});
    gt::Variable64 w(gt::zeros<double>({1}), "w");
    // best 1.0 | 0.995 is within min_delta: wait 1 | wait 2: cut to 0.5, cooldown 1 | the cooldown ends,
    // wait 1 | wait 2: cut to 0.25 | wait 1 | wait 2: cut, to min_lr 0.2 | improvement: best 0.5 |
    // wait 1 | wait 2, at min_lr: no cut | wait 3.
    const std::vector<std::pair<double, double>> steps{
        {1.0, 1.0},   {0.995, 1.0}, {0.999, 0.5}, {0.999, 0.5}, {0.999, 0.25}, {0.999, 0.25},
        {0.999, 0.2}, {0.5, 0.2},   {0.6, 0.2},   {0.6, 0.2},   {0.6, 0.2},
    };
    for (std::size_t i = 0; i < steps.size(); ++i) {
        INFO("value " << i);
        (void)plateau.update(steps[i].first);
        REQUIRE(plateau.learning_rate() == steps[i].second);
        const double before = w.value()(0);
        optimizer.apply_gradients(std::vector<Tensor64>{gt::ones<double>({1})}, std::vector<gt::Variable64>{w});
        REQUIRE(w.value()(0) == Approx(before - steps[i].second));
    }
    REQUIRE_THROWS_WITH(plateau.update(std::nan("")), Contains("nan"));
    REQUIRE_THROWS_AS(gt::ReduceLROnPlateau(1.0, {.factor = 1.5}), gt::argument_error);
}

TEST_CASE("EarlyStopping stops after patience values without improvement and puts the best weights back",
          "[evaluation]")
{
    gt::Dense64 layer(1);
    layer.build({1, 1});
    auto kernel = layer.variables()[0];
    const auto epoch = [&](double weight, double value, gt::basic_early_stopping<double>& stopping) {
        kernel.assign(gt::fill<double>({1, 1}, weight));
        return stopping.update(value);
    };
    SECTION("min_delta and patience")
    {
        gt::basic_early_stopping<double> stopping(layer, {.min_delta = 0.01, .patience = 2,
                                                          .restore_best_weights = true});
        REQUIRE_FALSE(epoch(1, 1.0, stopping));
        REQUIRE_FALSE(epoch(2, 0.8, stopping));
        REQUIRE_FALSE(epoch(3, 0.795, stopping));  // within min_delta of 0.8: not an improvement
        REQUIRE(epoch(4, 0.79, stopping));
        REQUIRE(stopping.stopped());
        REQUIRE(stopping.best() == 0.8);
        REQUIRE(stopping.best_epoch() == 1);
        REQUIRE(kernel.value()(0, 0) == 2);
    }
    SECTION("a baseline keeps counting until it is beaten")
    {
        const std::vector<double> values{0.9, 0.8, 0.7, 0.75};
        gt::basic_early_stopping<double> plain(layer, {.patience = 2});
        gt::basic_early_stopping<double> with_baseline(layer, {.patience = 2, .baseline = 0.5});
        std::vector<bool> stops;
        for (double value : values) {
            REQUIRE_FALSE(plain.update(value));
            stops.push_back(with_baseline.update(value));
        }
        REQUIRE(stops == std::vector<bool>{false, false, false, true});
    }
    SECTION("a mode of max, and patience 0")
    {
        gt::basic_early_stopping<double> stopping(layer, {.mode = gt::monitor_mode::max});
        REQUIRE_FALSE(epoch(1, 0.5, stopping));
        REQUIRE_FALSE(epoch(2, 0.6, stopping));
        REQUIRE(epoch(3, 0.6, stopping));
        REQUIRE(kernel.value()(0, 0) == 3);
    }
}
