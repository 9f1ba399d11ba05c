// What a GradientTape records, watches and answers.
#include <cmath>
#include <memory>
#include <thread>

#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;
using gt::Tensor64;
using Catch::Matchers::Contains;

TEST_CASE("a watched tensor gets the gradient of what was computed from it", "[tape]")
{
    const Tensor64 x = 3.0;
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = x * x * x;
    REQUIRE(tape.gradient(y, x).item() == 27.0);
}

TEST_CASE("an unwatched tensor is a constant and is refused as a source", "[tape]")
{
    const Tensor64 x = 3.0;
    gt::GradientTape tape;
    const Tensor64 y = x * x;
    REQUIRE(tape.size() == 0);
    REQUIRE_THROWS_WITH(tape.gradient(y, x), Contains("gradient") && Contains("not watched"));
}

TEST_CASE("a non-persistent tape answers once, a persistent one many times", "[tape]")
{
    const Tensor64 x = 2.0;
    SECTION("non-persistent")
    {
        gt::GradientTape tape;
        tape.watch(x);
        const Tensor64 y = gt::square(x);
        REQUIRE(tape.gradient(y, x).item() == 4.0);
        REQUIRE(tape.size() == 0);
        REQUIRE_THROWS_AS(tape.gradient(y, x), gt::tape_error);
        REQUIRE_THROWS_WITH(tape.gradient(y, x), Contains("persistent"));
    }
    SECTION("persistent")
    {
        gt::GradientTape tape({.persistent = true});
        tape.watch(x);
        const Tensor64 y = gt::square(x);
        const Tensor64 z = gt::exp(x);
        REQUIRE(tape.gradient(y, x).item() == 4.0);
        REQUIRE(tape.gradient(z, x).item() == Approx(std::exp(2.0)));
        REQUIRE(tape.gradient(y, x).item() == 4.0);
        REQUIRE(tape.size() == 2);
        tape.reset();
        REQUIRE(tape.size() == 0);
    }
}

TEST_CASE("trainable variables are watched when read, unless watch_accessed_variables is off", "[tape][variable]")
{
    gt::Variable64 w(Tensor64(2.0), "w");
    gt::Variable64 frozen(Tensor64(5.0), "frozen", false);
    SECTION("watched automatically")
    {
        gt::GradientTape tape;
        const Tensor64 y = w * frozen;
        REQUIRE(tape.gradient(y, w).item() == 5.0);
    }
    SECTION("a non-trainable variable is not watched automatically")
    {
        gt::GradientTape tape;
        const Tensor64 y = w * frozen;
        REQUIRE_THROWS_WITH(tape.gradient(y, frozen), Contains("'frozen'") && Contains("not trainable") &&
                                                           Contains("tape.watch()"));
    }
    SECTION("watch_accessed_variables = false watches only what watch() names")
    {
        gt::GradientTape tape({.watch_accessed_variables = false});
        const Tensor64 y = w * w;
        REQUIRE(tape.size() == 0);
        REQUIRE_THROWS_AS(tape.gradient(y, w), gt::tape_error);
    }
    SECTION("an explicitly watched non-trainable variable gets its gradient")
    {
        gt::GradientTape tape({.watch_accessed_variables = false});
        tape.watch(frozen);
        const Tensor64 y = w * frozen;
        REQUIRE(tape.gradient(y, frozen).item() == 2.0);
    }
}

TEST_CASE("a source the target does not depend on gets an undefined tensor, or zeros when asked", "[tape]")
{
    gt::Variable64 used(support::random64({2}), "used");
    gt::Variable64 unused(support::random64({3, 2}), "unused");
    gt::GradientTape tape({.persistent = true});
    const Tensor64 loss = gt::reduce_sum(used * used);

    const auto by_default = tape.gradient(loss, {used, unused});
    REQUIRE(by_default.size() == 2);
    REQUIRE(xt::allclose(by_default[0].value(), 2.0 * used.value()));
    REQUIRE_FALSE(by_default[1].defined());

    const auto as_zeros = tape.gradient(loss, {used, unused}, {}, gt::unconnected_gradients::zero);
    REQUIRE(as_zeros[1].shape() == gt::shape_type{3, 2});
    REQUIRE(xt::all(xt::equal(as_zeros[1].value(), 0.0)));
    REQUIRE(xt::allclose(as_zeros[0].value(), 2.0 * used.value()));
}

