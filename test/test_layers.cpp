#include <cmath>
#include <sstream>
#include <string>

#include "support.hpp"

using gradtape::Tensor64;
using support::random64;
using support::same;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

namespace gt = gradtape;

std::vector<std::string> names_of(const gt::Layer64& layer)
{
    std::vector<std::string> names;
    for (const auto& [path, variable] : layer.named_variables()) {
        names.push_back(path);
    }
    return names;
}

// The rest of the summary's row for the layer at `path` (indented by its
// depth), its columns separated by single spaces.
std::string row_of(const std::string& summary, const std::string& path)
{
    std::istringstream lines(summary);
    for (std::string line; std::getline(lines, line);) {
        if (line.starts_with(path + " ")) {
            std::istringstream words(line.substr(path.size()));
            std::string row;
            for (std::string word; words >> word;) {
                row += (row.empty() ? "" : " ") + word;
            }
            return row;
        }
    }
    return "(no row)";
}

// A model written as a class, holding another model.
class block : public gt::Model64 {
public:
    block() : gt::Model64("block") {}
    Tensor64 call(const Tensor64& x, bool training) override { return norm_(conv_(x), training); }

private:
    gt::Conv2D64 conv_ = add(gt::Conv2D64(4, {3, 3}, {.padding = gt::padding::same, .activation = "relu"}));
    gt::BatchNormalization64 norm_ = add(gt::BatchNormalization64());
};

class cnn : public gt::Model64 {
public:
    cnn() : gt::Model64("cnn") {}
    Tensor64 call(const Tensor64& x, bool training) override
    {
        return head_(flatten_(pool_(second_(first_(x, training), training))));
    }

private:
    block first_block_;
    block second_block_;
    gt::Layer64 first_ = add(first_block_);
    gt::Layer64 second_ = add(second_block_);
    gt::MaxPool2D64 pool_ = add(gt::MaxPool2D64());
    gt::Flatten64 flatten_ = add(gt::Flatten64());
    gt::Dense64 head_ = add(gt::Dense64(3));
};

}  // namespace

TEST_CASE("a dense layer makes its variables on the first call, with Keras's defaults", "[layers]")
{
    gt::set_seed(3);
    gt::Dense64 dense(2, {.activation = "tanh"});
    REQUIRE_FALSE(dense.built());
    REQUIRE(dense.variables().empty());
    const Tensor64 x = random64({4, 3});
    const Tensor64 y = dense(x);
    REQUIRE(dense.built());
    REQUIRE(names_of(dense) == std::vector<std::string>{"dense/kernel", "dense/bias"});
    const auto variables = dense.variables();
    REQUIRE(variables[0].shape() == gt::shape_type{3, 2});
    // glorot_uniform: within sqrt(6 / (3 + 2)); bias zeros.
    REQUIRE(xt::amax(xt::abs(variables[0].value()))() <= std::sqrt(6.0 / 5.0));
    REQUIRE(xt::all(xt::equal(variables[1].value(), 0.0)));
    // tanh(x kernel + bias), by the formula.
    const auto& k = variables[0].value();
    for (std::size_t i = 0; i < 4; ++i) {
        for (std::size_t j = 0; j < 2; ++j) {
            double sum = 0;
            for (std::size_t m = 0; m < 3; ++m) {
                sum += x.value()(i, m) * k(m, j);
            }
            REQUIRE_THAT(y.value()(i, j), Catch::Matchers::WithinAbs(std::tanh(sum), 1e-12));
        }
    }
    // Leading dimensions pass through.
    REQUIRE(dense(random64({5, 4, 3})).shape() == gt::shape_type{5, 4, 2});
}

