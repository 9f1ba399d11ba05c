// gradtape's benchmarks: medians of repeated runs and their ratios, measured
// in one run of this program. Run with `meson test -C build --benchmark -v`
// or directly: bench [threads]. Never part of the unit tests.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include <cblas.h>

#include <gradtape/gradtape.hpp>

#include "../../samples/tutorial_data.hpp"

namespace gt = gradtape;

namespace {

// Median wall time of `run`, in nanoseconds, over `repeats` runs after one warm-up.
double median_ns(const std::function<void()>& run, int repeats)
{
    run();
    std::vector<double> times;
    for (int i = 0; i < repeats; ++i) {
        const auto start = std::chrono::steady_clock::now();
        run();
        times.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count());
    }
    std::nth_element(times.begin(), times.begin() + std::ptrdiff_t(times.size() / 2), times.end());
    return times[times.size() / 2];
}

long resident_kib()
{
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

void row(const char* workload, double ours, const char* unit, const char* against = nullptr, double other = 0)
{
    if (against) {
        std::printf("%-46s %12.1f %-6s %-22s %12.1f   ratio %6.2f\n", workload, ours, unit, against, other,
                    ours / other);
    } else {
        std::printf("%-46s %12.1f %-6s\n", workload, ours, unit);
    }
}

// 1. A chain of 100 small elementwise ops, recorded, then the backward pass: ns per op.
double per_op_ns(std::size_t size)
{
    const gt::Tensor x = gt::random_uniform<float>({size}, 0.5f, 1.5f);
    const gt::Tensor scale = gt::fill<float>({size}, 0.999f);
    const gt::Tensor shift = gt::fill<float>({size}, 0.001f);
    const double total = median_ns(
        [&] {
            gt::GradientTape tape;
            tape.watch(x);
            gt::Tensor y = x;
            for (int i = 0; i < 50; ++i) {
                y = y * scale + shift;
            }
            const gt::Tensor gradient = tape.gradient(y, x, scale);
            (void)gradient;
        },
        2000);
    return total / 100;
}

// 2. The tutorial: 50 SGD steps of the linear regression.
double tutorial_ns(const tutorial::data& data)
{
    return median_ns(
        [&] {
            gt::Variable weights(gt::zeros<float>({2, 1}), "weights");
            gt::SGD optimizer(0.002);
            for (int step = 0; step < 50; ++step) {
                gt::GradientTape tape;
                const gt::Tensor loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target);
                optimizer.apply_gradients(tape.gradient(loss, {weights}), {weights});
            }
        },
        200);
}

// The limit for 2: the closed-form gradient input^T (input w - y), by hand, no tape.
double tutorial_by_hand_ns(const tutorial::data& data)
{
    const xt::xarray<float>& input = data.input.value();
    const xt::xarray<float>& target = data.target.value();
    return median_ns(
        [&] {
            float w0 = 0, w1 = 0;
            for (int step = 0; step < 50; ++step) {
                float g0 = 0, g1 = 0;
                for (std::size_t i = 0; i < input.shape()[0]; ++i) {
                    const float error = input(i, 0) * w0 + input(i, 1) * w1 - target(i, 0);
                    g0 += input(i, 0) * error;
                    g1 += input(i, 1) * error;
                }
                w0 -= 0.002f * g0;
                w1 -= 0.002f * g1;
            }
            volatile float keep = w0 + w1;
            (void)keep;
        },
        200);
}

// 3. One MLP training step: batch 128, 784-256-10, relu, sparse softmax cross-entropy, SGD.
double mlp_step_ns()
{
    const gt::Tensor images = gt::random_uniform<float>({128, 784});
    xt::xarray<std::int64_t> labels = xt::zeros<std::int64_t>({128});
    for (std::size_t i = 0; i < 128; ++i) {
        labels(i) = std::int64_t(i % 10);
    }
    gt::Variable w1(gt::random_normal<float>({784, 256}, 0.0f, 0.05f), "w1");
    gt::Variable b1(gt::zeros<float>({256}), "b1");
    gt::Variable w2(gt::random_normal<float>({256, 10}, 0.0f, 0.05f), "w2");
    gt::Variable b2(gt::zeros<float>({10}), "b2");
    gt::SGD optimizer(0.01);
    return median_ns(
        [&] {
            optimizer.minimize(
                [&] {
                    const gt::Tensor hidden = gt::relu(gt::matmul(images, w1) + b1);
                    return gt::reduce_mean(
                        gt::sparse_softmax_cross_entropy_with_logits(labels, gt::matmul(hidden, w2) + b2));
                },
                {w1, b1, w2, b2});
        },
        50);
}

// 4. matmul 1024 x 1024, forward and backward, beside the three sgemm calls it needs.
std::pair<double, double> matmul_ns()
{
    constexpr int n = 1024;
    const gt::Tensor a = gt::random_uniform<float>({n, n});
    const gt::Tensor b = gt::random_uniform<float>({n, n});
    const gt::Tensor seed = gt::random_uniform<float>({n, n});
    const double ours = median_ns(
        [&] {
            gt::GradientTape tape;
            tape.watch(a);
            tape.watch(b);
            const auto gradients = tape.gradient(gt::matmul(a, b), {a, b}, seed);
            (void)gradients;
        },
        7);
    std::vector<float> c(n * n), ga(n * n), gb(n * n);
    const float* pa = a.value().data();
    const float* pb = b.value().data();
    const float* pg = seed.value().data();
    const double raw = median_ns(
        [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, pa, n, pb, n, 0, c.data(), n);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, pg, n, pb, n, 0, ga.data(), n);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1, pa, n, pg, n, 0, gb.data(), n);
        },
        7);
    return {ours, raw};
}

// 6. Resident memory over 100,000 tutorial steps: after the first thousand, and at the end.
std::pair<long, long> tutorial_rss_kib(const tutorial::data& data)
{
    gt::Variable weights(gt::zeros<float>({2, 1}), "weights");
    gt::SGD optimizer(0.002);
    long after_warmup = 0;
    for (int step = 0; step < 100000; ++step) {
        gt::GradientTape tape;
        const gt::Tensor loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target);
        optimizer.apply_gradients(tape.gradient(loss, {weights}), {weights});
        if (step == 999) {
            after_warmup = resident_kib();
        }
    }
    return {after_warmup, resident_kib()};
}

}  // namespace

int main(int argc, char** argv)
{
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
    std::printf("gradtape benchmarks, OpenBLAS threads: %d (medians of repeated runs, one process)\n\n", threads);

    row("1. per op, 100 recorded ops on 16 floats", per_op_ns(16), "ns/op");
    row("1. per op, 100 recorded ops on 1024 floats", per_op_ns(1024), "ns/op");
    const tutorial::data data = tutorial::make_data(2);
    row("2. tutorial, 50 SGD steps", tutorial_ns(data) / 1e3, "us", "hand-written (no tape)",
        tutorial_by_hand_ns(data) / 1e3);
    row("3. MLP step, batch 128, 784-256-10", mlp_step_ns() / 1e6, "ms");
    const auto [ours, raw] = matmul_ns();
    row("4. matmul 1024^2 forward + backward", ours / 1e6, "ms", "three cblas_sgemm", raw / 1e6);
    const auto [early, late] = tutorial_rss_kib(data);
    std::printf("%-46s %12ld KiB after 1,000 steps, %ld KiB after 100,000: growth %ld KiB\n",
                "6. resident memory, tutorial steps", early, late, late - early);
}