TEST_CASE("a loop that would train nothing fails and names why", "[tape][errors]")
{
    gt::Variable64 w(Tensor64(2.0), "w");
    gt::Variable64 b(Tensor64(1.0), "b");
    gt::SGD optimizer(0.1);
    SECTION("a loss computed before the tape existed")
    {
        const Tensor64 loss = gt::square(w);
        const int line = __LINE__ - 1;
        gt::GradientTape tape;
        REQUIRE_THROWS_WITH(tape.gradient(loss, w), Contains("gradient") && Contains("not recorded by this tape") &&
                                                        Contains("test_tape.cpp:" + std::to_string(line)));
    }
    SECTION("a loss computed from nothing the tape watches")
    {
        gt::GradientTape tape;
        tape.watch(Tensor64(3.0));
        const Tensor64 loss = gt::square(Tensor64(4.0));
        REQUIRE_THROWS_AS(tape.gradient(loss, w), gt::tape_error);
    }
    SECTION("a variable the loss does not use, given to the optimizer")
    {
        gt::GradientTape tape;
        const Tensor64 loss = gt::square(w);
        const auto gradients = tape.gradient(loss, {w, b});
        REQUIRE_THROWS_WITH(optimizer.apply_gradients(gradients, {w, b}),
                            Contains("apply_gradients") && Contains("'b'") && Contains("no gradient"));
        REQUIRE(w.item() == 2.0);
        REQUIRE(optimizer.iterations() == 0);
    }
    SECTION("minimize over a variable that is not trainable")
    {
        gt::Variable64 frozen(Tensor64(1.0), "frozen", false);
        REQUIRE_THROWS_WITH(optimizer.minimize([&] { return gt::square(w) * frozen; }, {w, frozen}),
                            Contains("'frozen'") && Contains("not trainable"));
        REQUIRE(w.item() == 2.0);
    }
    SECTION("minimize over a variable the loss does not use")
    {
        REQUIRE_THROWS_WITH(optimizer.minimize([&] { return gt::square(w); }, {w, b}),
                            Contains("'b'") && Contains("no gradient"));
        REQUIRE(w.item() == 2.0);
    }
}

TEST_CASE("gradients are summed over every use of a tensor", "[tape]")
{
    gt::Variable64 w(Tensor64(3.0), "w");
    gt::GradientTape tape;
    const Tensor64 y = w * 2.0 + gt::square(w) + w;
    REQUIRE(tape.gradient(y, w).item() == 2.0 + 6.0 + 1.0);
}

TEST_CASE("output_gradient seeds the backward pass of a non-scalar target", "[tape]")
{
    const Tensor64 x = support::random64({2, 3});
    const Tensor64 seed = support::random64({2, 3});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = gt::square(x);
    const Tensor64 gradient = tape.gradient(y, x, seed);
    REQUIRE(xt::allclose(gradient.value(), 2.0 * x.value() * seed.value()));
}

TEST_CASE("a non-scalar target without output_gradient is refused", "[tape]")
{
    const Tensor64 x = support::random64({2, 3});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = gt::square(x);
    REQUIRE_THROWS_AS(tape.gradient(y, x), gt::argument_error);
    REQUIRE_THROWS_WITH(tape.gradient(y, x), Contains("(2, 3)") && Contains("output_gradient"));
}

TEST_CASE("a gradient with respect to an intermediate tensor", "[tape]")
{
    const Tensor64 x = 2.0;
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 h = gt::square(x);
    const Tensor64 y = gt::exp(h);
    const auto gradients = tape.gradient(y, {h, x});
    REQUIRE(gradients[0].item() == Approx(std::exp(4.0)));
    REQUIRE(gradients[1].item() == Approx(std::exp(4.0) * 4.0));
}

