// Threads: each thread records on its own tapes and draws from its own
// generator, so models trained at once on eight threads come out bit for bit
// as when trained one after another. Tensors are immutable and safe to share
// read-only. A variable is not synchronised: see "two threads updating one
// variable" below for what that means and how to share one.
#include <array>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;

namespace {

struct training_run {
    std::vector<float> losses;
    std::vector<float> weights;
};

// A 4-16-3 classifier with dropout and Adam, seeded by `seed`; `inputs` and
// `labels` are shared by every run.
training_run train_classifier(std::uint64_t seed, const Tensor& inputs, const xt::xarray<std::int64_t>& labels,
                              int steps)
{
    gt::set_seed(seed);
    gt::Variable w1(gt::glorot_uniform<float>({4, 16}), "w1");
    gt::Variable b1(gt::zeros<float>({16}), "b1");
    gt::Variable w2(gt::glorot_uniform<float>({16, 3}), "w2");
    gt::Adam optimizer(0.01);
    training_run run;
    for (int step = 0; step < steps; ++step) {
        const Tensor loss = optimizer.minimize(
            [&] {
                const Tensor hidden = gt::dropout(gt::tanh(gt::matmul(inputs, w1) + b1), 0.1);
                return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, gt::matmul(hidden, w2)));
            },
            {w1, b1, w2});
        run.losses.push_back(loss.item());
    }
    for (const auto* variable : {&w1, &b1, &w2}) {
        run.weights.insert(run.weights.end(), variable->value().begin(), variable->value().end());
    }
    return run;
}

}  // namespace

TEST_CASE("eight models trained at once on eight threads equal, bit for bit, the same trained one after another",
          "[threads]")
{
    constexpr int models = 8;
    constexpr int steps = 2000;
    gt::set_seed(7);
    const Tensor inputs = gt::random_normal<float>({64, 4});
    xt::xarray<std::int64_t> labels = xt::zeros<std::int64_t>({64});
    for (std::size_t i = 0; i < 64; ++i) {
        labels(i) = inputs.value()(i, 0) > 0 ? 2 : std::int64_t(i % 2);
    }

    std::vector<training_run> one_after_another;
    for (int m = 0; m < models; ++m) {
        one_after_another.push_back(train_classifier(100 + m, inputs, labels, steps));
    }
    std::vector<training_run> at_once(models);
    std::vector<std::thread> threads;
    for (int m = 0; m < models; ++m) {
        threads.emplace_back([&, m] { at_once[m] = train_classifier(100 + m, inputs, labels, steps); });
    }
    for (auto& thread : threads) {
        thread.join();
    }

    for (int m = 0; m < models; ++m) {
        INFO("model " << m);
        REQUIRE(at_once[m].losses.size() == std::size_t(steps));
        REQUIRE(at_once[m].losses == one_after_another[m].losses);
        REQUIRE(at_once[m].weights == one_after_another[m].weights);
        // Training did something, and the seeds made the models differ.
        REQUIRE(at_once[m].losses.back() < 0.5f * at_once[m].losses.front());
        REQUIRE(at_once[m].weights != at_once[(m + 1) % models].weights);
    }
}

TEST_CASE("tensors and a variable shared read-only give every thread the right gradient", "[threads]")
{
    const Tensor x = gt::linspace<float>(-1, 1, 16);
    const gt::Variable w(gt::fill<float>({16}, 0.5f), "shared_w");
    std::vector<int> wrong(8, -1);
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            int mismatches = 0;
            for (int step = 0; step < 500; ++step) {
                gt::GradientTape tape;
                tape.watch(x);
                const Tensor loss = gt::reduce_sum(gt::square(x * w));
                const auto gradients = tape.gradient(loss, std::vector<Tensor>{x, w});
                // d/dx = 2 x w^2 and d/dw = 2 w x^2, exactly representable here.
                mismatches += !xt::all(xt::equal(gradients[0].value(), 2.f * x.value() * 0.25f));
                mismatches += !xt::all(xt::equal(gradients[1].value(), 2.f * 0.5f * x.value() * x.value()));
            }
            wrong[t] = mismatches;
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    REQUIRE(wrong == std::vector<int>(8, 0));
}

// Two threads updating one variable: its values are not synchronised (as in
// TensorFlow and PyTorch), so reads and updates from several threads need the
// caller's lock. Under the lock, take a snapshot (a Tensor copied from the
// variable keeps the value of that moment and still leads gradients to the
// variable), compute with it outside the lock, and apply under the lock.
TEST_CASE("two threads updating one variable under the caller's lock lose no update", "[threads]")
{
    // The gradient of sum(w * c) is c whatever w is, and every quantity is a
    // power of two: after n updates of 0.5 * 0.25 each, w is exactly 1000 - n / 8.
    gt::Variable w(gt::fill<float>({4}, 1000.f), "shared_w");
    const Tensor c = gt::fill<float>({4}, 0.25f);
    std::mutex lock;
    constexpr int steps = 1000;
    const auto train = [&] {
        gt::SGD optimizer(0.5);
        for (int step = 0; step < steps; ++step) {
            gt::GradientTape tape;
            Tensor snapshot;
            {
                const std::scoped_lock hold(lock);
                snapshot = w;
            }
            const Tensor loss = gt::reduce_sum(snapshot * c);
            const auto gradients = tape.gradient(loss, std::vector<gt::Variable>{w});
            const std::scoped_lock hold(lock);
            optimizer.apply_gradients(gradients, {w});
        }
    };
    std::thread first(train);
    std::thread second(train);
    first.join();
    second.join();
    REQUIRE(xt::all(xt::equal(w.value(), 1000.f - 2 * steps / 8.f)));
}

