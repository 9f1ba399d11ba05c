// Tensors, variables, creation functions and seeded randomness.
#include <cmath>
#include <thread>

#include "support.hpp"

#include <xtensor/xview.hpp>

namespace gt = gradtape;
using gt::Tensor;
using gt::Tensor64;
using Catch::Matchers::Contains;

TEST_CASE("a tensor is built from an xarray, an xtensor expression or a scalar", "[tensor]")
{
    xt::xarray<float> values = {1.f, 2.f, 3.f};
    const Tensor from_array = values;
    const Tensor from_expression = values * 2.f;
    const Tensor from_scalar = 4.f;
    REQUIRE(from_array.shape() == gt::shape_type{3});
    REQUIRE(from_expression.value()(2) == 6.f);
    REQUIRE(from_scalar.dimension() == 0);
    REQUIRE(from_scalar.size() == 1);
    REQUIRE(from_scalar.item() == 4.f);
    REQUIRE_THROWS_AS(from_array.item(), gt::shape_error);
    REQUIRE_THROWS_AS(Tensor().value(), gt::argument_error);
}

TEST_CASE("copies of a tensor share its value", "[tensor]")
{
    const Tensor a = gt::ones<float>({1000});
    const Tensor b = a;
    REQUIRE(&a.value() == &b.value());
    REQUIRE(a.id() == b.id());
}

TEST_CASE("creation functions", "[tensor]")
{
    REQUIRE(xt::all(xt::equal(gt::zeros<double>({2, 3}).value(), 0.0)));
    REQUIRE(gt::ones<float>({4}).value()(3) == 1.f);
    REQUIRE(gt::fill<double>({2}, 7.5).value()(1) == 7.5);
    const Tensor64 line = gt::linspace<double>(-2, 4, 4);
    REQUIRE(line.value()(0) == -2.0);
    REQUIRE(line.value()(1) == 0.0);
    REQUIRE(line.value()(3) == 4.0);
    REQUIRE(gt::constant(xt::xarray<double>{1.0, 2.0}).size() == 2);
}

TEST_CASE("set_seed makes the random functions reproducible, per thread", "[tensor][random]")
{
    gt::set_seed(7);
    const Tensor64 first = gt::random_normal<double>({100}, 1.0, 2.0);
    const Tensor64 first_uniform = gt::random_uniform<double>({100}, -1.0, 3.0);
    gt::set_seed(7);
    REQUIRE(gt::random_normal<double>({100}, 1.0, 2.0).value() == first.value());
    REQUIRE(gt::random_uniform<double>({100}, -1.0, 3.0).value() == first_uniform.value());
    REQUIRE(xt::all(first_uniform.value() >= -1.0 && first_uniform.value() < 3.0));

    std::vector<double> on_other_thread;
    std::thread other([&] {
        gt::set_seed(7);
        const Tensor64 drawn = gt::random_normal<double>({100}, 1.0, 2.0);
        on_other_thread.assign(drawn.value().begin(), drawn.value().end());
    });
    gt::set_seed(99);
    (void)gt::random_normal<double>({1000});
    other.join();
    REQUIRE(std::equal(on_other_thread.begin(), on_other_thread.end(), first.value().begin()));
}

TEST_CASE("random draws follow their distributions", "[tensor][random]")
{
    gt::set_seed(1);
    const Tensor64 normal = gt::random_normal<double>({20000}, 3.0, 0.5);
    const double mean = xt::mean(normal.value())();
    const double stddev = xt::stddev(normal.value())();
    REQUIRE(mean == Approx(3.0).margin(0.02));
    REQUIRE(stddev == Approx(0.5).margin(0.02));
    REQUIRE_THROWS_AS(gt::random_uniform<float>({2}, 1.f, 1.f), gt::argument_error);
    REQUIRE_THROWS_AS(gt::random_normal<float>({2}, 0.f, -1.f), gt::argument_error);
}

TEST_CASE("a variable is named, optionally trainable, and updated in place", "[variable]")
{
    gt::Variable w(gt::zeros<float>({2, 2}), "w");
    gt::Variable frozen(gt::ones<float>({2}), "frozen", false);
    REQUIRE(w.name() == "w");
    REQUIRE(w.trainable());
    REQUIRE_FALSE(frozen.trainable());
    REQUIRE(gt::Variable(Tensor(1.f)).name() == "Variable");

    const float* storage = w.value().data();
    w.assign(gt::fill<float>({2, 2}, 3.f));
    w.assign_add(gt::ones<float>({2, 2}));
    w.assign_sub(gt::fill<float>({2, 2}, 0.5f));
    REQUIRE(w.value().data() == storage);
    REQUIRE(xt::all(xt::equal(w.value(), 3.5f)));
}