TEST_CASE("stop_recording and stop_gradient cut exactly what they should", "[tape]")
{
    const Tensor64 x = 3.0;
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    SECTION("stop_gradient")
    {
        const Tensor64 y = x * gt::stop_gradient(x);
        REQUIRE(tape.gradient(y, x).item() == 3.0);
    }
    SECTION("stop_recording")
    {
        Tensor64 unrecorded;
        {
            const auto pause = gt::stop_recording();
            unrecorded = x * x;
        }
        const Tensor64 y = x * unrecorded;
        REQUIRE(tape.size() == 1);
        REQUIRE(tape.gradient(y, x).item() == 9.0);
    }
}

TEST_CASE("nested tapes: the outer tape records the inner gradient", "[tape][higher-order]")
{
    const Tensor64 x = 1.5;
    gt::GradientTape outer;
    outer.watch(x);
    Tensor64 first;
    {
        gt::GradientTape inner;
        inner.watch(x);
        first = inner.gradient(x * x * x, x);
    }
    REQUIRE(first.item() == Approx(3 * 1.5 * 1.5));
    REQUIRE(outer.gradient(first, x).item() == Approx(6 * 1.5));
}

TEST_CASE("an assign after recording does not change a gradient the tape still needs", "[tape][variable]")
{
    gt::Variable64 w(Tensor64(3.0), "w");
    gt::GradientTape tape;
    const Tensor64 y = w * w * w;
    w.assign(Tensor64(10.0));
    REQUIRE(tape.gradient(y, w).item() == 27.0);
}

namespace {

// Fits w in y = w x by gradient descent; returns the trajectory of w.
std::vector<double> train(double x, double y, int steps)
{
    gt::Variable64 w(Tensor64(0.0), "w");
    gt::SGD optimizer(0.05);
    std::vector<double> trajectory;
    for (int step = 0; step < steps; ++step) {
        optimizer.minimize([&] { return gt::square(w * x - y); }, {w});
        trajectory.push_back(w.item());
    }
    return trajectory;
}

}  // namespace

TEST_CASE("ops run on another thread are not recorded on this thread's tapes", "[tape][threads]")
{
    const auto alone_a = train(1.0, 2.0, 200);
    const auto alone_b = train(2.0, -1.0, 200);

    gt::GradientTape tape;
    gt::Variable64 shared(Tensor64(1.0), "shared");
    std::vector<double> together_a, together_b;
    std::thread first([&] {
        together_a = train(1.0, 2.0, 200);
        const Tensor64 read_elsewhere = shared * 2.0;
        (void)read_elsewhere;
    });
    std::thread second([&] { together_b = train(2.0, -1.0, 200); });
    first.join();
    second.join();

    REQUIRE(tape.size() == 0);
    REQUIRE(together_a == alone_a);
    REQUIRE(together_b == alone_b);
    REQUIRE(alone_a.back() == Approx(2.0));
}

TEST_CASE("a tape destroyed on another thread stops recording, without harm", "[tape][threads]")
{
    const Tensor64 x = 2.0;
    auto tape = std::make_unique<gt::GradientTape>();
    tape->watch(x);
    std::thread([&] { tape.reset(); }).join();
    gt::GradientTape fresh;
    fresh.watch(x);
    const Tensor64 y = x * x;
    REQUIRE(fresh.size() == 1);
    REQUIRE(fresh.gradient(y, x).item() == 4.0);
}

TEST_CASE("a tape refuses to be used from another thread", "[tape][threads]")
{
    const Tensor64 x = 1.0;
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = x * x;
    std::string message;
    std::thread other([&] {
        try {
            (void)tape.gradient(y, x);
        } catch (const gt::tape_error& e) {
            message = e.what();
        }
    });
    other.join();
    REQUIRE_THAT(message, Contains("thread"));
    REQUIRE(tape.gradient(y, x).item() == 2.0);
}

