// Forward mode (forward.hpp), gradient hooks (hooks.hpp) and recompute_grad:
// every op's tangent against its Jacobian times the direction, the three
// orders of Hessian-vector products against each other and against Hessians
// worked out by hand, and the errors that name the caller's line.
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

#include <xtensor/xmath.hpp>

namespace gt = gradtape;
using gt::Tensor64;
using support::make64;
using support::random64;

namespace {

using function = support::function;

// d f / d inputs . directions, from the tape's Jacobians.
Tensor64 jacobian_times(const function& f, const std::vector<Tensor64>& inputs, const std::vector<Tensor64>& directions)
{
    gt::GradientTape tape({.persistent = true});
    for (const auto& input : inputs) {
        tape.watch(input);
    }
    const Tensor64 y = f(inputs);
    xt::xarray<double> total = xt::zeros<double>({y.size()});
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        xt::xarray<double> jacobian = tape.jacobian(y, inputs[i]).value();
        jacobian.reshape({y.size(), inputs[i].size()});
        const xt::xarray<double>& v = directions[i].value();
        for (std::size_t r = 0; r < y.size(); ++r) {
            for (std::size_t c = 0; c < inputs[i].size(); ++c) {
                total(r) += jacobian(r, c) * v.flat(c);
            }
        }
    }
    total.reshape(y.shape());
    return total;
}

// (f(x + h v) - f(x - h v)) / 2h.
Tensor64 central_difference(const function& f, const std::vector<Tensor64>& inputs,
                            const std::vector<Tensor64>& directions, double h = 1e-6)
{
    std::vector<Tensor64> ahead;
    std::vector<Tensor64> behind;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        ahead.emplace_back(xt::xarray<double>(inputs[i].value() + h * directions[i].value()));
        behind.emplace_back(xt::xarray<double>(inputs[i].value() - h * directions[i].value()));
    }
    return Tensor64(xt::xarray<double>((f(ahead).value() - f(behind).value()) / (2 * h)));
}

// The message of the gradtape::error `call` throws, or "no error".
template <class Call>
std::string message_of(const Call& call)
{
    try {
        call();
    } catch (const gt::error& e) {
        return e.what();
    }
    return "no error";
}

bool close(const Tensor64& actual, const Tensor64& expected, double tolerance)
{
    return actual.shape() == expected.shape() &&
           xt::allclose(actual.value(), expected.value(), tolerance, tolerance);
}

struct op_case {
    std::string name;
    std::vector<gt::shape_type> shapes;
    function f;
};