TEST_CASE("layers are named by their place in the model, uniquely among siblings", "[layers]")
{
    gt::Sequential64 model({gt::Dense64(4), gt::Dense64(4), gt::Dropout64(0.5), gt::Dense64(2, {.name = "logits"})},
                           "mlp");
    (void)model(random64({2, 3}));
    REQUIRE(names_of(model) == std::vector<std::string>{"mlp/dense/kernel", "mlp/dense/bias", "mlp/dense_1/kernel",
                                                         "mlp/dense_1/bias", "mlp/logits/kernel", "mlp/logits/bias"});
    REQUIRE(model.layers()[1].path() == "mlp/dense_1");
    REQUIRE(model.variables()[2].name() == "mlp/dense_1/kernel");

    cnn net;
    net.build({2, 6, 6, 1});
    const auto names = names_of(net);
    REQUIRE(names.front() == "cnn/block/conv2d/kernel");
    REQUIRE(std::ranges::count(names, std::string("cnn/block_1/batch_normalization/moving_mean")) == 1);
    REQUIRE(names.back() == "cnn/dense/bias");
    // Moving statistics are variables, but not trainable ones.
    REQUIRE(net.variables().size() == 2 * 6 + 2);
    REQUIRE(net.trainable_variables().size() == 2 * 4 + 2);
    const std::string summary = net.summary();
    INFO(summary);
    // Each row counts the parameters of its layer and the layers under it;
    // moving statistics are parameters, not trainable ones.
    REQUIRE(row_of(summary, "    cnn/block_1/conv2d") == "(2, 6, 6, 4) 148");
    REQUIRE(row_of(summary, "  cnn/block_1") == "(2, 6, 6, 4) 164");
    REQUIRE(row_of(summary, "cnn") == "(2, 3) 331");
    REQUIRE_THAT(summary, StartsWith("Layer "));
    REQUIRE_THAT(summary, EndsWith("\nTotal params: 331\nTrainable params: 315\nNon-trainable params: 16\n"));
}

TEST_CASE("a layer shared by two models keeps one set of variables", "[layers]")
{
    gt::Dense64 shared(3);
    gt::Sequential64 a({shared, gt::Dense64(1)}, "a");
    gt::Sequential64 b({gt::Dense64(3), shared}, "b");
    (void)a(random64({2, 3}));
    (void)b(random64({2, 4}));
    REQUIRE(shared.path() == "a/dense");
    REQUIRE(a.variables()[0].id() == b.variables()[2].id());
    // In b it has a name of its own there, beside b's first dense layer.
    REQUIRE(names_of(b) ==
            std::vector<std::string>{"b/dense/kernel", "b/dense/bias", "b/dense_1/kernel", "b/dense_1/bias"});
    REQUIRE(b.variables()[2].name() == "a/dense/kernel");
    // Listed once even when a model holds it twice.
    gt::Sequential64 twice({shared}, "twice");
    twice.add(gt::Sequential64({shared}));
    REQUIRE(twice.variables().size() == 2);
}

TEST_CASE("a layer called with a wrongly shaped input names itself, both shapes and the call site", "[layers]")
{
    gt::Sequential64 model({gt::Conv2D64(2, {3, 3}), gt::Flatten64(), gt::Dense64(2)}, "net");
    (void)model(random64({1, 5, 5, 1}));
    const auto before = model.variables()[0].value();
    REQUIRE_THROWS_WITH(model(random64({1, 5, 5, 3})),
                        Contains("layer 'net/conv2d'") && Contains("(?, ?, ?, 1)") && Contains("(1, 5, 5, 3)") &&
                            Contains("test_layers.cpp"));
    REQUIRE_THROWS_AS(model(random64({1, 6, 6, 1})), gt::shape_error);
    REQUIRE_THROWS_WITH(model(random64({1, 6, 6, 1})), Contains("layer 'net/dense'") && Contains("(..., 18)"));
    REQUIRE(xt::all(xt::equal(model.variables()[0].value(), before)));

    REQUIRE_THROWS_AS(gt::Dense64(0), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::Dense64(2, {.activation = "relu6"}), Contains("no activation is named 'relu6'"));
    REQUIRE_THROWS_AS(gt::Dropout64(1.0), gt::argument_error);
    REQUIRE_THROWS_AS(gt::Conv2D64(2, {0, 3}), gt::argument_error);
    gt::Sequential64 loop({gt::Dense64(2)});
    REQUIRE_THROWS_WITH(loop.add(loop), Contains("cannot be a part of itself"));
}

