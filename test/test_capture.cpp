// capture(): replays match eager steps bit for bit, allocate nothing, and
// refuse what a replay could not repeat, leaving everything as it was.
#include <future>
#include <optional>
#include <sstream>
#include <thread>

#include "../samples/tutorial_data.hpp"
#include "support.hpp"

namespace gt = gradtape;
using gt::Tensor;

namespace {

bool same_bits(const xt::xarray<float>& a, const xt::xarray<float>& b)
{
    return a.shape() == b.shape() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
               return std::memcmp(&x, &y, sizeof(float)) == 0;
           });
}

// The tutorial's step, through minimize.
Tensor tutorial_step(gt::SGD& optimizer, const tutorial::data& data, gt::Variable& weights)
{
    return optimizer.minimize([&] { return gt::l2_loss(gt::matmul(data.input, weights) - data.target); },
                              {weights});
}

}  // namespace

TEST_CASE("10,000 replayed tutorial steps match eager ones bit for bit", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::set_seed(1);
    gt::Variable eager_weights = tutorial::make_weights();
    gt::set_seed(1);
    gt::Variable captured_weights = tutorial::make_weights();
    gt::SGD eager_optimizer(0.002);
    gt::SGD captured_optimizer(0.002);
    auto step = gt::capture([&] { return tutorial_step(captured_optimizer, data, captured_weights); });
    for (int i = 0; i < 10000; ++i) {
        const Tensor eager_loss = tutorial_step(eager_optimizer, data, eager_weights);
        const Tensor captured_loss = step();
        REQUIRE(same_bits(captured_loss.value(), eager_loss.value()));
        REQUIRE(same_bits(captured_weights.value(), eager_weights.value()));
    }
    REQUIRE(step.signatures() == 1);
    REQUIRE(captured_optimizer.iterations() == 10000);
}

TEST_CASE("a replay allocates nothing once the caller drops its result", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(0.002);
    auto step = gt::capture([&] { return tutorial_step(optimizer, data, weights); });
    (void)step();
    (void)step();
    const std::uint64_t before = gt::memory_info().allocations;
    for (int i = 0; i < 100; ++i) {
        (void)step();
    }
    REQUIRE(gt::memory_info().allocations == before);
}

TEST_CASE("a result the caller keeps is not overwritten by the next replay", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(0.002);
    auto step = gt::capture([&] { return tutorial_step(optimizer, data, weights); });
    const Tensor first = step();
    const Tensor second = step();
    const Tensor third = step();
    const float kept = second.item();
    (void)step();
    REQUIRE(second.item() == kept);
    REQUIRE(first.item() > second.item());
    REQUIRE(second.item() > third.item());
    REQUIRE(second.id() != third.id());
}

TEST_CASE("arguments are read at every call; their shapes and scalar values make signatures", "[capture]")
{
    gt::Variable scale(gt::fill<float>({1}, 2.0f), "scale");
    auto scaled = gt::capture([&](const Tensor& x, float shift) { return x * scale + shift; });
    for (float first : {1.0f, 5.0f, -3.0f}) {
        const Tensor x = gt::fill<float>({3}, first);
        REQUIRE((scaled(x, 0.5f).value() == xt::xarray<float>{first * 2 + 0.5f, first * 2 + 0.5f, first * 2 + 0.5f}));
    }
    REQUIRE(scaled.signatures() == 1);
    REQUIRE((scaled(gt::fill<float>({2}, 1.0f), 0.5f).value() == xt::xarray<float>{2.5f, 2.5f}));
    REQUIRE((scaled(gt::fill<float>({2}, 1.0f), 1.0f).value() == xt::xarray<float>{3.0f, 3.0f}));
    REQUIRE(scaled.signatures() == 3);
}

