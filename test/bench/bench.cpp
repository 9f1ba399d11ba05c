// gradtape's benchmarks: medians of repeated runs and their ratios, measured
// in one run of this program. Run with `meson compile -C build bench_1_thread`
// (or bench_2_threads), or directly: bench [threads]. Never part of the unit tests.
#include <cstdio>
#include <array>
#include <utility>
#include <cstdlib>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <cblas.h>

#include <gradtape/gradtape.hpp>

#include "../../samples/tutorial_data.hpp"
#include "../fuzz/allocation_meter.hpp"
#include "commit.hpp"
#include "harness.hpp"
#if GRADTAPE_BENCH_LIBTORCH
#include "libtorch.hpp"
#endif

namespace gt = gradtape;
using bench::median_ns;
using bench::resident_kib;

namespace {

// One line of the report: our figure, the one it is compared with, their
// ratio, and the goal for that ratio where there is one.
void row(const char* workload, const char* unit, double ours, const char* beside = nullptr, double other = 0,
         double goal = 0)
{
    if (!beside) {
        std::printf("| %s | %.1f %s | | | |\n", workload, ours, unit);
        return;
    }
    const double ratio = ours / other;
    char goal_text[32] = "";
    if (goal > 0) {
        std::snprintf(goal_text, sizeof goal_text, "<= %g: %s", goal, ratio <= goal ? "met" : "missed");
    }
    std::printf("| %s | %.1f %s | %s %.1f %s | %.2f | %s |\n", workload, ours, unit, beside, other, unit, ratio,
                goal_text);
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

// 2. The same 50 steps, captured once and replayed.
auto captured_tutorial(const tutorial::data& data, gt::Variable& weights, gt::SGD& optimizer)
{
    return gt::capture([&] {
        return optimizer.minimize([&] { return gt::l2_loss(gt::matmul(data.input, weights) - data.target); },
                                  {weights});
    });
}

double tutorial_replayed_ns(const tutorial::data& data)
{
    gt::Variable weights(gt::zeros<float>({2, 1}), "weights");
    gt::SGD optimizer(0.002);
    auto step = captured_tutorial(data, weights, optimizer);
    return median_ns(
        [&] {
            for (int i = 0; i < 50; ++i) {
                (void)step();
            }
        },
        200);
}

template <class Run>
double allocations_per_call(Run&& run, int calls);

// Allocations per replayed tutorial step, over 100 replays.
double tutorial_replay_allocations(const tutorial::data& data)
{
    gt::Variable weights(gt::zeros<float>({2, 1}), "weights");
    gt::SGD optimizer(0.002);
    auto step = captured_tutorial(data, weights, optimizer);
    return allocations_per_call([&] { (void)step(); }, 100);
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

// Allocations per call of `run`, over `calls` calls after two: heap blocks
// (malloc and its kin, allocation_meter) and tensor blocks (the cache's count).
template <class Run>
double allocations_per_call(Run&& run, int calls)
{
    run();
    run();
    const std::uint64_t tensors = gt::memory_info().allocations;
    const std::uint64_t heap = allocation_meter::blocks();
    for (int i = 0; i < calls; ++i) {
        run();
    }
    return double(allocation_meter::blocks() - heap + gt::memory_info().allocations - tensors) / calls;
}

// 3. One MLP training step: batch 128, 784-256-10, relu, sparse softmax cross-entropy, SGD.
struct mlp_training {
    gt::Tensor images = gt::random_uniform<float>({128, 784});
    xt::xarray<std::int64_t> labels = [] {
        xt::xarray<std::int64_t> made = xt::zeros<std::int64_t>({128});
        for (std::size_t i = 0; i < 128; ++i) {
            made(i) = std::int64_t(i % 10);
        }
        return made;
    }();
    gt::Variable w1{gt::random_normal<float>({784, 256}, 0.0f, 0.05f), "w1"};
    gt::Variable b1{gt::zeros<float>({256}), "b1"};
    gt::Variable w2{gt::random_normal<float>({256, 10}, 0.0f, 0.05f), "w2"};
    gt::Variable b2{gt::zeros<float>({10}), "b2"};
    gt::SGD optimizer{0.01};

    gt::Tensor operator()(const gt::Tensor& x, const xt::xarray<std::int64_t>& y)
    {
        return optimizer.minimize(
            [&] {
                const gt::Tensor hidden = gt::relu(gt::matmul(x, w1) + b1);
                return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(y, gt::matmul(hidden, w2) + b2));
            },
            {w1, b1, w2, b2});
    }
};

double mlp_step_ns()
{
    mlp_training step;
    return median_ns([&] { (void)step(step.images, step.labels); }, 50);
}

// The same step, captured once and replayed; and its allocations per replay.
std::pair<double, double> mlp_replayed()
{
    mlp_training step;
    auto replay = gt::capture(
        [&](const gt::Tensor& x, const xt::xarray<std::int64_t>& y) { return step(x, y); });
    const auto run = [&] { (void)replay(step.images, step.labels); };
    return {median_ns(run, 50), allocations_per_call(run, 100)};
}

// The limit for 3: the step's five matrix products alone, by cblas_sgemm:
// the two of the forward pass, and the three of the backward pass that the
// gradients of w2, the hidden layer and w1 need.
double mlp_products_ns()
{
    const std::vector<float> x(128 * 784, 0.5f), w1(784 * 256, 0.01f), w2(256 * 10, 0.01f);
    std::vector<float> hidden(128 * 256), logits(128 * 10), grad_logits(128 * 10, 0.1f), grad_hidden(128 * 256),
        grad_w1(784 * 256), grad_w2(256 * 10);
    return median_ns(
        [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 128, 256, 784, 1, x.data(), 784, w1.data(), 256, 0,
                        hidden.data(), 256);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 128, 10, 256, 1, hidden.data(), 256, w2.data(), 10,
                        0, logits.data(), 10);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 256, 10, 128, 1, hidden.data(), 256,
                        grad_logits.data(), 10, 0, grad_w2.data(), 10);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 128, 256, 10, 1, grad_logits.data(), 10, w2.data(),
                        10, 0, grad_hidden.data(), 256);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 784, 256, 128, 1, x.data(), 784, grad_hidden.data(),
                        256, 0, grad_w1.data(), 256);
        },
        200);
}

