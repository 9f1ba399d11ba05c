// The tutorial's two programs, checked against the mathematics of least squares.
#include "../samples/tutorial_data.hpp"
#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;

namespace {

// The least-squares weights [intercept, slope] from the normal equations, in double.
std::pair<double, double> least_squares(const xt::xarray<float>& x, const xt::xarray<float>& y)
{
    double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        n += 1;
        sx += x(i);
        sy += y(i);
        sxx += double(x(i)) * x(i);
        sxy += double(x(i)) * y(i);
    }
    const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    return {(sy - slope * sx) / n, slope};
}

double half_squared_error(const xt::xarray<float>& x, const xt::xarray<float>& y, double intercept, double slope)
{
    double total = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double error = intercept + slope * x(i) - y(i);
        total += error * error / 2;
    }
    return total;
}

}  // namespace

TEST_CASE("50 steps of SGD at 0.002 bring the tutorial's loss within 5% of least squares", "[tutorial]")
{
    const std::uint64_t seed = GENERATE(2, 7, 123);
    const tutorial::data data = tutorial::make_data(seed);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(0.002);
    Tensor loss;
    for (int step = 0; step < 50; ++step) {
        gt::GradientTape tape;
        loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target);
        optimizer.apply_gradients(tape.gradient(loss, {weights}), {weights});
    }
    const auto [intercept, slope] = least_squares(data.x.value(), data.y.value());
    const double optimum = half_squared_error(data.x.value(), data.y.value(), intercept, slope);
    const double final_loss = half_squared_error(data.x.value(), data.y.value(), weights.value()(0, 0),
                                                 weights.value()(1, 0));
    CAPTURE(seed, optimum, final_loss, loss.item());
    REQUIRE(final_loss <= 1.05 * optimum);
    REQUIRE(final_loss >= optimum * (1 - 1e-6));
}

TEST_CASE("the tape's gradient equals the tutorial's hand-derived gradient", "[tutorial]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    for (int step = 0; step < 50; ++step) {
        gt::GradientTape tape;
        const Tensor yerror = gt::matmul(data.input, weights) - data.target;
        const Tensor loss = 0.5f * gt::reduce_sum(yerror * yerror);
        const Tensor by_hand = gt::reduce_sum(gt::transpose(data.input * yerror), {1}, true);
        const Tensor by_tape = tape.gradient(loss, weights);
        REQUIRE(by_tape.shape() == gt::shape_type{2, 1});
        // Relative to the sum of the magnitudes of the 50 terms: near the
        // optimum they cancel, and float32 sums in another order (BLAS against
        // reduce_sum) differ by that much, whatever the gradient's own size.
        for (std::size_t i = 0; i < 2; ++i) {
            float scale = 0;
            for (std::size_t row = 0; row < yerror.size(); ++row) {
                scale += std::abs(data.input.value()(row, i) * yerror.value()(row, 0));
            }
            CAPTURE(step, i, by_tape.value()(i, 0), by_hand.value()(i, 0));
            REQUIRE(std::abs(by_tape.value()(i, 0) - by_hand.value()(i, 0)) <= 1e-5f * scale);
        }
        weights.assign_sub(0.002f * by_hand);
    }
}
