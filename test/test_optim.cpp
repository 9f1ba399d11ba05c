// SGD: one step against the update of torch.optim.SGD computed by hand.
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