// 11. The MLP step of 3 with its network as a Sequential of Dense layers,
// beside the same step with raw variables. Each is timed three times, in
// turn, and the median of each is kept, so that a slow spell of the machine
// falls on both.
std::pair<double, double> layers_vs_raw_ns()
{
    const gt::Tensor images = gt::random_uniform<float>({128, 784});
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(128) % 10;
    gt::Sequential model({gt::Dense(256, {.activation = "relu"}), gt::Dense(10)});
    model.build({128, 784});
    const auto variables = model.trainable_variables();
    gt::SGD optimizer(0.01);
    const auto layered = [&] {
        optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, model(images))); },
            model);
    };
    const auto raw = [&] {
        optimizer.minimize(
            [&] {
                const gt::Tensor hidden = gt::relu(gt::matmul(images, variables[0]) + variables[1]);
                return gt::reduce_mean(
                    gt::sparse_softmax_cross_entropy_with_logits(labels, gt::matmul(hidden, variables[2]) + variables[3]));
            },
            variables);
    };
    std::vector<double> layered_times, raw_times;
    for (int round = 0; round < 3; ++round) {
        raw_times.push_back(median_ns(raw, 50));
        layered_times.push_back(median_ns(layered, 50));
    }
    std::ranges::sort(layered_times);
    std::ranges::sort(raw_times);
    return {layered_times[1], raw_times[1]};
}

// 12. The MLP step of 3 on batches from a prefetching loader over 60,000
// rows, beside the same step on 64 batches gathered beforehand, taken in
// turn: what loading adds to a step. The batches beside are many, so that
// each arrives as cold in the cache as a loaded one: that cost is the data's,
// not the loader's.
std::pair<double, double> loader_ns()
{
    gt::set_seed(1);
    const gt::Tensor images = gt::random_uniform<float>({60000, 784});
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(60000) % 10;
    gt::Sequential model({gt::Dense(256, {.activation = "relu"}), gt::Dense(10)});
    gt::SGD optimizer(0.01);
    const auto step = [&](const gt::Tensor& x, const xt::xarray<std::int64_t>& y) {
        optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(y, model(x))); }, model);
    };
    gt::minibatches<float> batches({images}, {labels}, {.batch_size = 128, .prefetch = 2});
    auto next = batches.begin();
    const double loaded = median_ns(
        [&] {
            if (next == batches.end()) {
                next = batches.begin();
            }
            step(next->tensors[0], next->labels[0]);
            ++next;
        },
        200);
    std::vector<gt::minibatch<float>> gathered;
    for (const auto& batch : batches) {
        gathered.push_back(batch);
        if (gathered.size() == 64) {
            break;
        }
    }
    std::size_t turn = 0;
    const double before = median_ns(
        [&] {
            const auto& batch = gathered[turn++ % gathered.size()];
            step(batch.tensors[0], batch.labels[0]);
        },
        200);
    return {loaded, before};
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