// Every differentiable op, broadcasting shapes included.
std::vector<op_case> op_cases()
{
    const auto unary = [](auto op) { return [op](const std::vector<Tensor64>& in) { return op(in[0]); }; };
    const auto binary = [](auto op) { return [op](const std::vector<Tensor64>& in) { return op(in[0], in[1]); }; };
    const gt::shape_type m{3, 4};
    // Layers made once, so that every call of a case sees the same weights.
    const gt::LSTM64 lstm(3, {.return_sequences = true});
    const gt::GRU64 gru(3, {.return_sequences = true});
    std::vector<op_case> cases{
        {"negative", {m}, unary([](const Tensor64& x) { return -x; })},
        {"abs", {m}, unary([](const Tensor64& x) { return gt::abs(x); })},
        {"sign", {m}, unary([](const Tensor64& x) { return gt::sign(x) * x; })},
        {"sqrt", {m}, unary([](const Tensor64& x) { return gt::sqrt(x * x + 1.0); })},
        {"rsqrt", {m}, unary([](const Tensor64& x) { return gt::rsqrt(x * x + 1.0); })},
        {"square", {m}, unary([](const Tensor64& x) { return gt::square(x); })},
        {"exp", {m}, unary([](const Tensor64& x) { return gt::exp(x); })},
        {"log", {m}, unary([](const Tensor64& x) { return gt::log(x * x + 0.5); })},
        {"log1p", {m}, unary([](const Tensor64& x) { return gt::log1p(x * x); })},
        {"expm1", {m}, unary([](const Tensor64& x) { return gt::expm1(x); })},
        {"sin", {m}, unary([](const Tensor64& x) { return gt::sin(x); })},
        {"cos", {m}, unary([](const Tensor64& x) { return gt::cos(x); })},
        {"tanh", {m}, unary([](const Tensor64& x) { return gt::tanh(x); })},
        {"sigmoid", {m}, unary([](const Tensor64& x) { return gt::sigmoid(x); })},
        {"relu", {m}, unary([](const Tensor64& x) { return gt::relu(x); })},
        {"elu", {m}, unary([](const Tensor64& x) { return gt::elu(x); })},
        {"softplus", {m}, unary([](const Tensor64& x) { return gt::softplus(x); })},
        {"leaky_relu", {m}, unary([](const Tensor64& x) { return gt::leaky_relu(x, 0.1); })},
        {"pow scalar", {m}, unary([](const Tensor64& x) { return gt::pow(x * x + 0.5, 1.5); })},
        {"clip_by_value", {m}, unary([](const Tensor64& x) { return gt::clip_by_value(x, -0.7, 0.6); })},
        {"add", {m, {4}}, binary([](const Tensor64& a, const Tensor64& b) { return a + b; })},
        {"subtract", {{3, 1}, m}, binary([](const Tensor64& a, const Tensor64& b) { return a - b; })},
        {"multiply", {m, {1, 4}}, binary([](const Tensor64& a, const Tensor64& b) { return a * b; })},
        {"divide", {{4}, m}, binary([](const Tensor64& a, const Tensor64& b) { return a / (b * b + 1.0); })},
        {"maximum", {m, {4}}, binary([](const Tensor64& a, const Tensor64& b) { return gt::maximum(a, b); })},
        {"minimum", {{3, 1}, m}, binary([](const Tensor64& a, const Tensor64& b) { return gt::minimum(a, b); })},
        {"pow", {m, {4}}, binary([](const Tensor64& a, const Tensor64& b) { return gt::pow(a * a + 0.5, b); })},
        {"where", {m, {4}}, binary([](const Tensor64& a, const Tensor64& b) {
             return gt::where(gt::greater(a, Tensor64(0.0)), a * b, b);
         })},
        {"cast", {m}, unary([](const Tensor64& x) { return gt::cast<double>(x * 2.0); })},
        {"matmul", {{3, 4}, {4, 2}}, binary([](const Tensor64& a, const Tensor64& b) { return gt::matmul(a, b); })},
        {"matmul batched, transposed", {{2, 4, 3}, {5, 4}}, binary([](const Tensor64& a, const Tensor64& b) {
             return gt::matmul(a, b, {.transpose_a = true, .transpose_b = true});
         })},
        {"softmax", {m}, unary([](const Tensor64& x) { return gt::softmax(x); })},
        {"log_softmax", {m}, unary([](const Tensor64& x) { return gt::log_softmax(x, 0); })},
        {"sigmoid_cross_entropy_with_logits", {m, m}, binary([](const Tensor64& z, const Tensor64& x) {
             return gt::sigmoid_cross_entropy_with_logits(z, x);
         })},
        {"softmax_cross_entropy_with_logits", {m, m}, binary([](const Tensor64& z, const Tensor64& x) {
             return gt::softmax_cross_entropy_with_logits(gt::softmax(z), x);
         })},
        {"l2_loss", {m}, unary([](const Tensor64& x) { return gt::l2_loss(x); })},
        {"reduce_sum", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_sum(x, {0, 2}); })},
        {"reduce_mean", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_mean(x, {1}, true); })},
        {"reduce_max", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_max(x, {1}); })},
        {"reduce_min", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_min(x); })},
        {"reduce_prod", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_prod(x, {2}); })},
        {"reduce_logsumexp", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_logsumexp(x, {0, 1}); })},
        {"reduce_variance", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::reduce_variance(x, {2}, true); })},
        {"top_k", {m}, unary([](const Tensor64& x) { return gt::top_k(x, 2).values; })},
        {"transpose", {{2, 3, 4}}, unary([](const Tensor64& x) { return gt::transpose(x, {2, 0, 1}); })},
        {"reshape", {m}, unary([](const Tensor64& x) { return gt::reshape(x, {2, -1}); })},
        {"broadcast_to", {{3, 1}}, unary([](const Tensor64& x) { return gt::broadcast_to(x, {2, 3, 4}); })},
        {"expand_dims, squeeze", {m}, unary([](const Tensor64& x) { return gt::squeeze(gt::expand_dims(x, 1)) * x; })},
        {"concat", {m, {3, 2}}, binary([](const Tensor64& a, const Tensor64& b) { return gt::concat({a, b}, 1); })},
        {"stack", {m, m}, binary([](const Tensor64& a, const Tensor64& b) { return gt::stack({a, b}, 1); })},
        {"slice", {m}, unary([](const Tensor64& x) { return gt::slice(x, {1, 1}, {2, 2}); })},
        {"split", {m}, unary([](const Tensor64& x) { return gt::split(x, {1, 3}, 1)[1]; })},
        {"gather", {m}, unary([](const Tensor64& x) { return gt::gather(x, {2, 0, 2}, 0); })},
        {"tile", {{2, 3}}, unary([](const Tensor64& x) { return gt::tile(x, {2, 1}); })},
        {"embedding_lookup", {{5, 3}}, unary([](const Tensor64& table) {
             return gt::embedding_lookup(table, xt::xarray<std::int64_t>{{4, 0}, {4, 2}});
         })},
        {"conv2d", {{2, 5, 5, 2}, {3, 3, 2, 3}}, binary([](const Tensor64& x, const Tensor64& w) {
             return gt::conv2d(x, w, {.strides = {2, 1}, .padding = gt::padding::same});
         })},
        {"conv2d_transpose", {{1, 3, 3, 3}, {2, 2, 2, 3}}, binary([](const Tensor64& x, const Tensor64& w) {
             return gt::conv2d_transpose(x, w, {1, 6, 6, 2}, {.strides = {2, 2}});
         })},
        {"depthwise_conv2d", {{1, 4, 4, 2}, {3, 3, 2, 2}}, binary([](const Tensor64& x, const Tensor64& w) {
             return gt::depthwise_conv2d(x, w, {.padding = gt::padding::same});
         })},
        {"max_pool2d", {{1, 4, 4, 2}}, unary([](const Tensor64& x) { return gt::max_pool2d(x, {}); })},
        {"avg_pool2d", {{1, 4, 5, 2}}, unary([](const Tensor64& x) {
             return gt::avg_pool2d(x, {.strides = {1, 2}, .padding = gt::padding::same});
         })},
        {"layer_normalization", {m, {4}, {4}}, [](const std::vector<Tensor64>& in) {
             return gt::layer_normalization(in[0], in[1], in[2]);
         }},
        {"scaled_dot_product_attention", {{2, 3, 4}, {2, 5, 4}, {2, 5, 2}}, [](const std::vector<Tensor64>& in) {
             return gt::scaled_dot_product_attention(in[0], in[1], in[2]);
         }},
        {"lstm_cell (an LSTM layer)", {{2, 4, 3}}, unary([lstm](const Tensor64& x) { return lstm(x); })},
        {"gru_cell (a GRU layer)", {{2, 4, 3}}, unary([gru](const Tensor64& x) { return gru(x); })},
        {"custom_gradient (its tangent from its backward)", {m}, unary([](const Tensor64& x) {
             return gt::custom_gradient<double>(
                 {x}, [](const auto& in) { return gt::sin(in[0]); },
                 [](const Tensor64& grad, const auto& in, const auto&) {
                     return std::vector<Tensor64>{grad * gt::cos(in[0])};
                 });
         })},
    };
    return cases;
}

}  // namespace

