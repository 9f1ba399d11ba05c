// What a person stepping through a training loop sees: call sites, printed
// tensors and tapes, numeric checks, traces.
#include <cmath>
#include <iostream>
#include <limits>
#include <sstream>

#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;
using gt::Tensor64;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;

namespace {

// Captures what is written to std::cerr while it lives.
class capture_stderr {
public:
    capture_stderr() : saved_(std::cerr.rdbuf(text_.rdbuf())) {}
    ~capture_stderr() { std::cerr.rdbuf(saved_); }
    std::string text() const { return text_.str(); }

private:
    std::ostringstream text_;
    std::streambuf* saved_;
};

std::string here(int line)
{
    return "test_debug.cpp:" + std::to_string(line);
}

}  // namespace

TEST_CASE("a tape lists its entries with shapes, dtypes and the caller's lines", "[debug]")
{
    gt::Variable w(gt::ones<float>({2, 1}), "weights");
    const Tensor input = gt::ones<float>({3, 2});
    gt::GradientTape tape({.persistent = true});
    const int line = __LINE__ + 1;
    const Tensor yhat = gt::matmul(input, w);
    const Tensor loss = gt::l2_loss(yhat - 1.0f);
    std::ostringstream text;
    text << tape;
    INFO(text.str());
    // What the backward rules keep: matmul both operands (24 + 8 bytes), l2_loss
    // its input (12 bytes), subtract nothing.
    REQUIRE_THAT(text.str(), Contains("persistent, 3 entries, 4 tensors tracked, 44 B held)"));
    REQUIRE_THAT(text.str(), Contains("#0 matmul (3, 2) float32, (2, 1) float32 -> (3, 1) float32  ") &&
                                 Contains(here(line) + "  holds 32 B"));
    REQUIRE_THAT(text.str(), Contains("#1 subtract (3, 1) float32, () float32 -> (3, 1) float32") &&
                                 Contains(here(line + 1) + "  holds 0 B"));
    REQUIRE_THAT(text.str(), Contains("#2 l2_loss (3, 1) float32 -> () float32") && Contains("holds 12 B"));
    REQUIRE_THAT(text.str(), EndsWith("holds 12 B\n"));

    const std::string dot = tape.to_dot();
    REQUIRE_THAT(dot, Contains("digraph") && Contains("matmul\\n") && Contains("l2_loss") && Contains("->"));
    (void)loss;
}

TEST_CASE("ops made of other ops record the caller's line on every entry", "[debug]")
{
    const Tensor logits = gt::ones<float>({2, 3});
    gt::GradientTape tape;
    tape.watch(logits);
    const int line = __LINE__ + 1;
    const Tensor loss = gt::sparse_softmax_cross_entropy_with_logits({0, 2}, logits);
    const Tensor dense = gt::softmax_cross_entropy_with_logits(gt::ones<float>({2, 3}), logits);
    std::ostringstream text;
    text << tape;
    INFO(text.str());
    REQUIRE(tape.size() == 8);
    std::istringstream lines(text.str());
    std::string entry;
    std::getline(lines, entry);
    while (std::getline(lines, entry)) {
        REQUIRE_THAT(entry, Contains(here(line)) || Contains(here(line + 1)));
    }
    (void)loss;
    (void)dense;
}

TEST_CASE("a tensor prints NumPy-like, summarised when large", "[debug]")
{
    std::ostringstream text;
    text << gt::zeros<double>({200, 300});
    REQUIRE_THAT(text.str(), Contains("float64 tensor, shape (200, 300), 60000 elements") && Contains("..."));
    std::ostringstream undefined;
    undefined << Tensor();
    REQUIRE(undefined.str() == "<undefined tensor>");
}

TEST_CASE("an error from an operator names the line that applied it", "[debug][errors]")
{
    const Tensor a = gt::ones<float>({2, 3});
    const Tensor b = gt::ones<float>({4});
    const int line = __LINE__ + 2;
    try {
        const Tensor c = a * b;
        FAIL("no exception: " << c);
    } catch (const gt::shape_error& e) {
        REQUIRE_THAT(e.what(), Contains("multiply") && Contains(here(line)));
    }
}