TEST_CASE("a layer whose first call is refused is left as new, and its next call builds it", "[layers]")
{
    gt::Conv2D64 conv(2, {3, 3});
    REQUIRE_THROWS_WITH(conv(random64({5, 5, 1})), Contains("(?, ?, ?, ?)") && Contains("(5, 5, 1)"));
    REQUIRE_FALSE(conv.built());
    REQUIRE(conv.variables().empty());
    REQUIRE(conv(random64({1, 5, 5, 3})).shape() == gt::shape_type{1, 3, 3, 2});
    REQUIRE(conv.variables()[0].shape() == gt::shape_type{3, 3, 3, 2});

    // A refusal deep in a model undoes what the call built before it.
    gt::Sequential64 model({gt::Dense64(4), gt::Conv2D64(2, {1, 1})}, "net");
    REQUIRE_THROWS_WITH(model(random64({2, 3})), Contains("layer 'net/conv2d'"));
    REQUIRE_FALSE(model.built());
    REQUIRE_FALSE(model.layers()[0].built());
    REQUIRE(model.variables().empty());
    REQUIRE(model(random64({2, 5, 5, 7})).shape() == gt::shape_type{2, 5, 5, 2});
    REQUIRE(model.variables()[0].shape() == gt::shape_type{7, 4});

    // A refusal by an op, after the layer made its variables, undoes them too.
    gt::Conv2D64 wide(1, {4, 4});
    REQUIRE_THROWS_AS(wide(random64({1, 3, 3, 2})), gt::shape_error);
    REQUIRE_FALSE(wide.built());
    REQUIRE(wide.variables().empty());

    gt::MultiHeadAttention64 attention(2, 3);
    REQUIRE_THROWS_AS(attention(random64({4, 6})), gt::shape_error);
    REQUIRE_FALSE(attention.built());
    REQUIRE(attention.variables().empty());
    REQUIRE(attention(random64({1, 4, 6})).shape() == gt::shape_type{1, 4, 6});

    // A layer built by build() already accepts only what it was built for.
    gt::Dense64 dense(2);
    dense.build({3, 5});
    REQUIRE(dense.built());
    REQUIRE_THROWS_AS(dense(random64({3, 4})), gt::shape_error);
}

TEST_CASE("a training step through a model's layers has the gradient of its ops", "[layers]")
{
    gt::set_seed(11);
    gt::Sequential64 model({gt::Conv2D64(2, {2, 2}, {.padding = gt::padding::same, .activation = "tanh"}),
                            gt::BatchNormalization64(), gt::AveragePool2D64(), gt::Flatten64(),
                            gt::LayerNormalization64(), gt::Dense64(3, {.activation = "softplus"})});
    const Tensor64 x = random64({3, 4, 4, 2});
    model.build(x.shape());
    auto variables = model.trainable_variables();
    REQUIRE(variables.size() == 8);
    const auto loss = [&](bool training) { return support::weighted_sum(model(x, training)); };
    gt::GradientTape tape;
    const Tensor64 value = loss(true);
    const auto gradients = tape.gradient(value, variables);
    for (std::size_t v = 0; v < variables.size(); ++v) {
        const xt::xarray<double> start = variables[v].value();
        for (std::size_t i = 0; i < start.size(); i += 3) {
            const double step = 1e-6;
            const auto at = [&](double delta) {
                xt::xarray<double> moved = start;
                moved.flat(i) += delta;
                variables[v].assign(Tensor64(moved));
                const auto pause = gt::stop_recording();
                return loss(true).item();
            };
            const double numeric = (at(step) - at(-step)) / (2 * step);
            variables[v].assign(Tensor64(start));
            INFO(variables[v].name() << " element " << i);
            REQUIRE_THAT(gradients[v].value().flat(i), Catch::Matchers::WithinAbs(numeric, 1e-6));
        }
    }
}