TEST_CASE("every op's tangent is its Jacobian times the direction", "[forward]")
{
    gt::set_seed(11);
    for (const auto& c : op_cases()) {
        SECTION(c.name)
        {
            std::vector<Tensor64> inputs;
            std::vector<Tensor64> directions;
            for (const auto& shape : c.shapes) {
                inputs.push_back(random64(shape));
                directions.push_back(random64(shape));
            }
            Tensor64 y;
            Tensor64 tangent;
            {
                gt::ForwardAccumulator64 accumulator(inputs, directions);
                y = c.f(inputs);
                tangent = accumulator.jvp(y, gt::unconnected_gradients::zero);
            }
            const Tensor64 reverse = jacobian_times(c.f, inputs, directions);
            const Tensor64 differences = central_difference(c.f, inputs, directions);
            INFO(c.name << "\ntangent " << tangent << "\nJ v " << reverse << "\ndifferences " << differences);
            CHECK(close(tangent, reverse, 1e-10));
            CHECK(close(tangent, differences, 1e-6));
        }
    }
}

TEST_CASE("custom_gradient's own jvp rule, and captures that refuse tangents and hooks", "[forward][hooks]")
{
    const Tensor64 x = make64({0.5, -1.0});
    const Tensor64 v = make64({2.0, 3.0});
    int jvp_calls = 0;
    const auto sine = [&](const Tensor64& t) {
        return gt::custom_gradient<double>(
            {t}, [](const auto& in) { return gt::sin(in[0]); },
            [](const Tensor64& grad, const auto& in, const auto&) { return std::vector<Tensor64>{grad * gt::cos(in[0])}; },
            [&](const auto& in, const auto& tangents, const auto&) {
                ++jvp_calls;
                return tangents[0] * gt::cos(in[0]);
            });
    };
    const auto [y, tangent] = gt::jvp<double>(sine, x, v);
    CHECK(jvp_calls == 1);
    CHECK(close(tangent, Tensor64(xt::xarray<double>(v.value() * xt::cos(x.value()))), 1e-15));

    gt::Variable64 w(make64({1.0, 2.0}), "w");
    const auto step = [&](const Tensor64& input) {
        gt::GradientTape tape;
        return tape.gradient(gt::reduce_sum(input * w), w);
    };
    {
        auto captured = gt::capture(step);
        const auto hook = gt::register_hook<double>(w, [](const Tensor64& g) { return g; });
        const int line = __LINE__ - 1;
        CHECK_THAT(message_of([&] { (void)captured(x); }),
                   Catch::Matchers::Contains("register_hook") &&
                       Catch::Matchers::Contains("test_forward.cpp:" + std::to_string(line)));
    }
    {
        auto captured = gt::capture(step);
        gt::ForwardAccumulator64 accumulator({w}, {v});
        CHECK_THROWS_AS(captured(x), gt::capture_error);
    }
}