TEST_CASE("past max_signatures, new signatures run eagerly after one warning", "[capture]")
{
    auto doubled = gt::capture([](const Tensor& x) { return x + x; }, {.max_signatures = 2});
    std::ostringstream warnings;
    auto* const saved = std::cerr.rdbuf(warnings.rdbuf());
    for (std::size_t n = 1; n <= 4; ++n) {
        REQUIRE((doubled(gt::ones<float>({n})).value() == xt::xarray<float>(xt::ones<float>({n}) * 2.0f)));
    }
    std::cerr.rdbuf(saved);
    REQUIRE(doubled.signatures() == 2);
    const std::string text = warnings.str();
    REQUIRE(text.find("test_capture.cpp") != std::string::npos);
    REQUIRE(text.find("(float32 (1,)) (float32 (2,))") != std::string::npos);
    REQUIRE(text.find("float32 (3,)") != std::string::npos);
    REQUIRE(text.find("float32 (4,)") == std::string::npos);
}

TEST_CASE("reading a value the function computed refuses the capture and caches nothing", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    const xt::xarray<float> before = weights.value();
    gt::SGD optimizer(0.002);
    float seen = 0;
    auto step = gt::capture([&] {
        return optimizer.minimize(
            [&] {
                const Tensor loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target);
                seen = loss.item();
                return loss;
            },
            {weights});
    });
    for (int attempt = 0; attempt < 2; ++attempt) {
        REQUIRE_THROWS_AS(step(), gt::capture_error);
        REQUIRE_THROWS_WITH(step(), Catch::Contains("capture: reads the value of a tensor computed by l2_loss at") &&
                                        Catch::Contains("test_capture.cpp") &&
                                        Catch::Contains("run_functions_eagerly"));
    }
    REQUIRE(step.signatures() == 0);
    REQUIRE(seen == 0);
    REQUIRE((weights.value() == before));
    REQUIRE(optimizer.iterations() == 0);

    gt::run_functions_eagerly(true);
    const Tensor loss = step();
    gt::run_functions_eagerly(false);
    REQUIRE(seen == loss.item());
    REQUIRE(optimizer.iterations() == 1);
    REQUIRE(step.signatures() == 0);
}

TEST_CASE("reading an argument or a variable, or printing, refuses the capture", "[capture]")
{
    gt::Variable weights(gt::ones<float>({2}), "weights");
    auto reads_argument = gt::capture([](const Tensor& x) { return gt::Tensor(x.value() * 2.0f); });
    REQUIRE_THROWS_WITH(reads_argument(gt::ones<float>({2})), Catch::Contains("reads the value of argument 1"));
    auto reads_variable = gt::capture([&] { return gt::Tensor(weights.value() + 1.0f); });
    REQUIRE_THROWS_WITH(reads_variable(), Catch::Contains("reads the value of variable 'weights'"));
    std::ostringstream printed;
    auto prints = gt::capture([&](const Tensor& x) {
        const Tensor y = x * 3.0f;
        printed << y;
        return y;
    });
    REQUIRE_THROWS_AS(prints(gt::ones<float>({2})), gt::capture_error);
    REQUIRE(printed.str().empty());
    REQUIRE(reads_argument.signatures() + reads_variable.signatures() + prints.signatures() == 0);
}

TEST_CASE("a random draw an op reads refuses the capture; one that makes a variable does not", "[capture]")
{
    auto noisy = gt::capture([](const Tensor& x) { return x + gt::random_normal<float>(x.shape()); });
    REQUIRE_THROWS_AS(noisy(gt::ones<float>({8})), gt::capture_error);
    REQUIRE_THROWS_WITH(noisy(gt::ones<float>({8})), Catch::Contains("reads a random draw (random_normal at") &&
                                                         Catch::Contains("test_capture.cpp"));

    std::optional<gt::Variable> made;
    auto builds = gt::capture([&](const Tensor& x) {
        if (!made) {
            made.emplace(gt::random_uniform<float>({4}), "built");
        }
        return x * *made;
    });
    const Tensor first = builds(gt::ones<float>({4}));
    REQUIRE((first.value() == made->value()));
    made->assign(gt::fill<float>({4}, 3.0f));
    REQUIRE((builds(gt::ones<float>({4})).value() == xt::xarray<float>{3, 3, 3, 3}));
    REQUIRE(builds.signatures() == 1);
}