// Without the lock the updates race on the values (Hogwild): some may be
// lost, but the tapes, which are per thread, stay whole and nothing crashes.
// Left out of the thread-sanitizer run, which reports that race by design.
TEST_CASE("two threads updating one variable without a lock neither crash nor break their tapes",
          "[threads][hogwild]")
{
    gt::Variable w(gt::fill<float>({256}, 1.f), "shared_w");
    std::vector<int> bad_gradients(2, -1);
    const auto train = [&](int t) {
        gt::SGD optimizer(1e-4);
        int bad = 0;
        for (int step = 0; step < 500; ++step) {
            gt::GradientTape tape;
            const Tensor snapshot = w;
            const Tensor loss = gt::reduce_sum(gt::square(snapshot));
            bad += tape.size() != 2;
            const Tensor gradient = tape.gradient(loss, w);
            bad += !xt::all(xt::equal(gradient.value(), 2.f * snapshot.value()));
            optimizer.apply_gradients<float>({gradient}, {w});
        }
        bad_gradients[t] = bad;
    };
    std::thread first(train, 0);
    std::thread second(train, 1);
    first.join();
    second.join();
    REQUIRE(bad_gradients == std::vector<int>{0, 0});
    REQUIRE(xt::all(xt::isfinite(w.value())));
    REQUIRE(xt::all(w.value() < 1.f));
}

TEST_CASE("a pause or a numeric check released on another thread ends the switch of the thread that made it",
          "[threads]")
{
    const gt::Tensor64 x = 2.0;
    gt::GradientTape tape;
    tape.watch(x);
    auto pause = std::make_unique<gt::recording_pause>();
    auto checks = std::make_unique<gt::check_numerics>();
    (void)(x * x);
    REQUIRE(tape.size() == 0);
    std::size_t recorded_there = 0;
    bool checked_there = false;
    std::thread([&] {
        gt::GradientTape own;
        own.watch(x);
        // The other thread records, and checks nothing, while this one is paused
        // and checked; releasing this thread's guards there leaves its own state alone.
        (void)(x * x);
        pause.reset();
        checks.reset();
        (void)(x * x);
        recorded_there = own.size();
        try {
            (void)gt::log(gt::Tensor64(-1.0));
        } catch (const gt::numeric_error&) {
            checked_there = true;
        }
    }).join();
    REQUIRE(recorded_there == 2);
    REQUIRE_FALSE(checked_there);
    // This thread records again and checks no more.
    (void)(x * x);
    REQUIRE(tape.size() == 1);
    REQUIRE_NOTHROW(gt::log(gt::Tensor64(-1.0)));
}

TEST_CASE("a built layer shared by threads gives each call its own output, whatever the input's rank", "[threads]")
{
    gt::set_seed(5);
    gt::Dense shared(3, {.activation = "tanh"});
    gt::Sequential first({shared, gt::Dense(2)}, "first");
    gt::Sequential second({gt::Dense(4), shared}, "second");
    (void)first(gt::zeros<float>({1, 4}));
    (void)second(gt::zeros<float>({1, 4}));
    const std::array<Tensor, 2> inputs{gt::random_normal<float>({2, 1, 3, 1, 4}),
                                       gt::random_normal<float>({1, 2, 1, 2, 1, 1, 3, 4})};
    const auto step = [&](int t) {
        gt::GradientTape tape;
        const Tensor direct = shared(inputs[t]);
        const Tensor loss = gt::reduce_sum(first(inputs[t])) + gt::reduce_sum(second(inputs[t]));
        return std::pair{direct.value(), tape.gradient(loss, shared.trainable_variables()[0]).value()};
    };
    const std::array<std::pair<xt::xarray<float>, xt::xarray<float>>, 2> expected{step(0), step(1)};
    std::array<int, 2> wrong{-1, -1};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            int mismatches = 0;
            for (int call = 0; call < 200; ++call) {
                mismatches += step(t) != expected[std::size_t(t)];
            }
            wrong[std::size_t(t)] = mismatches;
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    REQUIRE(wrong == std::array<int, 2>{0, 0});
    REQUIRE(expected[0].first.shape() == gt::shape_type{2, 1, 3, 1, 3});
    REQUIRE(expected[1].first.shape() == gt::shape_type{1, 2, 1, 2, 1, 1, 3, 3});
}