TEST_CASE("nested accumulators give second directional derivatives", "[forward]")
{
    // f = sin(x) exp(x): f'' = 2 cos(x) exp(x).
    const Tensor64 x = make64({-0.7, 0.1, 1.3});
    const Tensor64 u = make64({0.5, -2.0, 1.5});
    const Tensor64 v = make64({1.0, 0.25, -0.5});
    Tensor64 second;
    {
        gt::ForwardAccumulator64 outer({x}, {u});
        gt::ForwardAccumulator64 inner({x}, {v});
        const Tensor64 y = gt::sin(x) * gt::exp(x);
        second = outer.jvp(inner.jvp(y));
        // The inner accumulator does not differentiate the outer one's tangents.
        CHECK_FALSE(inner.jvp(outer.jvp(y)).defined());
    }
    const xt::xarray<double> expected = 2 * xt::cos(x.value()) * xt::exp(x.value()) * u.value() * v.value();
    CHECK(xt::allclose(second.value(), expected, 1e-12, 1e-12));
}

TEST_CASE("the three orders of Hessian-vector products agree, and hessian is the analytic one", "[forward]")
{
    // f(x) = sum(x^3) + (sum x)^2 has H = diag(6 x) + 2.
    const auto cubic = [](const Tensor64& x) { return gt::reduce_sum(x * x * x) + gt::square(gt::reduce_sum(x)); };
    const Tensor64 x = make64({0.5, -1.0, 2.0, 0.25}, {2, 2});
    const Tensor64 h = gt::hessian<double>(cubic, x);
    REQUIRE(h.shape() == gt::shape_type{2, 2, 2, 2});
    for (std::size_t i = 0; i < 4; ++i) {
        for (std::size_t j = 0; j < 4; ++j) {
            const double expected = (i == j ? 6 * x.value().flat(i) : 0.0) + 2;
            CHECK_THAT(h.value().flat(i * 4 + j), Catch::Matchers::WithinAbs(expected, 1e-12));
        }
    }

    // logsumexp has H = diag(p) - p p^T, p = softmax(x).
    const auto logsumexp = [](const Tensor64& x) { return gt::reduce_logsumexp(x); };
    const Tensor64 z = make64({0.3, -1.2, 0.8});
    const xt::xarray<double> p = xt::exp(z.value()) / xt::sum(xt::exp(z.value()))();
    const Tensor64 hz = gt::hessian<double>(logsumexp, z);
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 3; ++j) {
            CHECK_THAT(hz.value()(i, j), Catch::Matchers::WithinAbs((i == j ? p(i) : 0.0) - p(i) * p(j), 1e-12));
        }
    }

    // A small network's loss over its variables: the three orders within 1e-10.
    gt::set_seed(5);
    gt::Variable64 w1(random64({4, 5}), "w1");
    gt::Variable64 b1(random64({5}), "b1");
    gt::Variable64 w2(random64({5, 3}), "w2");
    const Tensor64 input = random64({6, 4});
    const xt::xarray<std::int64_t> labels{0, 2, 1, 1, 0, 2};
    const auto loss_fn = [&] {
        const Tensor64 hidden = gt::tanh(gt::matmul(input, w1) + b1);
        return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, gt::matmul(hidden, w2)));
    };
    const std::vector<gt::Variable64> variables{w1, b1, w2};
    const std::vector<Tensor64> vectors{random64({4, 5}), random64({5}), random64({5, 3})};
    const auto forward_over_reverse = gt::hvp<double>(loss_fn, variables, vectors);
    const auto reverse_over_forward =
        gt::hvp<double>(loss_fn, variables, vectors, gt::hvp_mode::reverse_over_forward);
    const auto reverse_over_reverse =
        gt::hvp<double>(loss_fn, variables, vectors, gt::hvp_mode::reverse_over_reverse);
    for (std::size_t i = 0; i < variables.size(); ++i) {
        INFO(variables[i].name());
        CHECK(close(forward_over_reverse[i], reverse_over_reverse[i], 1e-10));
        CHECK(close(reverse_over_forward[i], reverse_over_reverse[i], 1e-10));
    }

    // And one tensor against central differences of the gradient.
    const auto tanh_net = [](const Tensor64& x) { return gt::reduce_sum(gt::tanh(gt::matmul(x, gt::transpose(x)))); };
    const Tensor64 point = random64({3, 2});
    const Tensor64 direction = random64({3, 2});
    const auto gradient_at = [&](const std::vector<Tensor64>& at) {
        gt::GradientTape tape;
        tape.watch(at[0]);
        return tape.gradient(tanh_net(at[0]), at[0]);
    };
    CHECK(close(gt::hvp<double>(tanh_net, point, direction), central_difference(gradient_at, {point}, {direction}),
                1e-6));
}