TEST_CASE("dropout draws a new mask at every replay, as eager mode draws it", "[capture]")
{
    const Tensor x = gt::ones<float>({64});
    auto dropped = gt::capture([](const Tensor& input) { return gt::dropout(input, 0.5); });
    std::vector<xt::xarray<float>> eager;
    gt::set_seed(9);
    for (int i = 0; i < 5; ++i) {
        eager.push_back(gt::dropout(x, 0.5).value());
    }
    gt::set_seed(9);
    for (int i = 0; i < 5; ++i) {
        REQUIRE(same_bits(dropped(x).value(), eager[std::size_t(i)]));
    }
    REQUIRE(dropped.signatures() == 1);
    REQUIRE_FALSE((eager[3] == eager[4]));
}

TEST_CASE("variables are written by optimizers and assign*, and made only at the first signature", "[capture]")
{
    gt::Variable total(gt::zeros<float>({2}), "total");
    auto accumulates = gt::capture([&](const Tensor& x) {
        total.assign_add(x * 2.0f);
        total.assign_sub(x);
        return Tensor(total);
    });
    for (float value : {1.0f, 2.0f, 3.0f}) {
        const Tensor seen = accumulates(gt::fill<float>({2}, value));
        REQUIRE((seen.value() == total.value()));
    }
    REQUIRE((total.value() == xt::xarray<float>{6, 6}));
    REQUIRE(accumulates.signatures() == 1);

    support::scratch_directory scratch;
    gt::Variable weights(gt::ones<float>({2}), "weights");
    gt::save_checkpoint(scratch.path / "weights.npz", {weights});
    auto loads = gt::capture([&](const Tensor& x) {
        gt::load_checkpoint(scratch.path / "weights.npz", {weights});
        return x;
    });
    weights.assign(gt::zeros<float>({2}));
    REQUIRE_THROWS_WITH(loads(gt::zeros<float>({2})), Catch::Contains("writes variable 'weights' while recording") &&
                                                          Catch::Contains("test_capture.cpp"));
    REQUIRE((weights.value() == xt::xarray<float>{0, 0}));

    std::vector<gt::Variable> made;
    auto makes = gt::capture([&](const Tensor& x) {
        made.emplace_back(gt::zeros<float>({1}), "made_" + std::to_string(made.size()));
        return x + x;
    });
    (void)makes(gt::ones<float>({1}));
    REQUIRE_THROWS_WITH(makes(gt::ones<float>({2})),
                        Catch::Contains("makes variable 'made_1' while recording a new signature"));
    REQUIRE(makes.signatures() == 1);
}

TEST_CASE("a captured function refuses calls from inside itself and from a second thread", "[capture][threads]")
{
    std::function<Tensor()> inner;
    auto outer = gt::capture([&] { return inner(); });
    inner = [&] { return outer(); };
    REQUIRE_THROWS_WITH(outer(), Catch::Contains("was called from inside itself"));
    REQUIRE(outer.signatures() == 0);

    std::promise<void> entered;
    std::promise<void> released;
    std::shared_future<void> release = released.get_future().share();
    auto waits = gt::capture([&](const Tensor& x) {
        entered.set_value();
        release.wait();
        return x + x;
    });
    std::thread first([&] { (void)waits(gt::ones<float>({2})); });
    entered.get_future().wait();
    REQUIRE_THROWS_WITH(waits(gt::ones<float>({2})), Catch::Contains("called from a second thread while a call runs"));
    released.set_value();
    first.join();
    REQUIRE(waits.signatures() == 1);
}

TEST_CASE("under a tape, a captured function runs eagerly so that the tape records it", "[capture]")
{
    auto squared = gt::capture([](const Tensor& x) { return x * x; });
    const Tensor x = gt::fill<float>({2}, 3.0f);
    (void)squared(x);
    REQUIRE(squared.signatures() == 1);
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor y = squared(x);
    REQUIRE((tape.gradient(gt::reduce_sum(y), x).value() == xt::xarray<float>{6, 6}));
}