// 7. matmul(x, w) with no tape, w a variable and w a tensor of the same value:
// reading a variable must cost nothing more.
std::pair<double, double> matmul_of_variable_ns()
{
    const gt::Tensor x = gt::random_uniform<float>({32, 256});
    const gt::Tensor w_tensor = gt::random_uniform<float>({256, 128});
    const gt::Variable w_variable(w_tensor, "w");
    const double variable = median_ns([&] { (void)gt::matmul(x, w_variable); }, 2000);
    const double tensor = median_ns([&] { (void)gt::matmul(x, w_tensor); }, 2000);
    return {variable, tensor};
}

// 8. The Fashion-MNIST CNN of the dataset's benchmark (convnet.py): one Adam
// step at batch 100 on random 28x28 images.
// 8. The Fashion-MNIST CNN with raw variables: conv 5x5x32 same, relu,
// max-pool, conv 5x5x64, relu, max-pool, dense 1024 relu, dropout 0.4,
// dense 10.
struct cnn_variables {
    gt::Variable k1{gt::glorot_uniform<float>({5, 5, 1, 32}), "k1"};
    gt::Variable b1{gt::zeros<float>({32}), "b1"};
    gt::Variable k2{gt::glorot_uniform<float>({5, 5, 32, 64}), "k2"};
    gt::Variable b2{gt::zeros<float>({64}), "b2"};
    gt::Variable w3{gt::glorot_uniform<float>({7 * 7 * 64, 1024}), "w3"};
    gt::Variable b3{gt::zeros<float>({1024}), "b3"};
    gt::Variable w4{gt::glorot_uniform<float>({1024, 10}), "w4"};
    gt::Variable b4{gt::zeros<float>({10}), "b4"};

    gt::Tensor logits(const gt::Tensor& images, bool training) const
    {
        const gt::conv2d_options same{.padding = gt::padding::same};
        gt::Tensor h = gt::max_pool2d(gt::relu(gt::conv2d(images, k1, same) + b1));
        h = gt::max_pool2d(gt::relu(gt::conv2d(h, k2, same) + b2));
        h = gt::relu(gt::matmul(gt::reshape(h, {std::ptrdiff_t(images.shape()[0]), -1}), w3) + b3);
        return gt::matmul(training ? gt::dropout(h, 0.4) : h, w4) + b4;
    }
};

struct cnn_training {
    gt::Tensor images = (gt::set_seed(1), gt::random_uniform<float>({100, 28, 28, 1}));
    xt::xarray<std::int64_t> labels = [] {
        xt::xarray<std::int64_t> made = xt::zeros<std::int64_t>({100});
        for (std::size_t i = 0; i < 100; ++i) {
            made(i) = std::int64_t(i % 10);
        }
        return made;
    }();
    cnn_variables cnn;
    gt::Adam optimizer{{.learning_rate = 1e-3}};

    gt::Tensor operator()(const gt::Tensor& x, const xt::xarray<std::int64_t>& y)
    {
        return optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(y, cnn.logits(x, true))); },
            {cnn.k1, cnn.b1, cnn.k2, cnn.b2, cnn.w3, cnn.b3, cnn.w4, cnn.b4});
    }
};

double cnn_step_ns()
{
    cnn_training step;
    return median_ns([&] { (void)step(step.images, step.labels); }, 5);
}

// The same step, captured once and replayed; its allocations per replay; and
// the capturing call itself (a new signature each time, up to the limit).
struct cnn_replay_figures {
    double replayed_ns;
    double allocations;
    double capturing_ns;
};

cnn_replay_figures cnn_replayed()
{
    cnn_training step;
    auto replay = gt::capture(
        [&](const gt::Tensor& x, const xt::xarray<std::int64_t>& y) { return step(x, y); });
    const auto run = [&] { (void)replay(step.images, step.labels); };
    const double replayed = median_ns(run, 5);
    const double allocations = allocations_per_call(run, 10);
    double capturing = 0;
    {
        auto fresh = [&] {
            auto once = gt::capture(
                [&](const gt::Tensor& x, const xt::xarray<std::int64_t>& y) { return step(x, y); });
            (void)once(step.images, step.labels);
        };
        capturing = median_ns(fresh, 5);
    }
    return {replayed, allocations, capturing};
}