TEST_CASE("copies of a variable share it; a tensor copied from it keeps the value it read", "[variable]")
{
    gt::Variable64 w(Tensor64(1.0), "w");
    gt::Variable64 alias = w;
    const Tensor64 read = w;
    w.assign(Tensor64(2.0));
    REQUIRE(alias.item() == 2.0);
    REQUIRE(read.item() == 1.0);
    REQUIRE(read.id() == w.id());

    Tensor64& as_tensor = w;
    REQUIRE_THROWS_WITH(as_tensor = Tensor64(5.0), Contains("'w'") && Contains("assign"));
    REQUIRE(w.item() == 2.0);
}

TEST_CASE("a read shares a variable's buffer; a write copies it only while a read holds it", "[variable]")
{
    gt::Variable w(gt::fill<float>({1000}, 1.f), "w");
    const float* original = w.value().data();
    {
        const Tensor read = w;
        REQUIRE(read.value().data() == original);
        gt::GradientTape tape;
        const Tensor squares = gt::square(w);
        w.assign_add(gt::ones<float>({1000}));
        REQUIRE(w.value().data() != original);
        REQUIRE(xt::all(xt::equal(read.value(), 1.f)));
        REQUIRE(xt::all(xt::equal(w.value(), 2.f)));
        // The recorded square read the value before the write: 2 x at x = 1.
        REQUIRE(xt::all(xt::equal(tape.gradient(gt::reduce_sum(squares), w).value(), 2.f)));
    }
    // With no read left, writes go in place again.
    const float* current = w.value().data();
    w.assign_sub(gt::ones<float>({1000}));
    gt::SGD(0.5).apply_gradients<float>({gt::ones<float>({1000})}, {w});
    REQUIRE(w.value().data() == current);
    REQUIRE(xt::all(xt::equal(w.value(), 0.5f)));
}

TEST_CASE("a variable refuses a value of another shape and keeps its own", "[variable][errors]")
{
    gt::Variable w(gt::ones<float>({2, 1}), "weights");
    REQUIRE_THROWS_AS(w.assign(gt::ones<float>({1, 2})), gt::shape_error);
    REQUIRE_THROWS_WITH(w.assign_sub(gt::ones<float>({3})),
                        Contains("assign_sub") && Contains("'weights'") && Contains("(2, 1)") && Contains("(3,)") &&
                            Contains("test_tensor.cpp"));
    REQUIRE(xt::all(xt::equal(w.value(), 1.f)));
}

TEST_CASE("a tensor prints its dtype, shape and values, and a variable its name", "[tensor]")
{
    std::ostringstream text;
    text << Tensor(xt::xarray<float>{1.f, 2.f}) << '\n' << gt::Variable64(gt::zeros<double>({2, 1}), "bias");
    REQUIRE_THAT(text.str(), Contains("float32 tensor, shape (2,)") && Contains("float64 variable 'bias'") &&
                                 Contains("shape (2, 1)"));
}

TEST_CASE("initializers draw with Keras's scales from the seeded generator", "[tensor][random]")
{
    gt::set_seed(5);
    const Tensor64 glorot = gt::glorot_uniform<double>({300, 200});
    const double glorot_limit = std::sqrt(6.0 / 500);
    REQUIRE(xt::amax(xt::abs(glorot.value()))() <= glorot_limit);
    REQUIRE(xt::stddev(glorot.value())() == Approx(glorot_limit / std::sqrt(3.0)).epsilon(0.03));
    const Tensor64 he = gt::he_normal<double>({400, 300});
    REQUIRE(xt::stddev(he.value())() == Approx(std::sqrt(2.0 / 400)).epsilon(0.03));
    REQUIRE(xt::amax(xt::abs(he.value()))() <= 2 * std::sqrt(2.0 / 400) / 0.87962566103423978);
    REQUIRE(xt::stddev(gt::glorot_normal<double>({3, 3, 64, 32}).value())() ==
            Approx(std::sqrt(2.0 / (9 * 64 + 9 * 32))).epsilon(0.03));
    REQUIRE(xt::amax(xt::abs(gt::he_uniform<float>({50, 10}).value()))() <= float(std::sqrt(6.0 / 50)));
    gt::set_seed(5);
    REQUIRE(gt::glorot_uniform<double>({300, 200}).value() == glorot.value());
}