TEST_CASE("an error in a replay reads as eager mode's and leaves the variables unchanged", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(gt::sgd_options{.learning_rate = gt::learning_rate_schedule([](std::uint64_t step) {
        return step < 3 ? 0.002 : std::nan("");
    })});
    auto step = gt::capture([&] { return tutorial_step(optimizer, data, weights); });
    for (int i = 0; i < 3; ++i) {
        (void)step();
    }
    const xt::xarray<float> before = weights.value();
    REQUIRE_THROWS_AS(step(), gt::argument_error);
    REQUIRE_THROWS_WITH(step(), Catch::Contains("SGD.apply_gradients: the learning rate at step 3 is nan") &&
                                    Catch::Contains("test_capture.cpp"));
    REQUIRE((weights.value() == before));
    REQUIRE(optimizer.iterations() == 3);
}

TEST_CASE("a captured function prints its recordings: ops, shapes, bytes and lines", "[capture]")
{
    const tutorial::data data = tutorial::make_data(2);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(0.002);
    auto step = gt::capture([&] { return tutorial_step(optimizer, data, weights); });
    (void)step();
    (void)step();
    std::ostringstream printed;
    printed << step;
    const std::string text = printed.str();
    INFO(text);
    REQUIRE(text.find("1 signature") != std::string::npos);
    REQUIRE(text.find("replayed 1 times") != std::string::npos);
    REQUIRE(text.find("read -> 'weights' (2, 1) float32") != std::string::npos);
    REQUIRE(text.find("matmul constant (50, 2) float32, 'weights' (2, 1) float32 -> (50, 1) float32 (200 B) at") !=
            std::string::npos);
    REQUIRE(text.find("(backward of matmul)") != std::string::npos);
    REQUIRE(text.find("SGD.apply_gradients (2, 1) float32 at") != std::string::npos);
    REQUIRE(text.find("test_capture.cpp") != std::string::npos);
}

namespace {

struct perceptron {
    gt::Variable w1;
    gt::Variable b1;
    gt::Variable w2;
    gt::Variable b2;

    explicit perceptron(std::uint64_t seed)
        : w1((gt::set_seed(seed), gt::glorot_uniform<float>({20, 16})), "w1"),
          b1(gt::zeros<float>({16}), "b1"),
          w2(gt::glorot_uniform<float>({16, 5}), "w2"),
          b2(gt::zeros<float>({5}), "b2")
    {
    }
    Tensor loss(const Tensor& x, const xt::xarray<std::int64_t>& labels) const
    {
        const Tensor hidden = gt::relu(gt::matmul(x, w1) + b1);
        return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, gt::matmul(hidden, w2) + b2));
    }
    std::vector<gt::Variable> variables() const { return {w1, b1, w2, b2}; }
};

}  // namespace

TEST_CASE("1,000 replayed MLP steps, labels and ReLU masks changing, match eager ones bit for bit", "[capture]")
{
    gt::set_seed(11);
    const xt::xarray<float> inputs = gt::random_normal<float>({70, 20}).value();
    xt::xarray<std::int64_t> all_labels = xt::xarray<std::int64_t>::from_shape({70});
    for (std::size_t i = 0; i < all_labels.size(); ++i) {
        all_labels(i) = std::int64_t((i * 7 + i / 3) % 5);
    }
    // Batches of 32, 32 and 6 rows: the last, smaller one is a signature of its own.
    std::vector<std::pair<Tensor, xt::xarray<std::int64_t>>> batches;
    for (std::size_t start = 0; start < 70; start += 32) {
        const std::size_t rows = std::min<std::size_t>(32, 70 - start);
        batches.emplace_back(Tensor(xt::xarray<float>(xt::view(inputs, xt::range(start, start + rows)))),
                             xt::xarray<std::int64_t>(xt::view(all_labels, xt::range(start, start + rows))));
    }
    perceptron eager(5);
    perceptron captured(5);
    gt::SGD eager_optimizer(gt::sgd_options{.learning_rate = 0.05, .momentum = 0.9});
    gt::SGD captured_optimizer(gt::sgd_options{.learning_rate = 0.05, .momentum = 0.9});
    auto step = gt::capture([&](const Tensor& x, const xt::xarray<std::int64_t>& labels) {
        return captured_optimizer.minimize([&] { return captured.loss(x, labels); }, captured.variables());
    });
    for (int i = 0; i < 1000; ++i) {
        const auto& [x, labels] = batches[std::size_t(i) % batches.size()];
        const Tensor eager_loss =
            eager_optimizer.minimize([&] { return eager.loss(x, labels); }, eager.variables());
        const Tensor captured_loss = step(x, labels);
        REQUIRE(same_bits(captured_loss.value(), eager_loss.value()));
        for (std::size_t v = 0; v < 4; ++v) {
            REQUIRE(same_bits(captured.variables()[v].value(), eager.variables()[v].value()));
        }
    }
    REQUIRE(step.signatures() == 2);
    xt::xarray<std::int64_t> wrong = batches[0].second;
    wrong(3) = 5;
    const xt::xarray<float> before = captured.w1.value();
    REQUIRE_THROWS_WITH(step(batches[0].first, wrong),
                        Catch::Contains("sparse_softmax_cross_entropy_with_logits: label 5 is not a class index in "
                                        "[0, 5)") &&
                            Catch::Contains("test_capture.cpp"));
    REQUIRE((captured.w1.value() == before));
}