TEST_CASE("batch normalization trains on the batch's moments and infers with its moving ones", "[layers]")
{
    gt::BatchNormalization64 norm({.momentum = 0.9, .epsilon = 1e-3});
    const Tensor64 x = support::make64({1, 10, 2, 20, 3, 60}, {3, 2});
    const Tensor64 y = norm(x, true);
    // Column 0: mean 2, variance 2/3; column 1: mean 30, variance 1400/3.
    const double mean[2] = {2, 30};
    const double variance[2] = {2.0 / 3.0, 1400.0 / 3.0};
    for (std::size_t i = 0; i < 3; ++i) {
        for (std::size_t j = 0; j < 2; ++j) {
            REQUIRE_THAT(y.value()(i, j), Catch::Matchers::WithinAbs(
                                              (x.value()(i, j) - mean[j]) / std::sqrt(variance[j] + 1e-3), 1e-12));
        }
    }
    const auto variables = norm.named_variables();
    REQUIRE(variables[2].first == "batch_normalization/moving_mean");
    REQUIRE_FALSE(variables[2].second.trainable());
    support::require_values(variables[2].second, {0.1 * 2, 0.1 * 30}, {2});
    support::require_values(variables[3].second, {0.9 + 0.1 * 2.0 / 3.0, 0.9 + 0.1 * 1400.0 / 3.0}, {2});
    // Inference uses the moving statistics and changes nothing.
    const Tensor64 z = norm(x, false);
    REQUIRE_THAT(z.value()(0, 1),
                 Catch::Matchers::WithinAbs((10 - 3.0) / std::sqrt(0.9 + 140.0 / 3.0 + 1e-3), 1e-12));
    support::require_values(variables[2].second, {0.2, 3}, {2});
}

TEST_CASE("batch normalization trained on an empty batch leaves its moving statistics as they were", "[layers]")
{
    gt::BatchNormalization64 norm;
    (void)norm(random64({6, 3}), true);
    const auto variables = norm.variables();
    std::vector<xt::xarray<double>> before;
    for (const auto& variable : variables) {
        before.push_back(variable.value());
    }
    gt::GradientTape tape;
    const Tensor64 empty = gt::zeros<double>({0, 3});
    tape.watch(empty);
    const Tensor64 y = norm(empty, true);
    REQUIRE(y.shape() == gt::shape_type{0, 3});
    // gamma, beta, the input: no rows, no gradient.
    const auto grads = tape.gradient(gt::reduce_sum(y), {variables[0], variables[1], empty});
    REQUIRE(grads[0].value() == xt::zeros<double>({3}));
    REQUIRE(grads[1].value() == xt::zeros<double>({3}));
    REQUIRE(grads[2].shape() == gt::shape_type{0, 3});
    for (std::size_t v = 0; v < variables.size(); ++v) {
        INFO(variables[v].name());
        REQUIRE(variables[v].value() == before[v]);
    }
    // Inference on an empty batch is empty too.
    REQUIRE(norm(empty).shape() == gt::shape_type{0, 3});
}

TEST_CASE("dropout acts only in training", "[layers]")
{
    gt::Dropout64 drop(0.5);
    const Tensor64 x = gt::ones<double>({1000});
    REQUIRE(same(drop(x), x));
    const Tensor64 y = drop(x, true);
    const auto zeros = std::ranges::count(y.value(), 0.0);
    REQUIRE(zeros > 400);
    REQUIRE(zeros < 600);
    REQUIRE(std::ranges::count(y.value(), 2.0) == 1000 - zeros);
}