TEST_CASE("minibatches cover every row once per epoch, in a seeded order", "[data]")
{
    xt::xarray<double> values = xt::arange<double>(10.0 * 2);
    values.reshape({10, 2});
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(10);
    gt::minibatches<double> batches({Tensor64(values)}, {labels}, {.batch_size = 4});
    REQUIRE(batches.size() == 3);
    const auto epoch = [&] {
        std::vector<std::int64_t> seen;
        std::vector<std::size_t> sizes;
        for (const auto& batch : batches) {
            sizes.push_back(batch.rows.size());
            for (std::size_t i = 0; i < batch.rows.size(); ++i) {
                const auto row = batch.rows(i);
                REQUIRE(batch.labels[0](i) == row);
                REQUIRE(batch.tensors[0].value()(i, 1) == values(std::size_t(row), 1));
                seen.push_back(row);
            }
        }
        REQUIRE(sizes == std::vector<std::size_t>{4, 4, 2});
        return seen;
    };
    gt::set_seed(9);
    const auto first = epoch();
    const auto second = epoch();
    REQUIRE(first != second);
    auto sorted = first;
    std::sort(sorted.begin(), sorted.end());
    REQUIRE(sorted == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    gt::set_seed(9);
    REQUIRE(epoch() == first);

    gt::minibatches<double> exact({Tensor64(values)}, {}, {.batch_size = 4, .shuffle = false, .drop_remainder = true});
    REQUIRE(exact.size() == 2);
    std::size_t count = 0;
    for (const auto& batch : exact) {
        REQUIRE(batch.rows(0) == std::int64_t(4 * count));
        ++count;
    }
    REQUIRE(count == 2);
    REQUIRE_THROWS_AS(gt::minibatches<double>({Tensor64(values)}, {xt::arange<std::int64_t>(9)}), gt::shape_error);
}

TEST_CASE("sharded minibatches split every batch of the same seeded order between the shards", "[data]")
{
    xt::xarray<double> values = xt::arange<double>(23.0);
    values.reshape({23, 1});
    const auto rows_of = [&](std::size_t shards, std::size_t shard) {
        gt::minibatches<double> batches({Tensor64(values)}, {}, {.batch_size = 8, .shards = shards, .shard = shard});
        gt::set_seed(4);
        std::vector<std::vector<std::int64_t>> rows;
        for (const auto& batch : batches) {
            rows.emplace_back(batch.rows.begin(), batch.rows.end());
        }
        return rows;
    };
    const auto whole = rows_of(1, 0);
    REQUIRE(whole.size() == 3);
    const std::vector<std::vector<std::vector<std::int64_t>>> parts{rows_of(3, 0), rows_of(3, 1), rows_of(3, 2)};
    for (std::size_t b = 0; b < whole.size(); ++b) {
        std::vector<std::int64_t> joined;
        for (const auto& part : parts) {
            joined.insert(joined.end(), part[b].begin(), part[b].end());
        }
        REQUIRE(joined == whole[b]);
    }
    // The last batch of 7 rows: 2, 2 and 3.
    REQUIRE(parts[0][2].size() == 2);
    REQUIRE(parts[2][2].size() == 3);
    // Every shard takes part in every batch, an empty part where a batch has
    // fewer rows than shards: all take the same number of steps.
    const auto eighth = rows_of(8, 0);
    REQUIRE(eighth.size() == whole.size());
    REQUIRE(eighth[0].size() == 1);
    REQUIRE(eighth[2].empty());
    REQUIRE_THROWS_AS(gt::minibatches<double>({Tensor64(values)}, {}, {.shards = 2, .shard = 2}), gt::argument_error);
}

TEST_CASE("prefetched minibatches are the same batches in the same order at any depth", "[data][threads]")
{
    xt::xarray<double> values = xt::arange<double>(103.0 * 3);
    values.reshape({103, 3});
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(103);
    const auto epochs = [&](std::size_t depth) {
        gt::minibatches<double> batches({Tensor64(values)}, {labels}, {.batch_size = 10, .prefetch = depth});
        gt::set_seed(21);
        std::vector<xt::xarray<double>> seen;
        for (int epoch = 0; epoch < 3; ++epoch) {
            for (const auto& batch : batches) {
                REQUIRE(xt::all(xt::equal(xt::view(batch.tensors[0].value(), xt::all(), 0),
                                          3.0 * xt::cast<double>(batch.labels[0]))));
                seen.push_back(batch.tensors[0].value());
                // Draws between batches (dropout, say) do not change the order.
                (void)gt::random_uniform<double>({5});
            }
        }
        return seen;
    };
    const auto inline_batches = epochs(0);
    REQUIRE(inline_batches.size() == 3 * 11);
    for (std::size_t depth : {1, 2, 8, 100}) {
        INFO("prefetch " << depth);
        REQUIRE(epochs(depth) == inline_batches);
    }
    // Leaving an epoch early stops the background thread without waiting for the rest.
    gt::minibatches<double> batches({Tensor64(values)}, {labels}, {.batch_size = 1, .prefetch = 4});
    for (const auto& batch : batches) {
        REQUIRE(batch.rows.size() == 1);
        break;
    }
}