TEST_CASE("replayed MLP steps allocate nothing, with momentum or Adam's decay", "[capture]")
{
    gt::set_seed(3);
    const Tensor x = gt::random_normal<float>({32, 20});
    xt::xarray<std::int64_t> labels = xt::xarray<std::int64_t>::from_shape({32});
    for (std::size_t i = 0; i < labels.size(); ++i) {
        labels(i) = std::int64_t(i % 5);
    }
    perceptron model(4);
    gt::SGD momentum(gt::sgd_options{.learning_rate = 0.01, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-4});
    gt::Adam adam(gt::adam_options{.learning_rate = 0.001, .weight_decay = 1e-4});
    for (gt::optimizer* optimizer : std::initializer_list<gt::optimizer*>{&momentum, &adam}) {
        auto step = gt::capture([&](const Tensor& batch, const xt::xarray<std::int64_t>& batch_labels) {
            return optimizer->minimize([&] { return model.loss(batch, batch_labels); }, model.variables());
        });
        (void)step(x, labels);
        (void)step(x, labels);
        const std::uint64_t before = gt::memory_info().allocations;
        for (int i = 0; i < 20; ++i) {
            (void)step(x, labels);
        }
        REQUIRE(gt::memory_info().allocations == before);
    }
}

TEST_CASE("50 replayed CNN steps with dropout and batch normalization match eager ones bit for bit", "[capture]")
{
    const auto convnet = [] {
        const gt::conv_options same{.padding = gt::padding::same, .activation = "relu"};
        return gt::Sequential({gt::Conv2D(4, {3, 3}, same), gt::BatchNormalization(), gt::MaxPool2D(),
                               gt::Conv2D(8, {3, 3}, same), gt::MaxPool2D(), gt::Flatten(),
                               gt::Dense(16, {.activation = "relu"}), gt::Dropout(0.4), gt::Dense(3)},
                              "convnet");
    };
    gt::set_seed(21);
    const Tensor images = gt::random_uniform<float>({24, 8, 8, 1});
    xt::xarray<std::int64_t> labels = xt::xarray<std::int64_t>::from_shape({24});
    for (std::size_t i = 0; i < labels.size(); ++i) {
        labels(i) = std::int64_t((i * 5) % 3);
    }
    gt::set_seed(2);
    gt::Sequential eager = convnet();
    eager.build({1, 8, 8, 1});
    gt::set_seed(2);
    gt::Sequential captured = convnet();
    captured.build({1, 8, 8, 1});
    gt::Adam eager_optimizer({.learning_rate = 0.01});
    gt::Adam captured_optimizer({.learning_rate = 0.01});
    auto step = gt::capture([&](const Tensor& batch, const xt::xarray<std::int64_t>& batch_labels) {
        return captured_optimizer.minimize(
            [&] {
                return gt::reduce_mean(
                    gt::sparse_softmax_cross_entropy_with_logits(batch_labels, captured(batch, true)));
            },
            captured);
    });
    gt::minibatches<float> batches({images}, {labels}, {.batch_size = 8});
    for (int steps = 0; steps < 50;) {
        // Both draw their shuffles and dropout masks from one generator: each step's draws are made
        // from the same state for the eager model and for the captured one.
        for (const auto& batch : batches) {
            const std::vector<std::uint64_t> state = gt::random_state();
            const Tensor eager_loss = eager_optimizer.minimize(
                [&] {
                    return gt::reduce_mean(
                        gt::sparse_softmax_cross_entropy_with_logits(batch.labels[0], eager(batch.tensors[0], true)));
                },
                eager);
            gt::set_random_state(state);
            const Tensor captured_loss = step(batch.tensors[0], batch.labels[0]);
            REQUIRE(same_bits(captured_loss.value(), eager_loss.value()));
            const auto eager_variables = eager.variables();
            const auto captured_variables = captured.variables();
            for (std::size_t v = 0; v < eager_variables.size(); ++v) {
                REQUIRE(same_bits(captured_variables[v].value(), eager_variables[v].value()));
            }
            ++steps;
        }
    }
    REQUIRE(step.signatures() == 1);
    const Tensor batch = gt::slice(images, {0, 0, 0, 0}, {8, -1, -1, -1});
    const xt::xarray<std::int64_t> batch_labels = xt::view(labels, xt::range(0, 8));
    const std::uint64_t before = gt::memory_info().allocations;
    for (int i = 0; i < 5; ++i) {
        (void)step(batch, batch_labels);
    }
    REQUIRE(gt::memory_info().allocations == before);
}