TEST_CASE("embedding, convolution layers and pooling give their ops' shapes", "[layers]")
{
    gt::Embedding64 embedding(10, 4);
    const xt::xarray<std::int64_t> ids = {{1, 2, 1}, {9, 0, 3}};
    const Tensor64 rows = embedding(ids);
    REQUIRE(rows.shape() == gt::shape_type{2, 3, 4});
    const auto table = embedding.variables()[0].value();
    REQUIRE(xt::amax(xt::abs(table))() <= 0.05);
    REQUIRE(rows.value()(1, 0, 2) == table(9, 2));
    REQUIRE(same(embedding(Tensor64(xt::xarray<double>(ids))), rows));
    REQUIRE_THROWS_WITH(embedding(support::make64({1.5})), Contains("whole-number ids"));

    REQUIRE(gt::Conv2DTranspose64(3, {3, 3}, {.strides = {2, 2}, .padding = gt::padding::same})(random64({2, 4, 5, 2}))
                .shape() == gt::shape_type{2, 8, 10, 3});
    REQUIRE(gt::Conv2DTranspose64(3, {3, 3}, {.strides = {2, 2}})(random64({2, 4, 5, 2})).shape() ==
            gt::shape_type{2, 9, 11, 3});
    REQUIRE(gt::Conv1D64(5, 3)(random64({2, 7, 2})).shape() == gt::shape_type{2, 5, 5});
    gt::DepthwiseConv2D64 depthwise({3, 3}, 2);
    REQUIRE(depthwise(random64({1, 5, 5, 3})).shape() == gt::shape_type{1, 3, 3, 6});
    REQUIRE(names_of(depthwise) ==
            std::vector<std::string>{"depthwise_conv2d/depthwise_kernel", "depthwise_conv2d/bias"});
    REQUIRE(gt::MaxPool2D64({.pool_size = {3, 3}})(random64({1, 7, 6, 2})).shape() == gt::shape_type{1, 2, 2, 2});
    REQUIRE(gt::GlobalAveragePooling2D64()(random64({2, 3, 3, 4})).shape() == gt::shape_type{2, 4});
}

TEST_CASE("multi-head attention projects, attends per head and projects back", "[layers]")
{
    gt::set_seed(5);
    const std::size_t heads = 2;
    const std::size_t dim = 3;
    gt::MultiHeadAttention64 attention(heads, dim, {.use_causal_mask = true});
    const Tensor64 x = random64({2, 4, 5});
    const Tensor64 y = attention(x);
    REQUIRE(y.shape() == gt::shape_type{2, 4, 5});
    const auto named = attention.named_variables();
    REQUIRE(named[0].first == "multi_head_attention/query/kernel");
    REQUIRE(named[0].second.shape() == gt::shape_type{5, heads, dim});
    const auto& wq = named[0].second.value();
    const auto& bq = named[1].second.value();
    const auto& wk = named[2].second.value();
    const auto& bk = named[3].second.value();
    const auto& wv = named[4].second.value();
    const auto& bv = named[5].second.value();
    const auto& wo = named[6].second.value();
    const auto& bo = named[7].second.value();
    const auto& in = x.value();
    // By the definition, one batch, head and query at a time.
    for (std::size_t b = 0; b < 2; ++b) {
        for (std::size_t t = 0; t < 4; ++t) {
            std::vector<double> out(5);
            for (std::size_t c = 0; c < 5; ++c) {
                out[c] = bo(c);
            }
            for (std::size_t h = 0; h < heads; ++h) {
                const auto project = [&](const auto& w, const auto& bias, std::size_t s, std::size_t d) {
                    double sum = bias(h, d);
                    for (std::size_t c = 0; c < 5; ++c) {
                        sum += in(b, s, c) * w(c, h, d);
                    }
                    return sum;
                };
                std::vector<double> scores;
                for (std::size_t s = 0; s <= t; ++s) {
                    double dot = 0;
                    for (std::size_t d = 0; d < dim; ++d) {
                        dot += project(wq, bq, t, d) * project(wk, bk, s, d);
                    }
                    scores.push_back(dot / std::sqrt(double(dim)));
                }
                const double top = *std::ranges::max_element(scores);
                double total = 0;
                for (double& score : scores) {
                    score = std::exp(score - top);
                    total += score;
                }
                for (std::size_t d = 0; d < dim; ++d) {
                    double attended = 0;
                    for (std::size_t s = 0; s <= t; ++s) {
                        attended += scores[s] / total * project(wv, bv, s, d);
                    }
                    for (std::size_t c = 0; c < 5; ++c) {
                        out[c] += attended * wo(h, d, c);
                    }
                }
            }
            for (std::size_t c = 0; c < 5; ++c) {
                REQUIRE_THAT(y.value()(b, t, c), Catch::Matchers::WithinAbs(out[c], 1e-12));
            }
        }
    }
    // Cross-attention checks the key and value against what it was built for.
    REQUIRE_THROWS_WITH(attention(x, random64({2, 3, 6}), {}, {}), Contains("value of shape (?, ?, 5)"));
}

