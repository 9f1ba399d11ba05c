// Bad input: each error is a gradtape::error naming the op, the shapes and
// the caller's line, and leaves every variable as it was.
#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;
using Catch::Matchers::Contains;

TEST_CASE("mismatched matmul shapes name the op, both shapes and the line", "[errors]")
{
    gt::Variable w(gt::ones<float>({3, 1}), "weights");
    const Tensor input = gt::ones<float>({50, 2});
    gt::GradientTape tape;
    // The op outside the macros: within a macro invocation over several
    // lines, GCC names the first line and Clang the last.
    const int line = __LINE__ + 1;
    const auto multiply = [&] { return gt::matmul(input, w); };
    REQUIRE_THROWS_AS(multiply(), gt::shape_error);
    REQUIRE_THROWS_WITH(multiply(), Contains("matmul") && Contains("(50, 2)") && Contains("(3, 1)") &&
                                        Contains("test_errors.cpp:" + std::to_string(line)));
    REQUIRE_THROWS_WITH(gt::matmul(gt::ones<float>({2}), w), Contains("(2,) x (3, 1)"));
    REQUIRE_THROWS_WITH(gt::matmul(gt::ones<float>({2, 3, 2}), gt::ones<float>({4, 2, 1})),
                        Contains("batch dimensions") && Contains("(2, 3, 2)") && Contains("(4, 2, 1)"));
    REQUIRE(tape.size() == 0);
    REQUIRE(xt::all(xt::equal(w.value(), 1.f)));
}

TEST_CASE("shapes that do not broadcast are refused by every elementwise op and operator", "[errors]")
{
    const Tensor a = gt::ones<float>({2, 3});
    const Tensor b = gt::ones<float>({4});
    REQUIRE_THROWS_WITH(a + b, Contains("add") && Contains("(2, 3)") && Contains("(4,)") && Contains("broadcast") &&
                                   Contains("test_errors.cpp"));
    REQUIRE_THROWS_WITH(a - b, Contains("subtract"));
    REQUIRE_THROWS_WITH(gt::multiply(a, b), Contains("multiply"));
    REQUIRE_THROWS_AS(a / b, gt::shape_error);
    REQUIRE_THROWS_WITH(gt::broadcast_to(a, {3, 3}), Contains("broadcast_to") && Contains("(3, 3)"));
}

TEST_CASE("axes, permutations and reshapes out of range are argument and shape errors", "[errors]")
{
    const Tensor a = gt::ones<float>({2, 3});
    REQUIRE_THROWS_WITH(gt::reduce_sum(a, {2}), Contains("reduce_sum") && Contains("axis 2") && Contains("rank 2"));
    REQUIRE_THROWS_AS(gt::reduce_mean(a, {-3}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::reduce_sum(a, {1, -1}), Contains("more than once"));
    REQUIRE_THROWS_WITH(gt::transpose(a, {0}), Contains("transpose") && Contains("(2, 3)"));
    REQUIRE_THROWS_WITH(gt::reshape(a, {4, -1}), Contains("reshape") && Contains("(2, 3)") && Contains("(4, -1)"));
    REQUIRE_THROWS_AS(gt::reshape(a, {-1, -1}), gt::shape_error);
    REQUIRE_THROWS_AS(gt::reshape(a, {7}), gt::shape_error);
}

TEST_CASE("a second gradient on a non-persistent tape is a tape error and changes nothing", "[errors]")
{
    gt::Variable w(gt::fill<float>({2}, 2.f), "w");
    gt::GradientTape tape;
    const Tensor loss = gt::reduce_sum(gt::square(w));
    const Tensor first = tape.gradient(loss, w);
    REQUIRE_THROWS_AS(tape.gradient(loss, w), gt::tape_error);
    REQUIRE_THROWS_WITH(tape.gradient(loss, w), Contains("gradient") && Contains("non-persistent"));
    REQUIRE(xt::all(xt::equal(first.value(), 4.f)));
    REQUIRE(xt::all(xt::equal(w.value(), 2.f)));
}

TEST_CASE("every error is a gradtape::error and a std::exception", "[errors]")
{
    const Tensor a = gt::ones<float>({2, 3});
    REQUIRE_THROWS_AS(gt::matmul(a, a), gt::error);
    REQUIRE_THROWS_AS(gt::reduce_sum(a, {5}), std::exception);
    REQUIRE_THROWS_AS(gt::linspace<float>(0, 1, 0), gt::argument_error);
}

TEST_CASE("after each kind of error, the tape and the variables are as they were", "[errors]")
{
    gt::Variable w(gt::fill<float>({2, 2}, 1.5f), "w");
    gt::GradientTape tape({.persistent = true});
    const Tensor total = gt::reduce_sum(gt::square(w));
    const auto unchanged = [&] {
        REQUIRE(tape.size() == 2);
        REQUIRE(xt::all(xt::equal(w.value(), 1.5f)));
        REQUIRE(xt::all(xt::equal(tape.gradient(total, w).value(), 3.f)));
    };
    SECTION("shape_error")
    {
        REQUIRE_THROWS_WITH(gt::matmul(w, gt::ones<float>({3, 1})), Contains("matmul") && Contains("(2, 2)") &&
                                                                         Contains("(3, 1)") && Contains("test_errors.cpp"));
        unchanged();
    }
    SECTION("argument_error")
    {
        REQUIRE_THROWS_WITH(gt::reduce_max(w, {3}), Contains("reduce_max") && Contains("axis 3") &&
                                                        Contains("test_errors.cpp"));
        REQUIRE_THROWS_WITH(gt::gather(w, {0, 2}), Contains("gather") && Contains("index 2") && Contains("(2, 2)"));
        unchanged();
    }
    SECTION("tape_error")
    {
        const Tensor unwatched = gt::ones<float>({2});
        REQUIRE_THROWS_WITH(tape.gradient(total, unwatched),
                            Contains("gradient") && Contains("source 0 (shape (2,))") && Contains("not watched") &&
                                Contains("test_errors.cpp"));
        unchanged();
    }
    SECTION("numeric_error")
    {
        gt::check_numerics guard;
        const Tensor shifted = w - 2.0f;
        REQUIRE_THROWS_WITH(gt::log(shifted), Contains("log") && Contains("4 of 4 elements NaN or Inf") &&
                                                  Contains("test_errors.cpp"));
        REQUIRE(tape.size() == 3);
        REQUIRE(xt::all(xt::equal(w.value(), 1.5f)));
    }
}