TEST_CASE("jvp and the accumulator's rules for unconnected, paused and freed values", "[forward]")
{
    const Tensor64 x = make64({1.0, 2.0});
    const Tensor64 v = make64({0.5, -1.0});
    const auto [y, slope] = gt::jvp<double>([](const Tensor64& t) { return gt::square(t); }, x, v);
    CHECK(support::same(y, make64({1.0, 4.0})));
    CHECK(support::same(slope, make64({1.0, -4.0})));

    gt::ForwardAccumulator64 accumulator({x}, {v});
    const Tensor64 other = make64({3.0, 4.0}) * 2.0;
    CHECK_FALSE(accumulator.jvp(other).defined());
    CHECK(support::same(accumulator.jvp(other, gt::unconnected_gradients::zero), make64({0.0, 0.0})));
    CHECK(support::same(accumulator.jvp(x), v));
    {
        const auto pause = gt::stop_recording();
        CHECK_FALSE(accumulator.jvp(x * 2.0).defined());
    }
    // A comparison's mask carries no tangent, as in TensorFlow.
    CHECK_FALSE(accumulator.jvp(gt::greater(x, Tensor64(1.5))).defined());

    // A long loop does not keep the tangents of values it dropped.
    gt::empty_cache();
    Tensor64 carried = x;
    std::size_t after_100 = 0;
    for (int step = 0; step < 2000; ++step) {
        carried = gt::tanh(carried * 1.01 + x);
        if (step == 100) {
            after_100 = gt::memory_info().current_bytes;
        }
    }
    CHECK(gt::memory_info().current_bytes <= after_100 + 4096);
    CHECK(accumulator.jvp(carried).defined());
}