// 8. The CNN's inference on 1,000 images, in one batch and in ten of 100:
// a batch of 1,000 holds activations of 100 MiB, past the size where fresh
// memory was mapped for every tensor.
std::pair<double, double> cnn_evaluation_ns()
{
    gt::set_seed(2);
    const gt::Tensor images = gt::random_uniform<float>({1000, 28, 28, 1});
    const cnn_variables cnn;
    const double whole = median_ns([&] { (void)cnn.logits(images, false); }, 5);
    const double in_tens = median_ns(
        [&] {
            for (std::size_t first = 0; first < 1000; first += 100) {
                (void)cnn.logits(gt::slice(images, {first, 0, 0, 0}, {100, -1, -1, -1}), false);
            }
        },
        5);
    return {whole, in_tens};
}

// 13. relu of a float tensor of `mib` MiB into a new tensor: what a step
// pays for each new activation of that size.
double relu_ms(std::size_t mib)
{
    const gt::Tensor x = gt::random_uniform<float>({mib << 18}, -1.f, 1.f);
    return median_ns([&] { (void)gt::relu(x); }, 9) / 1e6;
}

// 9. conv2d forward and backward, same padding, square images.
double conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t filters, std::size_t kernel)
{
    const gt::Tensor input = gt::random_uniform<float>({batch, size, size, channels});
    const gt::Tensor weights = gt::random_uniform<float>({kernel, kernel, channels, filters});
    const gt::Tensor seed = gt::random_uniform<float>({batch, size, size, filters});
    return median_ns(
        [&] {
            gt::GradientTape tape;
            tape.watch(input);
            tape.watch(weights);
            (void)tape.gradient(gt::conv2d(input, weights, {.padding = gt::padding::same}), {input, weights}, seed);
        },
        7);
}

// 9. depthwise_conv2d forward and backward, multiplier 1, same padding.
double depthwise_conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t kernel)
{
    const gt::Tensor input = gt::random_uniform<float>({batch, size, size, channels});
    const gt::Tensor filter = gt::random_uniform<float>({kernel, kernel, channels, 1});
    const gt::Tensor seed = gt::random_uniform<float>({batch, size, size, channels});
    return median_ns(
        [&] {
            gt::GradientTape tape;
            tape.watch(input);
            tape.watch(filter);
            (void)tape.gradient(gt::depthwise_conv2d(input, filter, {.padding = gt::padding::same}), {input, filter},
                                seed);
        },
        7);
}

// 14. The gradient of an LSTM's (or GRU's) last output over a batch of 64
// sequences of 100 steps, 128 features to 256 units: forward and backward.
double recurrent_ns(bool lstm)
{
    gt::set_seed(1);
    const gt::Tensor x = gt::random_uniform<float>({64, 100, 128});
    const gt::basic_recurrent_layer<float> layer =
        lstm ? gt::basic_recurrent_layer<float>(gt::LSTM(256)) : gt::basic_recurrent_layer<float>(gt::GRU(256));
    layer.build(x.shape());
    const std::vector<gt::Variable> weights = layer.trainable_variables();
    return median_ns(
        [&] {
            gt::GradientTape tape;
            const gt::Tensor loss = gt::reduce_sum(layer(x));
            (void)tape.gradient(loss, weights);
        },
        5);
}

