// What a GradientTape records, watches and answers.
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
        REQUIRE_THROWS_WITH(tape.gradient(y, frozen), Contains("'frozen'") && Contains("not watched"));
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

TEST_CASE("a source the target does not depend on gets zeros of its shape", "[tape]")
{
    gt::Variable64 used(support::random64({2}), "used");
    gt::Variable64 unused(support::random64({3, 2}), "unused");
    const Tensor64 watched = support::random64({4});
    gt::GradientTape tape;
    tape.watch(watched);
    const Tensor64 loss = gt::reduce_sum(used * used);
    const auto gradients = tape.gradient(loss, {used, unused});
    REQUIRE(gradients.size() == 2);
    REQUIRE(gradients[1].shape() == gt::shape_type{3, 2});
    REQUIRE(xt::all(xt::equal(gradients[1].value(), 0.0)));
    REQUIRE(xt::allclose(gradients[0].value(), 2.0 * used.value()));
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