TEST_CASE("minimize refuses a step when the loss reads a layer the model does not hold", "[layers]")
{
    gt::Sequential64 model({gt::Dense64(3)}, "model");
    gt::Dense64 forgotten(1);
    gt::SGD optimizer(0.1);
    const Tensor64 x = random64({4, 2});
    const auto loss = [&] { return gt::reduce_sum(forgotten(model(x))); };
    (void)loss();
    const auto before = model.variables()[0].value();
    REQUIRE_THROWS_WITH(optimizer.minimize(loss, model),
                        Contains("'dense/kernel'") && Contains("model 'model' does not hold"));
    REQUIRE(xt::all(xt::equal(model.variables()[0].value(), before)));
    REQUIRE(optimizer.iterations() == 0);

    gt::Sequential64 whole({model, forgotten}, "whole");
    const Tensor64 first = optimizer.minimize(loss, whole);
    REQUIRE(optimizer.iterations() == 1);
    REQUIRE(loss().item() < first.item());
}

TEST_CASE("a step of a model with nothing to train says so", "[layers][errors]")
{
    gt::Sequential64 empty({}, "empty");
    gt::Adam optimizer;
    const Tensor64 x = random64({2, 3});
    REQUIRE_THROWS_WITH(optimizer.minimize([&] { return gt::reduce_sum(empty(x)); }, empty),
                        Contains("model 'empty' has no trainable variables") && Contains("test_layers.cpp"));
    gt::Sequential64 flat({gt::Flatten64()}, "flat");
    REQUIRE_THROWS_WITH(optimizer.minimize([&] { return gt::reduce_sum(flat(x)); }, flat),
                        Contains("model 'flat' has no trainable variables"));
    REQUIRE(optimizer.iterations() == 0);
}

TEST_CASE("a handle that outlives its model object is refused, not followed", "[layers]")
{
    gt::Layer64 handle = [] {
        gt::Sequential64 holder({}, "holder");
        struct tiny : gt::Model64 {
            Tensor64 call(const Tensor64& x, bool) override { return x; }
        };
        tiny model;
        holder.add(model);
        return holder;
    }();
    REQUIRE_THROWS_WITH(handle(random64({1})), Contains("outlived its model object"));
}

namespace {

// A layer of one's own: a temperature made in the constructor, a scale per
// input feature made in make_weights() once the input's width is known.
class scaled_dense : public gt::Model64 {
public:
    explicit scaled_dense(std::size_t units) : gt::Model64("scaled_dense"), dense_(add(gt::Dense64(units))) {}
    Tensor64 call(const Tensor64& x, bool) override { return dense_(x * *scale_) / temperature_; }

protected:
    void make_weights(const gt::shape_type& input_shape) override
    {
        scale_ = add_weight("scale", {input_shape.back()}, {.initializer = "ones"});
    }

private:
    gt::Variable64 temperature_ = add_weight("temperature", {}, {.initializer = "ones"});
    gt::Dense64 dense_;
    std::optional<gt::Variable64> scale_;
};

class holder : public gt::Model64 {
public:
    holder() : gt::Model64("holder") {}
    Tensor64 call(const Tensor64& x, bool) override { return inner_(x); }

private:
    scaled_dense part_{2};
    gt::Layer64 inner_ = add(part_);
};

// Reads dropout's and batch normalization's mode from what they do: dropout
// zeros some of the 400 outputs only when training, and batch normalization
// moves its moving mean only when training.
struct mode_probe {
    gt::BatchNormalization64 norm;
    gt::Dropout64 dropout{0.5};
    gt::Sequential64 model{{norm, dropout}, "probe"};
    Tensor64 x = random64({100, 4}, 1, 2);