TEST_CASE("the jacobian of a known function equals its closed form", "[tape][jacobian]")
{
    // f(x) = [x0 * x1, sin(x2), x0^2] has d f / d x = [[x1, x0, 0], [0, 0, cos x2], [2 x0, 0, 0]].
    const Tensor64 x = support::make64({0.5, -1.5, 2.0});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = gt::reshape(gt::stack<double>({gt::slice(x, {0}, {1}) * gt::slice(x, {1}, {1}),
                                                     gt::sin(gt::slice(x, {2}, {1})),
                                                     gt::square(gt::slice(x, {0}, {1}))}),
                                   {3});
    const Tensor64 jacobian = tape.jacobian(y, x);
    REQUIRE(jacobian.shape() == gt::shape_type{3, 3});
    const xt::xarray<double> expected = {-1.5, 0.5, 0, 0, 0, std::cos(2.0), 1.0, 0, 0};
    REQUIRE(xt::allclose(xt::flatten(jacobian.value()), expected));
}

TEST_CASE("jacobian shapes follow the target and the source", "[tape][jacobian]")
{
    const Tensor64 w = support::random64({2, 3});
    const Tensor64 x = support::random64({3});
    gt::GradientTape tape({.persistent = true});
    tape.watch(w);
    const Tensor64 y = gt::matmul(w, x);
    const Tensor64 by_w = tape.jacobian(y, w);
    REQUIRE(by_w.shape() == gt::shape_type{2, 2, 3});
    for (std::size_t i = 0; i < 2; ++i) {
        for (std::size_t j = 0; j < 2; ++j) {
            for (std::size_t k = 0; k < 3; ++k) {
                REQUIRE(by_w.value()(i, j, k) == (i == j ? x.value()(k) : 0.0));
            }
        }
    }
}

TEST_CASE("batch_jacobian gives one jacobian per example", "[tape][jacobian]")
{
    const Tensor64 x = support::random64({4, 3});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = gt::tanh(x) * 2.0;
    const Tensor64 jacobian = tape.batch_jacobian(y, x);
    REQUIRE(jacobian.shape() == gt::shape_type{4, 3, 3});
    for (std::size_t b = 0; b < 4; ++b) {
        for (std::size_t i = 0; i < 3; ++i) {
            for (std::size_t j = 0; j < 3; ++j) {
                const double t = std::tanh(x.value()(b, i));
                REQUIRE(jacobian.value()(b, i, j) == Approx(i == j ? 2 * (1 - t * t) : 0.0));
            }
        }
    }
    REQUIRE_THROWS_AS(tape.gradient(gt::reduce_sum(y), x), gt::tape_error);
}

TEST_CASE("the Hessian-vector product of an MLP loss equals a finite difference of gradients",
          "[tape][higher-order]")
{
    gt::set_seed(11);
    const Tensor64 inputs = support::random64({5, 3});
    const Tensor64 targets = support::random64({5, 2});
    const Tensor64 w1 = support::random64({3, 4});
    const Tensor64 w2 = support::random64({4, 2});
    const Tensor64 v1 = support::random64({3, 4});
    const Tensor64 v2 = support::random64({4, 2});
    const auto loss_of = [&](const Tensor64& a, const Tensor64& b) {
        return gt::reduce_mean(gt::square(gt::matmul(gt::tanh(gt::matmul(inputs, a)), b) - targets));
    };
    const auto gradient_at = [&](const Tensor64& a, const Tensor64& b) {
        gt::GradientTape tape;
        tape.watch(a);
        tape.watch(b);
        return tape.gradient(loss_of(a, b), {a, b});
    };

    gt::GradientTape outer;
    outer.watch(w1);
    outer.watch(w2);
    const auto gradients = gradient_at(w1, w2);
    const Tensor64 directional = gt::reduce_sum(gradients[0] * v1) + gt::reduce_sum(gradients[1] * v2);
    const auto hvp = outer.gradient(directional, {w1, w2});

    const double h = 1e-5;
    const auto plus = gradient_at(w1 + h * v1, w2 + h * v2);
    const auto minus = gradient_at(w1 - h * v1, w2 - h * v2);
    for (std::size_t i = 0; i < 2; ++i) {
        const xt::xarray<double> numeric = (plus[i].value() - minus[i].value()) / (2 * h);
        INFO(hvp[i] << "\n" << Tensor64(numeric));
        REQUIRE(xt::allclose(hvp[i].value(), numeric, 1e-6, 1e-8));
    }
}