TEST_CASE("an accumulator destroyed on another thread leaves its owner's thread working", "[forward]")
{
    const Tensor64 x = make64({1.0, 2.0});
    auto accumulator = std::make_unique<gt::ForwardAccumulator64>(std::vector<Tensor64>{x}, std::vector<Tensor64>{x});
    std::string refused;
    std::thread([&] {
        refused = message_of([&] { (void)accumulator->jvp(x); });
        accumulator.reset();
    }).join();
    CHECK_THAT(refused, Catch::Matchers::Contains("thread that created it"));
    gt::ForwardAccumulator64 fresh({x}, {make64({1.0, 0.0})});
    CHECK(support::same(fresh.jvp(gt::square(x)), make64({2.0, 0.0})));
}

TEST_CASE("forward-mode refusals name the caller's line and change nothing", "[forward][errors]")
{
    using Catch::Matchers::Contains;
    const Tensor64 x = make64({1.0, 2.0});
    const auto line_of = [](const auto& call) { return message_of(call); };
    const std::string shape = line_of([&] { gt::ForwardAccumulator64 a({x}, {make64({1.0, 2.0, 3.0})}); });
    CHECK_THAT(shape, Contains("ForwardAccumulator") && Contains("(2,)") && Contains("(3,)") &&
                          Contains("test_forward.cpp:"));
    const std::string twice = line_of([&] { gt::ForwardAccumulator64 a({x, x}, {x, x}); });
    CHECK_THAT(twice, Contains("given before") && Contains("test_forward.cpp:"));
    const std::string count = line_of([&] { gt::ForwardAccumulator64 a({x}, {}); });
    CHECK_THAT(count, Contains("1 primals and 0 tangents"));
    const std::string not_scalar = line_of([&] { (void)gt::hvp<double>([](const Tensor64& t) { return t * t; }, x, x); });
    CHECK_THAT(not_scalar, Contains("hvp") && Contains("scalar") && Contains("(2,)") && Contains("test_forward.cpp:"));
    const std::string direction =
        line_of([&] { (void)gt::hvp<double>([](const Tensor64& t) { return gt::reduce_sum(t); }, x, make64({1.0}, {1})); });
    CHECK_THAT(direction, Contains("hvp") && Contains("(1,)") && Contains("test_forward.cpp:"));
    // None of these left an accumulator behind.
    CHECK_FALSE(gt::ForwardAccumulator64({make64({1.0})}, {make64({1.0})}).jvp(x * 2.0).defined());
}