    mode_probe() { model.build(x.shape()); }

    bool dropped(const Tensor64& y) const { return xt::any(xt::equal(y.value(), 0.0)); }
    // Whether the call trained (both layers agree, or the test fails).
    bool trained(const std::function<Tensor64()>& call)
    {
        const xt::xarray<double> before = norm.variables()[2].value();
        const Tensor64 y = call();
        const bool moved = xt::any(xt::not_equal(norm.variables()[2].value(), before));
        REQUIRE(moved == dropped(y));
        return moved;
    }
};

class passes_nothing : public gt::Model64 {
public:
    passes_nothing() : gt::Model64("passes_nothing") {}
    Tensor64 call(const Tensor64& x, bool) override { return probe_(x); }
    mode_probe inner;

private:
    gt::Layer64 probe_ = add(inner.model);
};

}  // namespace

TEST_CASE("a layer of one's own makes weights that are held, named, trained and listed", "[layers]")
{
    gt::set_seed(21);
    scaled_dense layer(2);
    REQUIRE(layer.named_variables().size() == 1);
    const Tensor64 x = random64({4, 3});
    (void)layer(x);
    std::vector<std::string> names;
    for (const auto& [path, variable] : layer.named_variables()) {
        names.push_back(path);
        REQUIRE(variable.name() == path);
    }
    REQUIRE(names == std::vector<std::string>{"scaled_dense/temperature", "scaled_dense/scale",
                                              "scaled_dense/dense/kernel", "scaled_dense/dense/bias"});
    REQUIRE(layer.trainable_variables().size() == 4);
    REQUIRE_THAT(layer.summary(), Contains("Total params: 12") && Contains("Trainable params: 12"));

    // The step is the gradient's: w - 0.1 dL/dw for the weights of one's own too.
    const auto loss = [&] { return support::weighted_sum(layer(x)); };
    std::vector<gt::Variable64> variables = layer.trainable_variables();
    std::vector<Tensor64> gradients;
    {
        gt::GradientTape tape;
        gradients = tape.gradient(loss(), variables);
    }
    std::vector<xt::xarray<double>> before;
    for (const auto& variable : variables) {
        before.push_back(variable.value());
    }
    gt::SGD optimizer(0.1);
    (void)optimizer.minimize(loss, layer);
    for (std::size_t v = 0; v < variables.size(); ++v) {
        INFO(variables[v].name());
        REQUIRE(xt::allclose(variables[v].value(), before[v] - 0.1 * gradients[v].value(), 1e-14, 1e-14));
    }

    // Added to a model, its weights are named by their new place.
    holder outer;
    (void)outer(x);
    REQUIRE(outer.named_variables()[0].first == "holder/scaled_dense/temperature");
    REQUIRE(outer.named_variables()[0].second.name() == "holder/scaled_dense/temperature");
}

TEST_CASE("add_weight refuses a taken name, an empty dimension, an unknown initializer and a built model",
          "[layers][errors]")
{
    struct probe : gt::Model64 {
        probe() : gt::Model64("probe") { (void)add(gt::Dense64(2)); }
        Tensor64 call(const Tensor64& x, bool) override { return x; }
        gt::Variable64 weight(const std::string& name, const gt::shape_type& shape, gt::weight_options options = {})
        {
            return add_weight(name, shape, options);
        }
    };
    probe model;
    (void)model.weight("alpha", {2});
    REQUIRE_THROWS_WITH(model.weight("alpha", {3}),
                        Contains("add_weight of 'probe'") && Contains("'probe/alpha' is taken") &&
                            Contains("test_layers.cpp"));
    REQUIRE_THROWS_WITH(model.weight("dense", {3}), Contains("'probe/dense' is taken"));
    REQUIRE_THROWS_WITH(model.weight("beta", {2, 0}), Contains("dimensions of 1 or more, got (2, 0)"));
    REQUIRE_THROWS_WITH(model.weight("beta", {2}, {.initializer = "lecun"}),
                        Contains("add_weight of 'probe'") && Contains("no initializer is named 'lecun'"));
    REQUIRE_THROWS_AS(model.weight("beta", {std::size_t(1) << 62, 8}), gt::shape_error);
    REQUIRE_THROWS_WITH(model.weight("a/b", {1}), Contains("without '/'"));
    REQUIRE(model.named_variables().size() == 1);
    (void)model(random64({1, 2}));
    REQUIRE_THROWS_WITH(model.weight("late", {1}), Contains("the model is built"));
    REQUIRE(model.named_variables().size() == 1);
}

