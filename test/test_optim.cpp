// The optimizers: their updates against torch.optim's rules written out by hand.
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "support.hpp"

#include <xtensor/xadapt.hpp>

namespace gt = gradtape;
using gt::Tensor64;
using Catch::Matchers::Contains;
using support::make64;

TEST_CASE("plain SGD steps against the gradient", "[optim]")
{
    gt::Variable64 w((make64({1.0, -2.0})), "w");
    gt::SGD optimizer(0.1);
    optimizer.apply_gradients<double>({make64({0.5, 4.0})}, {w});
    REQUIRE(w.value()(0) == Approx(1.0 - 0.1 * 0.5));
    REQUIRE(w.value()(1) == Approx(-2.0 - 0.1 * 4.0));
    REQUIRE(optimizer.iterations() == 1);
}

TEMPLATE_TEST_CASE("plain SGD rounds the step, then the difference, on every kernel path", "[optim][kernels]", float,
                   double)
{
    // A fused multiply-add would round once, and differ in the last bit for
    // some of these values; the meson tests kernels_sse2, _avx2 and _avx512
    // run this case on each path. Lengths cover every vector remainder.
    using T = TestType;
    for (std::size_t n : {1, 7, 16, 33, 1027}) {
        xt::xarray<T> start = xt::xarray<T>::from_shape({n});
        xt::xarray<T> gradient = xt::xarray<T>::from_shape({n});
        for (std::size_t i = 0; i < n; ++i) {
            start(i) = T(1) / T(3 + i % 7) + T(i);
            gradient(i) = T(0.7) * T(i + 1) / T(11);
        }
        gt::basic_variable<T> w(gt::basic_tensor<T>(start), "w");
        const T rate = T(0.013);
        gt::SGD(rate).apply_gradients<T>({gt::basic_tensor<T>(gradient)}, {w});
        for (std::size_t i = 0; i < n; ++i) {
            volatile T step = rate * gradient(i);
            REQUIRE(w.value()(i) == start(i) - step);
        }
    }
}

TEST_CASE("SGD with momentum, Nesterov and weight decay follows torch.optim.SGD", "[optim]")
{
    const double lr = 0.1, momentum = 0.9, decay = 0.01;
    const double w0 = 2.0, g1 = 0.5, g2 = -1.0;
    SECTION("momentum")
    {
        gt::Variable64 w(Tensor64(w0), "w");
        gt::SGD optimizer({.learning_rate = lr, .momentum = momentum});
        optimizer.apply_gradients<double>({Tensor64(g1)}, {w});
        const double buffer1 = g1;
        const double w1 = w0 - lr * buffer1;
        REQUIRE(w.item() == Approx(w1));
        optimizer.apply_gradients<double>({Tensor64(g2)}, {w});
        const double buffer2 = momentum * buffer1 + g2;
        REQUIRE(w.item() == Approx(w1 - lr * buffer2));
    }
    SECTION("dampening")
    {
        gt::Variable64 w(Tensor64(w0), "w");
        gt::SGD optimizer({.learning_rate = lr, .momentum = momentum, .dampening = 0.3});
        optimizer.apply_gradients<double>({Tensor64(g1)}, {w});
        optimizer.apply_gradients<double>({Tensor64(g2)}, {w});
        const double buffer2 = momentum * g1 + (1 - 0.3) * g2;
        REQUIRE(w.item() == Approx(w0 - lr * g1 - lr * buffer2));
    }
    SECTION("nesterov")
    {
        gt::Variable64 w(Tensor64(w0), "w");
        gt::SGD optimizer({.learning_rate = lr, .momentum = momentum, .nesterov = true});
        optimizer.apply_gradients<double>({Tensor64(g1)}, {w});
        const double buffer1 = g1;
        const double w1 = w0 - lr * (g1 + momentum * buffer1);
        REQUIRE(w.item() == Approx(w1));
        optimizer.apply_gradients<double>({Tensor64(g2)}, {w});
        const double buffer2 = momentum * buffer1 + g2;
        REQUIRE(w.item() == Approx(w1 - lr * (g2 + momentum * buffer2)));
    }
    SECTION("weight decay, with and without momentum")
    {
        gt::Variable64 plain(Tensor64(w0), "plain");
        gt::SGD decayed({.learning_rate = lr, .weight_decay = decay});
        decayed.apply_gradients<double>({Tensor64(g1)}, {plain});
        REQUIRE(plain.item() == Approx(w0 - lr * (g1 + decay * w0)));

        gt::Variable64 w(Tensor64(w0), "w");
        gt::SGD optimizer({.learning_rate = lr, .momentum = momentum, .weight_decay = decay});
        optimizer.apply_gradients<double>({Tensor64(g1)}, {w});
        const double buffer1 = g1 + decay * w0;
        const double w1 = w0 - lr * buffer1;
        optimizer.apply_gradients<double>({Tensor64(g2)}, {w});
        const double buffer2 = momentum * buffer1 + (g2 + decay * w1);
        REQUIRE(w.item() == Approx(w1 - lr * buffer2));
    }
}