TEST_CASE("a replay traces each op as eager mode does, tagged, and check_numerics names the line", "[capture]")
{
    auto logged = gt::capture([](const Tensor& x) {
        gt::GradientTape tape;
        tape.watch(x);
        const Tensor y = gt::log(x);
        return tape.gradient(gt::reduce_sum(y), x);
    });
    (void)logged(gt::fill<float>({2}, 2.0f));
    std::ostringstream traced;
    auto* const saved = std::cerr.rdbuf(traced.rdbuf());
    gt::set_trace(true);
    const Tensor gradient = logged(gt::fill<float>({2}, 4.0f));
    gt::set_trace(false);
    std::cerr.rdbuf(saved);
    REQUIRE((gradient.value() == xt::xarray<float>{0.25f, 0.25f}));
    const std::string text = traced.str();
    INFO(text);
    REQUIRE(text.find("gradtape: log (2,) float32 -> (2,) float32 (8 B) at") != std::string::npos);
    REQUIRE(text.find("test_capture.cpp") != std::string::npos);
    REQUIRE(text.find("(in the backward pass of log) [replayed]") != std::string::npos);
    REQUIRE(text.find("[recorded]") == std::string::npos);
    REQUIRE(logged.signatures() == 1);

    const gt::check_numerics checked;
    REQUIRE_THROWS_AS(logged(gt::fill<float>({2}, -1.0f)), gt::numeric_error);
    REQUIRE_THROWS_WITH(logged(gt::fill<float>({2}, -1.0f)),
                        Catch::Contains("log: the result has 2 of 2 elements NaN or Inf") &&
                            Catch::Contains("test_capture.cpp"));
}

namespace {

// A decoder block of the char_transformer sample, smaller: token and position
// embeddings, causal attention, a relu MLP, layer norms and logits.
class tiny_transformer : public gt::Model {
public:
    tiny_transformer() : gt::Model("tiny") {}
    Tensor call(const Tensor& ids, bool training) override
    {
        const xt::xarray<std::int64_t> where = xt::arange<std::int64_t>(std::int64_t(ids.shape()[1]));
        Tensor x = tokens_(ids) + positions_(where);
        x = x + attention_(norm1_(x), training);
        x = x + down_(up_(norm2_(x)));
        return logits_(x);
    }

private:
    gt::Embedding tokens_ = add(gt::Embedding(7, 8, "tokens"));
    gt::Embedding positions_ = add(gt::Embedding(6, 8, "positions"));
    gt::LayerNormalization norm1_ = add(gt::LayerNormalization());
    gt::MultiHeadAttention attention_ = add(gt::MultiHeadAttention(2, 4, {.use_causal_mask = true}));
    gt::LayerNormalization norm2_ = add(gt::LayerNormalization());
    gt::Dense up_ = add(gt::Dense(16, {.activation = "relu"}));
    gt::Dense down_ = add(gt::Dense(8));
    gt::Dense logits_ = add(gt::Dense(7));
};

}  // namespace