TEST_CASE("a refused first call keeps the weights a constructor made and drops those made after", "[layers]")
{
    struct refusing : gt::Model64 {
        refusing() : gt::Model64("refusing") {}
        Tensor64 call(const Tensor64& x, bool) override { return refuse ? gt::matmul(x, x) : x * *scale; }
        void make_weights(const gt::shape_type& input_shape) override
        {
            scale = add_weight("scale", {input_shape.back()});
        }
        gt::Variable64 offset = add_weight("offset", {1}, {.initializer = "zeros"});
        std::optional<gt::Variable64> scale;
        bool refuse = true;
    };
    refusing layer;
    REQUIRE_THROWS_AS(layer(random64({4, 3})), gt::shape_error);
    REQUIRE_FALSE(layer.built());
    REQUIRE(layer.named_variables().size() == 1);
    REQUIRE(layer.named_variables()[0].first == "refusing/offset");
    layer.refuse = false;
    REQUIRE(layer(random64({4, 3})).shape() == gt::shape_type{4, 3});
    REQUIRE(layer.named_variables().size() == 2);
}

TEST_CASE("a layer trains under a tape and infers outside one, unless told otherwise", "[layers]")
{
    mode_probe probe;
    SECTION("outside a tape: inference, unless training is asked for")
    {
        REQUIRE_FALSE(probe.trained([&] { return probe.model(probe.x); }));
        REQUIRE(probe.trained([&] { return probe.model(probe.x, true); }));
    }
    SECTION("under a tape: training, unless inference is asked for or recording is paused")
    {
        gt::GradientTape tape;
        REQUIRE(probe.trained([&] { return probe.model(probe.x); }));
        REQUIRE_FALSE(probe.trained([&] { return probe.model(probe.x, false); }));
        const auto pause = gt::stop_recording();
        REQUIRE_FALSE(probe.trained([&] { return probe.model(probe.x); }));
    }
    SECTION("inside minimize: training")
    {
        gt::Sequential64 model({gt::Dense64(4), probe.model});
        gt::SGD optimizer(0.01);
        REQUIRE(probe.trained([&] {
            Tensor64 y;
            (void)optimizer.minimize(
                [&] {
                    y = model(probe.x);
                    return gt::reduce_sum(y);
                },
                model);
            return y;
        }));
    }
    SECTION("a model's layers called without the argument take the model's mode")
    {
        passes_nothing outer;
        gt::GradientTape tape;
        REQUIRE_FALSE(outer.inner.trained([&] { return outer(outer.inner.x, false); }));
        REQUIRE(outer.inner.trained([&] { return outer(outer.inner.x); }));
    }
    SECTION("a captured step trains when it replays")
    {
        gt::Sequential64 model({gt::Dense64(4), probe.model});
        gt::SGD optimizer(0.01);
        auto step = gt::capture(
            [&](const Tensor64& x) { return optimizer.minimize([&] { return gt::reduce_sum(model(x)); }, model); });
        (void)step(probe.x);
        const xt::xarray<double> before = probe.norm.variables()[2].value();
        (void)step(probe.x);
        REQUIRE(xt::any(xt::not_equal(probe.norm.variables()[2].value(), before)));
        REQUIRE(step.signatures() == 1);
    }
}