TEST_CASE("minimize computes the loss's gradient under its own tape and applies it", "[optim]")
{
    gt::Variable64 w((make64({1.0, 2.0})), "w");
    gt::SGD optimizer(0.25);
    const Tensor64 loss = optimizer.minimize([&] { return gt::reduce_sum(gt::square(w)); }, {w});
    REQUIRE(loss.item() == Approx(5.0));
    REQUIRE(w.value()(0) == Approx(1.0 - 0.25 * 2.0));
    REQUIRE(w.value()(1) == Approx(2.0 - 0.25 * 4.0));
}

TEST_CASE("bad updates are refused and change no variable", "[optim][errors]")
{
    gt::Variable64 a((make64({1.0, 2.0})), "a");
    gt::Variable64 b(Tensor64(3.0), "b");
    gt::Variable64 frozen(Tensor64(4.0), "frozen", false);
    gt::SGD optimizer({.learning_rate = 0.1, .momentum = 0.9});
    const Tensor64 ga = make64({1.0, 1.0});
    const Tensor64 gb = 1.0;

    REQUIRE_THROWS_WITH(optimizer.apply_gradients<double>({ga}, {a, b}),
                        Contains("apply_gradients") && Contains("1 gradients for 2 variables"));
    REQUIRE_THROWS_WITH(optimizer.apply_gradients<double>({ga, gb, gb}, {a, b, frozen}),
                        Contains("'frozen'") && Contains("not trainable"));
    REQUIRE_THROWS_WITH(optimizer.apply_gradients<double>({ga, ga}, {a, b}),
                        Contains("'b'") && Contains("()") && Contains("(2,)"));
    REQUIRE(a.value() == make64({1.0, 2.0}).value());
    REQUIRE(b.item() == 3.0);
    REQUIRE(frozen.item() == 4.0);
    REQUIRE(optimizer.iterations() == 0);

    REQUIRE_THROWS_AS(gt::SGD({.learning_rate = 0.1, .nesterov = true}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::SGD(-1.0), gt::argument_error);
}

namespace {

// Two steps of torch.optim.Adam / AdamW on one scalar, written out.
double adam_by_hand(double w, const std::vector<double>& gradients, double lr, double decay, bool decoupled,
                    bool amsgrad)
{
    const double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
    double m = 0, v = 0, v_max = 0;
    for (std::size_t t = 1; t <= gradients.size(); ++t) {
        double g = gradients[t - 1];
        if (decoupled) {
            w *= 1 - lr * decay;
        } else {
            g += decay * w;
        }
        m = beta1 * m + (1 - beta1) * g;
        v = beta2 * v + (1 - beta2) * g * g;
        v_max = std::max(v_max, v);
        const double second = amsgrad ? v_max : v;
        const double m_hat = m / (1 - std::pow(beta1, double(t)));
        w -= lr * m_hat / (std::sqrt(second) / std::sqrt(1 - std::pow(beta2, double(t))) + epsilon);
    }
    return w;
}

}  // namespace

TEST_CASE("Adam and AdamW follow torch.optim's update rules", "[optim]")
{
    const std::vector<double> gradients = {0.5, -2.0, 0.1};
    const bool amsgrad = GENERATE(false, true);
    CAPTURE(amsgrad);
    SECTION("Adam with L2 weight decay")
    {
        gt::Variable64 w(Tensor64(1.5), "w");
        gt::Adam optimizer({.learning_rate = 0.1, .weight_decay = 0.05, .amsgrad = amsgrad});
        for (double g : gradients) {
            optimizer.apply_gradients<double>({Tensor64(g)}, {w});
        }
        REQUIRE(w.item() == Approx(adam_by_hand(1.5, gradients, 0.1, 0.05, false, amsgrad)).epsilon(1e-12));
    }
    SECTION("AdamW with decoupled weight decay")
    {
        gt::Variable64 w(Tensor64(1.5), "w");
        gt::AdamW optimizer({.learning_rate = 0.1, .weight_decay = 0.05, .amsgrad = amsgrad});
        for (double g : gradients) {
            optimizer.apply_gradients<double>({Tensor64(g)}, {w});
        }
        REQUIRE(w.item() == Approx(adam_by_hand(1.5, gradients, 0.1, 0.05, true, amsgrad)).epsilon(1e-12));
    }
}

namespace {

// Steps of torch.optim.RMSprop on a vector, written out from its definition.
std::vector<double> rmsprop_by_hand(std::vector<double> w, const std::vector<std::vector<double>>& gradients,
                                    const gt::rmsprop_options& o)
{
    const double lr = o.learning_rate(0);
    std::vector<double> square_avg(w.size()), buffer(w.size()), grad_avg(w.size());
    for (const auto& step : gradients) {
        for (std::size_t i = 0; i < w.size(); ++i) {
            const double g = step[i] + o.weight_decay * w[i];
            square_avg[i] = o.alpha * square_avg[i] + (1 - o.alpha) * g * g;
            double variance = square_avg[i];
            if (o.centered) {
                grad_avg[i] = o.alpha * grad_avg[i] + (1 - o.alpha) * g;
                variance -= grad_avg[i] * grad_avg[i];
            }
            const double denominator = std::sqrt(variance) + o.epsilon;
            if (o.momentum > 0) {
                buffer[i] = o.momentum * buffer[i] + g / denominator;
                w[i] -= lr * buffer[i];
            } else {
                w[i] -= lr * g / denominator;
            }
        }
    }
    return w;
}

// Steps of torch.optim.Adagrad on a vector, written out from its definition.
std::vector<double> adagrad_by_hand(std::vector<double> w, const std::vector<std::vector<double>>& gradients,
                                    const gt::adagrad_options& o)
{
    std::vector<double> sum(w.size(), o.initial_accumulator_value);
    for (std::size_t t = 1; t <= gradients.size(); ++t) {
        const double lr = o.learning_rate(t - 1) / (1 + double(t - 1) * o.lr_decay);
        for (std::size_t i = 0; i < w.size(); ++i) {
            const double g = gradients[t - 1][i] + o.weight_decay * w[i];
            sum[i] += g * g;
            w[i] -= lr * g / (std::sqrt(sum[i]) + o.epsilon);
        }
    }
    return w;
}

template <class Optimizer>
std::vector<double> after_steps(Optimizer& optimizer, const std::vector<double>& start,
                                const std::vector<std::vector<double>>& gradients)
{
    gt::Variable64 w(Tensor64(xt::adapt(start, {start.size()})), "w");
    for (const auto& g : gradients) {
        optimizer.template apply_gradients<double>({Tensor64(xt::adapt(g, {g.size()}))}, {w});
    }
    return {w.value().begin(), w.value().end()};
}

void require_near(const std::vector<double>& actual, const std::vector<double>& expected)
{
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        REQUIRE_THAT(actual[i], Catch::Matchers::WithinRel(expected[i], 1e-12));
    }
}

}  // namespace

