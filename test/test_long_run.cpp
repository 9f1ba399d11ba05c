// A long run of the tutorial's training step: between steps nothing the tape
// recorded survives, and resident memory stays flat.
#include <memory>

#include "core/tensor_access.hpp"
#include "../samples/tutorial_data.hpp"
#include "bench/harness.hpp"
#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;

namespace {

#if defined(__SANITIZE_ADDRESS__)
// AddressSanitizer keeps freed memory in quarantine: resident memory grows by design.
constexpr bool rss_is_meaningful = false;
#else
constexpr bool rss_is_meaningful = true;
#endif

}  // namespace

TEST_CASE("100,000 tutorial steps leave nothing on the tape between steps and keep memory flat", "[long-run]")
{
    const tutorial::data data = tutorial::make_data(3);
    gt::Variable weights(gt::zeros<float>({2, 1}), "weights");
    gt::SGD optimizer(0.002);
    const float* weights_buffer = weights.value().data();
    const auto& weights_storage = gt::detail::tensor_access::node(weights);

    long after_warmup = 0;
    long steps_leaving_something = 0;
    for (int step = 0; step < 100'000; ++step) {
        std::weak_ptr<const void> loss_node;
        {
            gt::GradientTape tape;
            const Tensor loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target);
            loss_node = gt::detail::tensor_access::node(loss);
            optimizer.apply_gradients(tape.gradient(loss, {weights}), {weights});
        }
        // Nothing but the variable holds its value between steps, so every
        // update wrote in place, into the buffer the variable started with.
        steps_leaving_something += !loss_node.expired() || weights_storage->current.use_count() != 1 ||
                                   weights.value().data() != weights_buffer;
        if (step == 999) {
            after_warmup = bench::resident_kib();
        }
    }
    const long growth = bench::resident_kib() - after_warmup;

    REQUIRE(steps_leaving_something == 0);
    REQUIRE(optimizer.iterations() == 100'000);
    // The fit is the least-squares one: X^T X w = X^T y, solved for the two weights by Cramer's rule.
    double n = 0, sx = 0, sxx = 0, sy = 0, sxy = 0;
    for (std::size_t i = 0; i < data.x.size(); ++i) {
        const double x = data.x.value()(i), y = data.y.value()(i);
        n += 1, sx += x, sxx += x * x, sy += y, sxy += x * y;
    }
    const double determinant = n * sxx - sx * sx;
    REQUIRE(weights.value()(0, 0) == Approx((sxx * sy - sx * sxy) / determinant).epsilon(1e-3));
    REQUIRE(weights.value()(1, 0) == Approx((n * sxy - sx * sy) / determinant).epsilon(1e-3));
    if (rss_is_meaningful) {
        INFO("resident memory after 1,000 steps " << after_warmup << " KiB, growth " << growth << " KiB");
        REQUIRE(growth < 1024);
    } else {
        WARN("resident memory not checked under AddressSanitizer, whose quarantine holds freed memory");
    }
}