// 10. One step of a transformer encoder block, post-norm as PyTorch's
// TransformerEncoderLayer: batch 32, sequence 128, width 128, 4 heads,
// feed-forward 512, no dropout, Adam.
double transformer_step_ns()
{
    gt::set_seed(1);
    constexpr std::ptrdiff_t batch = 32, length = 128, width = 128, heads = 4, ffn = 512;
    const gt::Tensor x = gt::random_uniform<float>({batch, length, width});
    std::vector<gt::Variable> parameters;
    const auto dense = [&](std::size_t in, std::size_t out, const std::string& name) {
        parameters.emplace_back(gt::glorot_uniform<float>({in, out}), name + "/kernel");
        parameters.emplace_back(gt::zeros<float>({out}), name + "/bias");
        return std::pair{parameters[parameters.size() - 2], parameters.back()};
    };
    const auto [wq, bq] = dense(width, width, "q");
    const auto [wk, bk] = dense(width, width, "k");
    const auto [wv, bv] = dense(width, width, "v");
    const auto [wo, bo] = dense(width, width, "o");
    const auto [w1, b1] = dense(width, ffn, "ffn1");
    const auto [w2, b2] = dense(ffn, width, "ffn2");
    for (const char* name : {"norm1", "norm2"}) {
        parameters.emplace_back(gt::ones<float>({width}), std::string(name) + "/gamma");
        parameters.emplace_back(gt::zeros<float>({width}), std::string(name) + "/beta");
    }
    const gt::Variable g1 = parameters[12], be1 = parameters[13], g2 = parameters[14], be2 = parameters[15];
    gt::Adam optimizer({.learning_rate = 1e-3});
    const auto split_heads = [&](const gt::Tensor& t) {
        return gt::transpose(gt::reshape(t, {batch, length, heads, width / heads}), {0, 2, 1, 3});
    };
    return median_ns(
        [&] {
            optimizer.minimize(
                [&] {
                    const gt::Tensor q = split_heads(gt::matmul(x, wq) + bq);
                    const gt::Tensor k = split_heads(gt::matmul(x, wk) + bk);
                    const gt::Tensor v = split_heads(gt::matmul(x, wv) + bv);
                    const gt::Tensor attended = gt::reshape(
                        gt::transpose(gt::scaled_dot_product_attention(q, k, v), {0, 2, 1, 3}), {batch, length, width});
                    const gt::Tensor x1 =
                        gt::layer_normalization(x + gt::matmul(attended, wo) + bo, g1, be1, {.epsilon = 1e-5});
                    const gt::Tensor hidden = gt::relu(gt::matmul(x1, w1) + b1);
                    const gt::Tensor out =
                        gt::layer_normalization(x1 + gt::matmul(hidden, w2) + b2, g2, be2, {.epsilon = 1e-5});
                    return gt::reduce_mean(gt::square(out));
                },
                parameters);
        },
        7);
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

// 15. The MLP loss of 3 (784-256-10, batch 128, its four variables): one
// Hessian-vector product forward over reverse against one gradient, and the
// tangent along a direction in all four against the forward pass alone.
struct mlp_loss {
    mlp_training net;
    std::vector<gt::Variable> variables{net.w1, net.b1, net.w2, net.b2};
    std::vector<gt::Tensor> vectors{gt::random_uniform<float>({784, 256}), gt::random_uniform<float>({256}),
                                    gt::random_uniform<float>({256, 10}), gt::random_uniform<float>({10})};

    gt::Tensor operator()() const
    {
        const gt::Tensor hidden = gt::relu(gt::matmul(net.images, net.w1) + net.b1);
        return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(net.labels, gt::matmul(hidden, net.w2) + net.b2));
    }
};

struct forward_mode_figures {
    double gradient_ns;
    double hvp_ns;
    double forward_ns;
    double jvp_ns;
};

forward_mode_figures forward_mode_ns()
{
    const mlp_loss loss;
    forward_mode_figures figures{};
    figures.gradient_ns = median_ns(
        [&] {
            gt::GradientTape tape;
            (void)tape.gradient(loss(), loss.variables);
        },
        50);
    figures.hvp_ns = median_ns([&] { (void)gt::hvp<float>([&] { return loss(); }, loss.variables, loss.vectors); }, 50);
    figures.forward_ns = median_ns([&] { (void)loss(); }, 50);
    const std::vector<gt::Tensor> primals(loss.variables.begin(), loss.variables.end());
    figures.jvp_ns = median_ns(
        [&] {
            gt::ForwardAccumulator accumulator(primals, loss.vectors);
            (void)accumulator.jvp(loss());
        },
        50);
    return figures;
}

// 16. A 64-layer ReLU MLP (width 256, batch 2048): one gradient of its
// summed square, plain and with each block of 8 layers under
// recompute_grad: time, peak tensor bytes, and whether the gradients are
// bitwise equal.
struct deep_mlp_figures {
    double plain_ns;
    double recomputed_ns;
    std::size_t plain_peak;
    std::size_t recomputed_peak;
    bool equal;
};