TEST_CASE("hooks see each complete gradient once and may replace it", "[hooks]")
{
    const Tensor64 x = make64({1.0, -2.0, 3.0});
    gt::Variable64 w(make64({0.5, 0.5, 0.5}), "w");
    std::vector<std::string> seen;
    Tensor64 hidden;
    gt::GradientTape tape;
    tape.watch(x);
    hidden = x * w;
    auto doubled = gt::register_hook<double>(hidden, [&](const Tensor64& g) {
        seen.push_back("hidden");
        return g * 2.0;
    });
    auto on_w = gt::register_hook<double>(w, [&](const Tensor64&) {
        seen.push_back("w");
        return Tensor64();
    });
    // hidden is used twice: its hook sees the sum of both uses, once.
    const Tensor64 loss = gt::reduce_sum(hidden * hidden) + gt::reduce_sum(hidden);
    const auto gradients = tape.gradient(loss, std::vector<Tensor64>{x, w});
    CHECK(seen == std::vector<std::string>{"hidden", "w"});
    // d loss / d hidden = 2 hidden + 1, doubled, times w (for x) or x (for w).
    const xt::xarray<double> upstream = 2.0 * (2.0 * x.value() * 0.5 + 1.0);
    CHECK(xt::allclose(gradients[0].value(), upstream * 0.5));
    CHECK(xt::allclose(gradients[1].value(), upstream * x.value()));

    doubled.remove();
    on_w.remove();
    gt::GradientTape again;
    const Tensor64 plain = gt::reduce_sum(x * w);
    CHECK(support::same(again.gradient(plain, w), x));
    CHECK(seen.size() == 2);

    // A hook's ops are recorded by an outer tape: second derivatives see it.
    const Tensor64 point = make64({0.3, -0.4});
    gt::GradientTape outer;
    outer.watch(point);
    Tensor64 first;
    {
        gt::GradientTape inner;
        inner.watch(point);
        const Tensor64 squared = gt::square(point);
        const auto hook = gt::register_hook<double>(squared, [&](const Tensor64& g) { return g * point; });
        first = inner.gradient(gt::reduce_sum(squared), point);  // 2 x * x = 2 x^2
    }
    CHECK(support::same(first, Tensor64(xt::xarray<double>(2.0 * point.value() * point.value()))));
    CHECK(support::same(outer.gradient(gt::reduce_sum(first), point),
                        Tensor64(xt::xarray<double>(4.0 * point.value()))));

    // A hook that returns another shape names where it was registered and
    // where the tensor was computed.
    gt::GradientTape checked;
    checked.watch(x);
    const Tensor64 tripled = x * 3.0;
    const int computed_line = __LINE__ - 1;
    const auto wrong = gt::register_hook<double>(tripled, [](const Tensor64&) { return make64({1.0}, {1}); });
    const int hook_line = __LINE__ - 1;
    const std::string refused = message_of([&] { (void)checked.gradient(gt::reduce_sum(tripled), x); });
    using Catch::Matchers::Contains;
    CHECK_THAT(refused, Contains("register_hook") && Contains("(1,)") && Contains("(3,)") &&
                            Contains("test_forward.cpp:" + std::to_string(hook_line)) && Contains("computed at") &&
                            Contains(":" + std::to_string(computed_line)));
}