TEST_CASE("third derivatives through three nested tapes", "[tape][higher-order]")
{
    const Tensor64 x = 0.7;
    gt::GradientTape third;
    third.watch(x);
    Tensor64 second_derivative;
    {
        gt::GradientTape second;
        second.watch(x);
        Tensor64 first_derivative;
        {
            gt::GradientTape first;
            first.watch(x);
            first_derivative = first.gradient(gt::sin(x) * x, x);
        }
        second_derivative = second.gradient(first_derivative, x);
    }
    // d^3/dx^3 (x sin x) = -3 sin x - x cos x
    REQUIRE(third.gradient(second_derivative, x).item() == Approx(-3 * std::sin(0.7) - 0.7 * std::cos(0.7)));
}

TEST_CASE("the core sums a gradient over broadcast dimensions and refuses one of the wrong shape", "[tape][custom][errors]")
{
    // y = x broadcast to (2, 3) by the forward, with a backward that leaves
    // the broadcast in place: dL/dx is the column sums of the seed.
    const Tensor64 x = support::make64({1, 2, 3});
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    const Tensor64 rows = gt::custom_gradient(
        {x}, [](const auto& in) { return gt::broadcast_to(in[0], {2, 3}); },
        [](const Tensor64& grad, const auto&, const auto&) { return std::vector{grad}; });
    const Tensor64 seed = support::make64({1, 2, 3, 4, 5, 6}, {2, 3});
    REQUIRE(tape.gradient(rows, x, seed).value() == support::make64({5, 7, 9}).value());

    const Tensor64 transposed = gt::custom_gradient(
        {x}, [](const auto& in) { return gt::broadcast_to(in[0], {2, 3}); },
        [](const Tensor64& grad, const auto&, const auto&) { return std::vector{gt::transpose(grad)}; });
    REQUIRE_THROWS_AS(tape.gradient(transposed, x, seed), gt::shape_error);
    REQUIRE_THROWS_WITH(tape.gradient(transposed, x, seed),
                        Contains("custom_gradient") && Contains("backward rule returned a gradient of shape (3, 2)") &&
                            Contains("input 1, a float64 tensor of shape (3,)"));
}

TEST_CASE("a tape of ten thousand ops watching ten thousand tensors answers exactly", "[tape]")
{
    // y = x * c^n: dy/dx = c^n, and every intermediate is watched through x.
    const Tensor64 x = 1.0;
    const Tensor64 c = 1.0001;
    gt::GradientTape tape({.persistent = true});
    tape.watch(x);
    Tensor64 y = x;
    std::vector<Tensor64> kept;
    for (int i = 0; i < 10'000; ++i) {
        y = y * c;
        if (i % 1000 == 0) {
            kept.push_back(y);
        }
    }
    REQUIRE(tape.size() == 10'000);
    REQUIRE(tape.gradient(y, x).item() == Approx(std::pow(1.0001, 10'000)).epsilon(1e-12));
    // d y / d kept[k] = c^(n - 1 - 1000 k): intermediates are sources too.
    const auto gradients = tape.gradient(y, kept);
    for (std::size_t k = 0; k < kept.size(); ++k) {
        REQUIRE(gradients[k].item() == Approx(std::pow(1.0001, 10'000 - 1 - 1000.0 * double(k))).epsilon(1e-12));
    }
}