TEST_CASE("20 replayed transformer steps, ids as numbers in a tensor, match eager ones bit for bit", "[capture]")
{
    gt::set_seed(4);
    tiny_transformer eager;
    (void)eager(gt::zeros<float>({1, 6}));
    gt::set_seed(4);
    tiny_transformer captured;
    (void)captured(gt::zeros<float>({1, 6}));
    gt::Adam eager_optimizer({.learning_rate = 3e-3});
    gt::Adam captured_optimizer({.learning_rate = 3e-3});
    auto step = gt::capture([&](const Tensor& ids, const xt::xarray<std::int64_t>& targets) {
        return captured_optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(targets, captured(ids, true))); },
            captured);
    });
    for (int i = 0; i < 20; ++i) {
        xt::xarray<float> ids = xt::xarray<float>::from_shape({4, 6});
        xt::xarray<std::int64_t> targets = xt::xarray<std::int64_t>::from_shape({4, 6});
        for (std::size_t k = 0; k < ids.size(); ++k) {
            ids.flat(k) = float((k * 3 + std::size_t(i)) % 7);
            targets.flat(k) = std::int64_t((k * 5 + std::size_t(i) + 1) % 7);
        }
        const Tensor eager_loss = eager_optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(targets, eager(ids, true))); },
            eager);
        const Tensor captured_loss = step(Tensor(ids), targets);
        REQUIRE(same_bits(captured_loss.value(), eager_loss.value()));
        const auto eager_variables = eager.variables();
        const auto captured_variables = captured.variables();
        for (std::size_t v = 0; v < eager_variables.size(); ++v) {
            REQUIRE(same_bits(captured_variables[v].value(), eager_variables[v].value()));
        }
    }
    REQUIRE(step.signatures() == 1);
    xt::xarray<float> bad = xt::zeros<float>({4, 6});
    bad(1, 2) = 2.5f;
    REQUIRE_THROWS_WITH(step(Tensor(bad), xt::xarray<std::int64_t>(xt::zeros<std::int64_t>({4, 6}))),
                        Catch::Contains("layer 'tiny/tokens': takes whole-number ids, got 2.5"));
}

TEST_CASE("indices computed beside the op contract refuse the capture", "[capture]")
{
    auto ranked = gt::capture([](const Tensor& x) { return gt::top_k(x, 2).values; });
    REQUIRE_THROWS_WITH(ranked(gt::ones<float>({4})), Catch::Contains("top_k: gives indices") &&
                                                          Catch::Contains("test_capture.cpp"));
    auto best = gt::capture([](const Tensor& x) { return Tensor(xt::cast<float>(gt::argmax(x, 0))); });
    REQUIRE_THROWS_AS(best(gt::ones<float>({4})), gt::capture_error);
    REQUIRE(ranked.signatures() + best.signatures() == 0);
}

TEST_CASE("a variable passed as an argument is read at each call, not bound", "[capture]")
{
    gt::Variable first(gt::fill<float>({2}, 1.0f), "first");
    gt::Variable second(gt::fill<float>({2}, 5.0f), "second");
    auto doubled = gt::capture([&](const Tensor& x) { return x + first; });
    REQUIRE((doubled(first).value() == xt::xarray<float>{2, 2}));
    REQUIRE((doubled(second).value() == xt::xarray<float>{6, 6}));
    first.assign(gt::fill<float>({2}, 3.0f));
    REQUIRE((doubled(second).value() == xt::xarray<float>{8, 8}));
    REQUIRE(doubled.signatures() == 1);
}