TEST_CASE("check_numerics: the first op giving a NaN or Inf throws, naming it", "[debug][numerics]")
{
    const Tensor64 x = support::make64({1, -1, 4});
    SECTION("off by default")
    {
        REQUIRE(std::isnan(gt::log(x).value()(1)));
    }
    SECTION("a forward value, under a guard, on a tape left as it was")
    {
        gt::GradientTape tape;
        tape.watch(x);
        const Tensor64 kept = gt::square(x);
        gt::check_numerics guard;
        // The op outside the macros: within a macro invocation over several
        // lines, GCC names the first line and Clang the last.
        const int line = __LINE__ + 1;
        const auto take_log = [&] { return gt::log(x); };
        REQUIRE_THROWS_AS(take_log(), gt::numeric_error);
        REQUIRE_THROWS_WITH(take_log(), Contains("log: the result has 1 of 3 elements NaN or Inf") &&
                                            Contains(here(line)));
        REQUIRE(tape.size() == 1);
        REQUIRE(tape.gradient(gt::reduce_sum(kept), x).value() == xt::xarray<double>{2, -2, 8});
    }
    SECTION("a gradient, naming the forward op whose rule produced it")
    {
        const Tensor64 at_zero = support::make64({0, 1});
        gt::set_check_numerics(true);
        gt::GradientTape tape;
        tape.watch(at_zero);
        const int line = __LINE__ + 1;
        const Tensor64 root = gt::sqrt(at_zero);
        const Tensor64 total = gt::reduce_sum(root);
        std::string message;
        try {
            (void)tape.gradient(total, at_zero);
        } catch (const gt::numeric_error& e) {
            message = e.what();
        }
        gt::set_check_numerics(false);
        REQUIRE_THAT(message, Contains("sqrt") && Contains("gradient") && Contains("1 of 2 elements NaN or Inf") && Contains(here(line)));
        REQUIRE_THROWS_WITH(tape.gradient(total, at_zero), Contains("stopped by") && Contains("record"));
    }
}

TEMPLATE_TEST_CASE("check_numerics finds one NaN or infinity at any place of any length, on every kernel path",
                   "[debug][numerics][kernels]", float, double)
{
    using T = TestType;
    gt::check_numerics guard;
    for (std::size_t n : {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65}) {
        xt::xarray<T> values = xt::arange<T>(T(n));
        REQUIRE_NOTHROW(gt::basic_tensor<T>(values) * T(1));
        for (std::size_t at = 0; at < n; ++at) {
            for (const T bad : {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                                -std::numeric_limits<T>::infinity()}) {
                xt::xarray<T> spoiled = values;
                spoiled(at) = bad;
                INFO(n << " elements, " << bad << " at " << at);
                REQUIRE_THROWS_WITH(gt::basic_tensor<T>(spoiled) * T(1),
                                    Contains("1 of " + std::to_string(n) + " elements NaN or Inf"));
            }
        }
    }
}

TEST_CASE("the trace prints one line per op, recorded or not", "[debug][trace]")
{
    const Tensor64 x = 2.0;
    gt::GradientTape tape;
    tape.watch(x);
    std::string text;
    {
        capture_stderr capture;
        gt::set_trace(true);
        const Tensor64 y = gt::exp(x);
        const Tensor64 z = gt::exp(Tensor64(1.0));
        gt::set_trace(false);
        text = capture.text();
        (void)y;
        (void)z;
    }
    REQUIRE_THAT(text, Contains("gradtape: exp () float64 -> () float64 (8 B) at ") && Contains("[recorded]") &&
                           Contains("[not recorded]"));
    REQUIRE_THAT(text, !Contains("backward pass"));
    const Tensor64 untraced = gt::exp(x);
    (void)untraced;
}