TEST_CASE("RMSprop and Adagrad follow torch.optim's update rules", "[optim]")
{
    const std::vector<double> start{1.5, -0.5, 0.25};
    const std::vector<std::vector<double>> gradients{{0.5, -2.0, 0.1}, {-0.3, 1.0, 0.4}, {0.2, 0.2, -1.5}};
    SECTION("RMSprop, plain and with each option")
    {
        for (const gt::rmsprop_options& options :
             {gt::rmsprop_options{.learning_rate = 0.05}, gt::rmsprop_options{.learning_rate = 0.05, .weight_decay = 0.1},
              gt::rmsprop_options{.learning_rate = 0.05, .momentum = 0.9},
              gt::rmsprop_options{.learning_rate = 0.05, .centered = true},
              gt::rmsprop_options{.learning_rate = 0.05, .alpha = 0.9, .weight_decay = 0.1, .momentum = 0.5,
                                  .centered = true}}) {
            INFO("alpha " << options.alpha << " weight_decay " << options.weight_decay << " momentum "
                          << options.momentum << " centered " << options.centered);
            gt::RMSprop optimizer(options);
            require_near(after_steps(optimizer, start, gradients), rmsprop_by_hand(start, gradients, options));
        }
    }
    SECTION("Adagrad, plain and with each option")
    {
        for (const gt::adagrad_options& options :
             {gt::adagrad_options{.learning_rate = 0.1}, gt::adagrad_options{.learning_rate = 0.1, .lr_decay = 0.5},
              gt::adagrad_options{.learning_rate = 0.1, .weight_decay = 0.2},
              gt::adagrad_options{.learning_rate = 0.1, .initial_accumulator_value = 0.7},
              gt::adagrad_options{.learning_rate = gt::exponential_decay(0.1, 2, 0.5), .lr_decay = 0.3,
                                  .weight_decay = 0.2, .initial_accumulator_value = 0.1}}) {
            INFO("lr_decay " << options.lr_decay << " weight_decay " << options.weight_decay << " initial "
                             << options.initial_accumulator_value);
            gt::Adagrad optimizer(options);
            require_near(after_steps(optimizer, start, gradients), adagrad_by_hand(start, gradients, options));
        }
    }
    SECTION("their slots, and a resumed optimizer that goes on as the first")
    {
        gt::Variable64 w(Tensor64(xt::adapt(start, {3})), "w");
        gt::RMSprop rmsprop({.learning_rate = 0.05, .momentum = 0.9, .centered = true});
        gt::Adagrad adagrad({.learning_rate = 0.1, .lr_decay = 0.5});
        for (gt::optimizer* optimizer : std::initializer_list<gt::optimizer*>{&rmsprop, &adagrad}) {
            optimizer->apply_gradients<double>({Tensor64(xt::adapt(gradients[0], {3}))}, {w});
        }
        std::vector<std::string> names;
        for (const auto& [name, values] : rmsprop.slots(w)) {
            names.push_back(name);
        }
        for (const auto& [name, values] : adagrad.slots(w)) {
            names.push_back(name);
        }
        REQUIRE(names == std::vector<std::string>{"grad_avg", "momentum_buffer", "square_avg", "steps", "sum"});
        REQUIRE(adagrad.slots(w).at("steps")() == 1);
        gt::Adagrad resumed({.learning_rate = 0.1, .lr_decay = 0.5});
        gt::Variable64 copy(gt::Tensor64(w.value()), "copy");
        resumed.set_slots(copy, adagrad.slots(w));
        adagrad.apply_gradients<double>({Tensor64(xt::adapt(gradients[1], {3}))}, {w});
        resumed.apply_gradients<double>({Tensor64(xt::adapt(gradients[1], {3}))}, {copy});
        REQUIRE(copy.value() == w.value());
        REQUIRE_THROWS_WITH(resumed.set_slots(copy, {{"sum", xt::xarray<double>{-1, 0, 0}}, {"steps", 1.0}}),
                            Contains("slot 'sum' of variable 'copy' holds -1"));
    }
    REQUIRE_THROWS_AS(gt::RMSprop({.alpha = 1.5}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::Adagrad({.lr_decay = -1}), gt::argument_error);
}

TEST_CASE("every optimizer works through the common interface, in float too", "[optim]")
{
    gt::Variable w(gt::fill<float>({3}, 2.f), "w");
    std::vector<std::unique_ptr<gt::optimizer>> optimizers;
    optimizers.push_back(std::make_unique<gt::SGD>(0.1));
    optimizers.push_back(std::make_unique<gt::Adam>(0.1));
    optimizers.push_back(std::make_unique<gt::AdamW>());
    optimizers.push_back(std::make_unique<gt::RMSprop>(0.1));
    optimizers.push_back(std::make_unique<gt::Adagrad>(0.1));
    for (auto& optimizer : optimizers) {
        const float before = w.value()(0);
        const gt::Tensor loss = optimizer->minimize([&] { return gt::reduce_sum(gt::square(w)); }, {w});
        REQUIRE(w.value()(0) < before);
        REQUIRE(optimizer->iterations() == 1);
        (void)loss;
    }
}

TEST_CASE("learning-rate schedules give the rates their definitions give", "[optim][schedule]")
{
    const auto step = gt::step_decay(0.1, 10, 0.5);
    REQUIRE(step(0) == Approx(0.1));
    REQUIRE(step(9) == Approx(0.1));
    REQUIRE(step(10) == Approx(0.05));
    REQUIRE(step(25) == Approx(0.025));
    const auto exponential = gt::exponential_decay(0.1, 100, 0.5);
    REQUIRE(exponential(50) == Approx(0.1 * std::sqrt(0.5)));
    const auto cosine = gt::cosine_decay(0.1, 100, 0.1);
    REQUIRE(cosine(0) == Approx(0.1));
    REQUIRE(cosine(50) == Approx(0.1 * (0.9 * 0.5 + 0.1)));
    REQUIRE(cosine(100) == Approx(0.01));
    REQUIRE(cosine(500) == Approx(0.01));
    const auto warm = gt::warmup(0.2, 4);
    REQUIRE(warm(0) == Approx(0.05));
    REQUIRE(warm(3) == Approx(0.2));
    REQUIRE(warm(10) == Approx(0.2));
    REQUIRE_THROWS_AS(gt::step_decay(0.1, 0, 0.5), gt::argument_error);
}

TEST_CASE("an optimizer reads its schedule at each update", "[optim][schedule]")
{
    gt::Variable64 w(Tensor64(0.0), "w");
    gt::SGD optimizer({.learning_rate = gt::step_decay(1.0, 1, 0.5)});
    for (int i = 0; i < 3; ++i) {
        REQUIRE(optimizer.learning_rate() == Approx(std::pow(0.5, i)));
        optimizer.apply_gradients<double>({Tensor64(-1.0)}, {w});
    }
    REQUIRE(w.item() == Approx(1.0 + 0.5 + 0.25));
}

TEST_CASE("clip_by_global_norm scales all gradients by one factor", "[optim]")
{
    const std::vector<Tensor64> gradients = {make64({3, 0}), make64({4})};
    const auto [clipped, norm] = gt::clip_by_global_norm(gradients, 1.0);
    REQUIRE(norm.item() == Approx(5.0));
    REQUIRE(clipped[0].value()(0) == Approx(0.6));
    REQUIRE(clipped[1].value()(0) == Approx(0.8));
    const auto [unchanged, same_norm] = gt::clip_by_global_norm(gradients, 10.0);
    REQUIRE(unchanged[0].value()(0) == Approx(3.0));
    REQUIRE(same_norm.item() == Approx(5.0));
    REQUIRE_THROWS_AS(gt::clip_by_global_norm(gradients, 0.0), gt::argument_error);
}

TEST_CASE("clip_by_global_norm with a non-finite norm makes every gradient NaN, as TensorFlow", "[optim]")
{
    const double nan = std::nan("");
    const double inf = std::numeric_limits<double>::infinity();
    for (const double bad : {nan, inf}) {
        CAPTURE(bad);
        const auto [clipped, norm] = gt::clip_by_global_norm<double>({Tensor64(bad), Tensor64(3.0)}, 1.0);
        REQUIRE_FALSE(std::isfinite(norm.item()));
        REQUIRE(std::isnan(clipped[0].item()));
        REQUIRE(std::isnan(clipped[1].item()));
    }
}

TEST_CASE("a batch_size near SIZE_MAX gives one batch of every row", "[data]")
{
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(5);
    gt::minibatches<double> batches({Tensor64(xt::xarray<double>(xt::arange<double>(5.0)))}, {labels},
                                    {.batch_size = std::numeric_limits<std::size_t>::max()});
    REQUIRE(batches.size() == 1);
    std::size_t rows = 0;
    for (const auto& batch : batches) {
        rows += batch.rows.size();
    }
    REQUIRE(rows == 5);
}

TEST_CASE("a schedule that turns NaN at a later step is refused at that step, changing nothing", "[optim][schedule]")
{
    gt::Variable64 w(make64({1, 2}), "w");
    gt::SGD optimizer({.learning_rate = gt::learning_rate_schedule([](std::uint64_t step) {
                           return step < 2 ? 0.1 : std::nan("");
                       })});
    optimizer.apply_gradients<double>({make64({1, 1})}, {w});
    optimizer.apply_gradients<double>({make64({1, 1})}, {w});
    const xt::xarray<double> before = w.value();
    REQUIRE_THROWS_WITH(optimizer.apply_gradients<double>({make64({1, 1})}, {w}),
                        Contains("apply_gradients") && Contains("learning rate at step 2"));
    REQUIRE(w.value() == before);
    REQUIRE(optimizer.iterations() == 2);
}