TEST_CASE("gradient_monitor writes every variable's gradient norm per step", "[hooks]")
{
    support::scratch_directory scratch;
    gt::set_seed(3);
    gt::Variable64 w(random64({3, 2}), "w");
    gt::Variable64 b(random64({2}), "b");
    gt::Variable64 frozen(random64({2}), "frozen", false);
    const Tensor64 input = random64({4, 3});
    std::vector<double> expected;
    {
        gt::gradient_monitor64 monitor({w, b, frozen}, scratch.path / "gradients.csv");
        for (int step = 0; step < 2; ++step) {
            gt::GradientTape tape;
            const Tensor64 loss = gt::reduce_sum(gt::square(gt::matmul(input, w) + b + frozen));
            for (const auto& gradient : tape.gradient(loss, {w, b})) {
                expected.push_back(std::sqrt(xt::sum(gradient.value() * gradient.value())()));
            }
        }
    }
    std::ifstream csv(scratch.path / "gradients.csv");
    std::string line;
    std::getline(csv, line);
    CHECK(line == "step,variable,gradient_norm");
    const std::vector<std::string> names{"w", "b", "w", "b"};
    const std::vector<int> steps{0, 0, 1, 1};
    for (std::size_t i = 0; i < 4; ++i) {
        REQUIRE(std::getline(csv, line));
        std::istringstream fields(line);
        std::string step;
        std::string name;
        std::string norm;
        std::getline(fields, step, ',');
        std::getline(fields, name, ',');
        std::getline(fields, norm);
        CHECK(std::stoi(step) == steps[i]);
        CHECK(name == names[i]);
        CHECK_THAT(std::stod(norm), Catch::Matchers::WithinRel(expected[i], 1e-5));
    }
    CHECK_FALSE(std::getline(csv, line));
}

TEST_CASE("recompute_grad keeps no activations and gives the plain first gradients bit for bit", "[recompute]")
{
    gt::set_seed(21);
    std::vector<gt::Variable64> weights;
    for (int i = 0; i < 3; ++i) {
        weights.emplace_back(random64({8, 8}, -0.5, 0.5), "w" + std::to_string(i));
    }
    const auto block = [&](const Tensor64& x) {
        Tensor64 h = x;
        for (const auto& w : weights) {
            h = gt::dropout(gt::relu(gt::matmul(h, w)), 0.25);
        }
        return h;
    };
    const Tensor64 input = random64({4, 8});
    const auto step = [&](const support::function& f) {
        gt::set_seed(99);
        gt::GradientTape outer;
        std::vector<Tensor64> first;
        {
            gt::GradientTape inner;
            const Tensor64 loss = gt::reduce_sum(gt::square(f({input})));
            first = inner.gradient(loss, weights);
        }
        Tensor64 total = 0.0;
        for (const auto& g : first) {
            total = total + gt::reduce_sum(g * g);
        }
        std::vector<Tensor64> result = first;
        for (const auto& g : outer.gradient(total, weights)) {
            result.push_back(g);
        }
        result.push_back(gt::random_uniform<double>({1}, 0, 1));  // where the generator ended
        return result;
    };
    const auto recomputed = gt::recompute_grad(block);
    const auto plain = step([&](const std::vector<Tensor64>& in) { return block(in[0]); });
    const auto again = step([&](const std::vector<Tensor64>& in) { return recomputed(in[0]); });
    // First gradients and the generator's end bit for bit; second gradients
    // add their terms in another order (the rerun's own tape groups a block's
    // terms before the outer tape adds them), so to rounding.
    REQUIRE(plain.size() == 7);
    for (std::size_t i : {0, 1, 2, 6}) {
        INFO(i);
        CHECK(plain[i].value() == again[i].value());
    }
    for (std::size_t i : {3, 4, 5}) {
        INFO(i);
        CHECK(close(plain[i], again[i], 1e-12));
    }

    // Its entry holds only the input and the variables.
    gt::GradientTape tape;
    const Tensor64 out = recomputed(input);
    CHECK(tape.size() == 1);

    const auto undefined = gt::recompute_grad([](const Tensor64&) { return Tensor64(); });
    const int line = __LINE__ - 1;
    CHECK_THAT(message_of([&] { (void)undefined(input); }),
               Catch::Matchers::Contains("undefined") &&
                   Catch::Matchers::Contains("test_forward.cpp:" + std::to_string(line)));
}
