// SGD: one step against the update of torch.optim.SGD computed by hand.
#include <cmath>
#include <limits>
#include <memory>

#include "support.hpp"

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

TEST_CASE("every optimizer works through the common interface, in float too", "[optim]")
{
    gt::Variable w(gt::fill<float>({3}, 2.f), "w");
    std::vector<std::unique_ptr<gt::optimizer>> optimizers;
    optimizers.push_back(std::make_unique<gt::SGD>(0.1));
    optimizers.push_back(std::make_unique<gt::Adam>(0.1));
    optimizers.push_back(std::make_unique<gt::AdamW>());
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