TEST_CASE("the trace labels the ops a backward rule runs with the op they differentiate", "[debug][trace]")
{
    const Tensor64 x = 2.0;
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 y = gt::tanh(x);
    std::string text;
    {
        capture_stderr capture;
        gt::set_trace(true);
        (void)tape.gradient(y, x);
        gt::set_trace(false);
        text = capture.text();
    }
    REQUIRE_THAT(text, Contains("(in the backward pass of tanh)"));
}

TEST_CASE("the trace labels tangent ops, and check_numerics names a bad tangent at the op's line", "[debug][trace]")
{
    const Tensor64 x = support::make64({0.0, 4.0});
    const Tensor64 v = support::make64({1.0, 1.0});
    std::string text;
    {
        gt::ForwardAccumulator64 accumulator({x}, {v});
        capture_stderr capture;
        gt::set_trace(true);
        const Tensor64 y = gt::tanh(x);
        gt::set_trace(false);
        text = capture.text();
        (void)y;
    }
    REQUIRE_THAT(text, Contains("(tangent of tanh)"));

    gt::ForwardAccumulator64 accumulator({x}, {v});
    gt::set_check_numerics(true);
    std::string message;
    try {
        // sqrt(0) is 0, its tangent v / (2 sqrt(0)) is not finite.
        const Tensor64 root = gt::sqrt(x);
        (void)root;
    } catch (const gt::numeric_error& e) {
        message = e.what();
    }
    gt::set_check_numerics(false);
    const int line = __LINE__ - 6;
    REQUIRE_THAT(message, Contains("sqrt: computing its tangent") && Contains(here(line)));
}

TEST_CASE("tape entries, trace lines, replay printouts and errors name the layer that ran the op", "[debug][trace]")
{
    gt::Sequential64 model({gt::Dense64(2, {.activation = "tanh"})}, "net");
    const Tensor64 x = gt::ones<double>({3, 4});
    model.build(x.shape());
    auto tape = std::make_unique<gt::GradientTape>(gt::tape_options{.persistent = true});
    std::string text;
    {
        capture_stderr capture;
        gt::set_trace(true);
        const Tensor64 loss = gt::reduce_sum(model(x));
        (void)tape->gradient(loss, model.trainable_variables());
        gt::set_trace(false);
        text = capture.text();
    }
    INFO(text);
    REQUIRE_THAT(text, Contains("gradtape: net/dense: matmul (3, 4) float64") &&
                           Contains("gradtape: net/dense: tanh (3, 2) float64") &&
                           Contains("gradtape: reduce_sum (3, 2) float64"));
    std::istringstream lines(text);
    bool backward_named = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.find("(in the backward pass of tanh)") != std::string::npos) {
            REQUIRE_THAT(line, Catch::Matchers::StartsWith("gradtape: net/dense: "));
            backward_named = true;
        }
    }
    REQUIRE(backward_named);
    std::ostringstream printed;
    printed << *tape;
    REQUIRE_THAT(printed.str(), Contains("#0 net/dense: matmul (3, 4) float64") && Contains("#3 reduce_sum (3, 2)"));
    tape.reset();

    auto forward = gt::capture([&](const Tensor64& input) { return model(input); });
    (void)forward(x);
    std::ostringstream replayed;
    replayed << forward;
    REQUIRE_THAT(replayed.str(), Contains(". net/dense: matmul"));

    struct squaring : gt::Model64 {
        squaring() : gt::Model64("squaring") {}
        Tensor64 call(const Tensor64& input, bool) override { return gt::matmul(input, input); }
    };
    squaring inner;
    gt::Sequential64 outer({}, "outer");
    outer.add(inner);
    REQUIRE_THROWS_WITH(outer(x), Catch::Matchers::StartsWith("outer/squaring: matmul: "));
    REQUIRE_THROWS_WITH(model(gt::ones<double>({3, 5})), Catch::Matchers::StartsWith("layer 'net/dense': takes"));
}