deep_mlp_figures deep_mlp()
{
    gt::set_seed(16);
    std::vector<gt::Variable> weights;
    for (int i = 0; i < 64; ++i) {
        weights.emplace_back(gt::random_normal<float>({256, 256}, 0.0f, 0.09f), "w" + std::to_string(i));
    }
    const gt::Tensor input = gt::random_uniform<float>({2048, 256});
    const auto block_of = [&](std::size_t first) {
        return [&weights, first](const gt::Tensor& x) {
            gt::Tensor h = x;
            for (std::size_t i = first; i < first + 8; ++i) {
                h = gt::relu(gt::matmul(h, weights[i]));
            }
            return h;
        };
    };
    std::vector<gt::tensor_function<float>> plain_blocks;
    std::vector<gt::tensor_function<float>> recomputed_blocks;
    for (std::size_t first = 0; first < 64; first += 8) {
        plain_blocks.emplace_back(block_of(first));
        recomputed_blocks.push_back(gt::recompute_grad(block_of(first)));
    }
    const auto gradients = [&](const std::vector<gt::tensor_function<float>>& blocks) {
        gt::GradientTape tape;
        gt::Tensor h = input;
        for (const auto& block : blocks) {
            h = block(h);
        }
        return tape.gradient(gt::reduce_sum(gt::square(h)), weights);
    };
    const auto peak_of = [&](const std::vector<gt::tensor_function<float>>& blocks) {
        const std::size_t before = gt::memory_info().current_bytes;
        gt::reset_peak_memory();
        (void)gradients(blocks);
        return gt::memory_info().peak_bytes - before;
    };
    deep_mlp_figures figures{};
    figures.plain_peak = peak_of(plain_blocks);
    figures.recomputed_peak = peak_of(recomputed_blocks);
    const auto plain = gradients(plain_blocks);
    const auto recomputed = gradients(recomputed_blocks);
    figures.equal = true;
    for (std::size_t i = 0; i < plain.size(); ++i) {
        figures.equal = figures.equal && plain[i].value() == recomputed[i].value();
    }
    figures.plain_ns = median_ns([&] { (void)gradients(plain_blocks); }, 5);
    figures.recomputed_ns = median_ns([&] { (void)gradients(recomputed_blocks); }, 5);
    return figures;
}

void forward_rows()
{
    const forward_mode_figures f = forward_mode_ns();
    row("15. MLP loss HVP, forward over reverse", "us", f.hvp_ns / 1e3, "one gradient", f.gradient_ns / 1e3, 3);
#if GRADTAPE_BENCH_LIBTORCH
    row("15. MLP loss HVP, forward over reverse", "us", f.hvp_ns / 1e3, "LibTorch double backward",
        bench::libtorch::mlp_hvp_ns() / 1e3, 1.0);
#endif
    row("15. MLP loss JVP along all four variables", "us", f.jvp_ns / 1e3, "the forward pass alone",
        f.forward_ns / 1e3, 2.5);
    const deep_mlp_figures d = deep_mlp();
    row("16. 64-layer MLP gradient, blocks of 8 under recompute_grad", "ms", d.recomputed_ns / 1e6, "plain",
        d.plain_ns / 1e6, 1.4);
    row("16. its peak tensor memory", "MiB", double(d.recomputed_peak) / double(1 << 20), "plain",
        double(d.plain_peak) / double(1 << 20), 0.33);
    std::printf("| 16. its gradients bitwise equal to the plain ones | %s | | | |\n", d.equal ? "yes" : "NO");
}

void recurrent_rows()
{
    const double lstm = recurrent_ns(true) / 1e6;
    const double gru = recurrent_ns(false) / 1e6;
#if GRADTAPE_BENCH_LIBTORCH
    row("14. LSTM 64x100x128 to 256, forward + backward", "ms", lstm, "LibTorch nn::LSTM",
        bench::libtorch::recurrent_ns(true) / 1e6, 1.0);
    row("14. GRU 64x100x128 to 256, forward + backward", "ms", gru, "LibTorch nn::GRU",
        bench::libtorch::recurrent_ns(false) / 1e6, 1.0);
#else
    row("14. LSTM 64x100x128 to 256, forward + backward", "ms", lstm);
    row("14. GRU 64x100x128 to 256, forward + backward", "ms", gru);
#endif
}

}  // namespace

// bench [THREADS] [recurrent | forward | overhead]: every row, or only the
// recurrent layers' (14), or only forward mode's and recompute_grad's (15,
// 16), or only the rows that the library's bookkeeping bounds (1, 3, 11), for
// comparing two builds of the library under one bench binary.
int main(int argc, char** argv)
{
    const int threads = argc > 1 ? std::atoi(argv[1]) : 1;
    openblas_set_num_threads(threads);
#if GRADTAPE_BENCH_LIBTORCH
    bench::libtorch::set_threads(threads);
    const bool libtorch = true;
#else
    const bool libtorch = false;
#endif
    const std::time_t now = std::time(nullptr);
    char date[32];
    std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
    std::printf("Measured on %s, %s, %s: %d thread%s, %s kernels, OpenBLAS%s; medians of repeated runs, each "
                "ratio from this run.\n\n",
                GRADTAPE_BENCH_COMMIT, date, bench::processor().c_str(), threads, threads == 1 ? "" : "s",
                std::string(gt::simd_instruction_set()).c_str(), libtorch ? " and LibTorch" : "; LibTorch not built");
    std::printf("| workload | gradtape | beside | ratio | goal |\n| --- | --- | --- | --- | --- |\n");
    if (argc > 2 && std::string_view(argv[2]) == "recurrent") {
        recurrent_rows();
        return 0;
    }
    if (argc > 2 && std::string_view(argv[2]) == "forward") {
        forward_rows();
        return 0;
    }
    if (argc > 2 && std::string_view(argv[2]) == "overhead") {
        row("1. per op, 100 ops on 16 floats", "ns/op", per_op_ns(16));
        row("1. per op, 100 ops on 1024 floats", "ns/op", per_op_ns(1024));
        row("3. MLP step, batch 128, 784-256-10", "us", mlp_step_ns() / 1e3);
        const auto [layered, raw] = layers_vs_raw_ns();
        row("11. MLP step through layers", "us", layered / 1e3, "the same with raw variables", raw / 1e3, 1.02);
        return 0;
    }

    const tutorial::data data = tutorial::make_data(2);
    const double per_op_16 = per_op_ns(16);
    const double per_op_1024 = per_op_ns(1024);
    const double tutorial = tutorial_ns(data) / 1e3;
    const double mlp_eager = mlp_step_ns() / 1e3;
    const auto [matmul, sgemm] = matmul_ns();
#if GRADTAPE_BENCH_LIBTORCH
    row("1. per op, 100 ops on 16 floats", "ns/op", per_op_16, "LibTorch", bench::libtorch::per_op_ns(16), 0.07);
    row("1. per op, 100 ops on 1024 floats", "ns/op", per_op_1024, "LibTorch", bench::libtorch::per_op_ns(1024), 0.12);
    row("2. tutorial, 50 SGD steps", "us", tutorial, "LibTorch",
        bench::libtorch::tutorial_ns(data.input.value().data(), data.target.value().data(), data.input.shape()[0]) / 1e3,
        0.1);
#else
    row("1. per op, 100 ops on 16 floats", "ns/op", per_op_16);
    row("1. per op, 100 ops on 1024 floats", "ns/op", per_op_1024);
#endif
    const double by_hand = tutorial_by_hand_ns(data) / 1e3;
    row("2. tutorial, 50 SGD steps", "us", tutorial, "hand-written, no tape", by_hand);
    row("2. tutorial, 50 SGD steps, replayed", "us", tutorial_replayed_ns(data) / 1e3, "hand-written, no tape", by_hand,
        3);
    row("2. allocations per replayed tutorial step", "", tutorial_replay_allocations(data));
    const auto [mlp_replay, mlp_allocations] = mlp_replayed();
    const double mlp_products = mlp_products_ns() / 1e3;
    row("3. MLP step, eager", "us", mlp_eager, "its five cblas_sgemm alone", mlp_products);
    row("3. MLP step, replayed", "us", mlp_replay / 1e3, "its five cblas_sgemm alone", mlp_products, 1.15);
    row("3. allocations per replayed MLP step", "", mlp_allocations);
#if GRADTAPE_BENCH_LIBTORCH
    const double libtorch_mlp = bench::libtorch::mlp_step_ns() / 1e3;
    row("3. MLP step, batch 128, 784-256-10", "us", mlp_eager, "LibTorch nn::Linear", libtorch_mlp, 0.8);
    row("3. MLP step, replayed", "us", mlp_replay / 1e3, "LibTorch nn::Linear", libtorch_mlp, 0.85);
    row("4. matmul 1024^2 forward + backward", "ms", matmul / 1e6, "LibTorch", bench::libtorch::matmul_ns() / 1e6);
#else
    row("3. MLP step, batch 128, 784-256-10", "us", mlp_eager);
#endif
    row("4. matmul 1024^2 forward + backward", "ms", matmul / 1e6, "three cblas_sgemm", sgemm / 1e6, 1.05);
    const double cnn = cnn_step_ns() / 1e6;
    const cnn_replay_figures cnn_replay = cnn_replayed();
#if GRADTAPE_BENCH_LIBTORCH
    const double libtorch_cnn = bench::libtorch::cnn_step_ns() / 1e6;
    row("8. Fashion-MNIST CNN step, batch 100, Adam", "ms", cnn, "LibTorch", libtorch_cnn, 0.8);
    row("8. Fashion-MNIST CNN step, replayed", "ms", cnn_replay.replayed_ns / 1e6, "LibTorch", libtorch_cnn, 0.7);
#else
    row("8. Fashion-MNIST CNN step, batch 100, Adam", "ms", cnn);
    row("8. Fashion-MNIST CNN step, replayed", "ms", cnn_replay.replayed_ns / 1e6);
#endif
    row("8. CNN capturing call", "ms", cnn_replay.capturing_ns / 1e6, "an eager step", cnn, 2);
    row("8. allocations per replayed CNN step", "", cnn_replay.allocations);
    const auto [evaluation_1000, evaluation_100] = cnn_evaluation_ns();
    row("8. CNN inference, 1,000 images in one batch", "ms", evaluation_1000 / 1e6, "in ten of 100",
        evaluation_100 / 1e6, 1.1);
    for (const auto [batch, size, channels, filters, kernel] :
         {std::array<std::size_t, 5>{100, 28, 1, 32, 5}, {100, 14, 32, 64, 5}, {8, 56, 64, 64, 3}}) {
        char workload[64];
        std::snprintf(workload, sizeof workload, "9. conv2d fwd+bwd %zux%zux%zux%zu, %zux%zu to %zu", batch, size, size,
                      channels, kernel, kernel, filters);
        const double ours = conv2d_ns(batch, size, channels, filters, kernel) / 1e6;
#if GRADTAPE_BENCH_LIBTORCH
        row(workload, "ms", ours, "LibTorch", bench::libtorch::conv2d_ns(batch, size, channels, filters, kernel) / 1e6);
#else
        row(workload, "ms", ours);
#endif
    }
    const double depthwise = depthwise_conv2d_ns(32, 56, 64, 3) / 1e6;
#if GRADTAPE_BENCH_LIBTORCH
    row("9. depthwise_conv2d fwd+bwd 32x56x56x64, 3x3", "ms", depthwise, "LibTorch",
        bench::libtorch::depthwise_conv2d_ns(32, 56, 64, 3) / 1e6);
#else
    row("9. depthwise_conv2d fwd+bwd 32x56x56x64, 3x3", "ms", depthwise);
#endif
    const double transformer = transformer_step_ns() / 1e6;
#if GRADTAPE_BENCH_LIBTORCH
    row("10. transformer block step, 32x128x128, 4 heads", "ms", transformer, "LibTorch",
        bench::libtorch::transformer_step_ns() / 1e6);
#else
    row("10. transformer block step, 32x128x128, 4 heads", "ms", transformer);
#endif
    recurrent_rows();
    forward_rows();
    // Read and written: twice the tensor's bytes.
    const auto gigabytes_per_second = [](std::size_t mib, double ms) { return 2.0 * double(mib << 20) / ms / 1e6; };
    double relu_8 = 0;
    double relu_96 = 0;
    for (const std::size_t mib : {8, 29, 33, 48, 96}) {
        char workload[64];
        std::snprintf(workload, sizeof workload, "13. relu into a new tensor, %zu MiB", mib);
        const double ours = relu_ms(mib);
        (mib == 8 ? relu_8 : relu_96) = ours / double(mib);
#if GRADTAPE_BENCH_LIBTORCH
        row(workload, "GB/s", gigabytes_per_second(mib, ours), "LibTorch",
            gigabytes_per_second(mib, bench::libtorch::relu_ms(mib)));
#else
        row(workload, "GB/s", gigabytes_per_second(mib, ours));
#endif
    }
    row("13. relu time per MiB at 96 MiB, against at 8 MiB", "us/MiB", relu_96 * 1e3, "at 8 MiB", relu_8 * 1e3, 1.25);
    const auto [layered, raw] = layers_vs_raw_ns();
    row("11. MLP step through layers", "us", layered / 1e3, "the same with raw variables", raw / 1e3, 1.02);
    const auto [loaded, before] = loader_ns();
    row("12. MLP step on prefetched batches", "us", loaded / 1e3, "on batches gathered before", before / 1e3, 1.05);
    const auto [of_variable, of_tensor] = matmul_of_variable_ns();
    row("7. matmul (32, 256) x (256, 128), no tape", "us", of_variable / 1e3, "the same of a tensor", of_tensor / 1e3,
        1.1);
    const auto [early, late] = tutorial_rss_kib(data);
    std::printf("\n6. resident memory over 100,000 tutorial steps: %ld KiB after 1,000 steps, %ld KiB at the end: "
                "growth %ld KiB (goal < 1024)\n",
                early, late, late - early);
}
