// SimpleRNN, LSTM, GRU and Bidirectional against Keras's equations written
// out below as plain loops in float64, and their gradients against finite
// differences at first and second order.
#include <cmath>
#include <string>
#include <vector>

#include "support.hpp"

using gradtape::Tensor64;
using support::random64;
using Catch::Matchers::Contains;

namespace {

namespace gt = gradtape;

enum class cell { simple_rnn, lstm, gru, gru_reset_before };

double sigmoid(double v)
{
    return 1 / (1 + std::exp(-v));
}

// x [F] times W [F, N], plus h [U] times U [U, N], plus b (each term left out when empty).
std::vector<double> affine(const std::vector<double>& x, const xt::xarray<double>& w, const std::vector<double>& h,
                           const xt::xarray<double>& u, const std::vector<double>& b)
{
    std::vector<double> z(w.shape()[1]);
    for (std::size_t j = 0; j < z.size(); ++j) {
        double sum = b.empty() ? 0.0 : b[j];
        for (std::size_t f = 0; f < x.size(); ++f) {
            sum += x[f] * w(f, j);
        }
        for (std::size_t k = 0; k < h.size(); ++k) {
            sum += h[k] * u(k, j);
        }
        z[j] = sum;
    }
    return z;
}

struct reference_result {
    // [batch][time][units] in processing order, and the final states [batch][state][units].
    std::vector<std::vector<std::vector<double>>> outputs;
    std::vector<std::vector<std::vector<double>>> states;
};

// Keras's recurrent loop: masked steps keep the state and repeat the last output (zeros before any).
double tanh_of(double v)
{
    return std::tanh(v);
}

double relu(double v)
{
    return v > 0 ? v : 0;
}

using activation_function = double (*)(double);

reference_result keras_loop(cell kind, const xt::xarray<double>& x, const xt::xarray<double>& kernel,
                            const xt::xarray<double>& recurrent, const xt::xarray<double>& bias,
                            const xt::xarray<double>& mask = {}, bool go_backwards = false,
                            const std::vector<xt::xarray<double>>& initial = {},
                            activation_function activation = tanh_of)
{
    const std::size_t batch = x.shape()[0];
    const std::size_t steps = x.shape()[1];
    const std::size_t features = x.shape()[2];
    const std::size_t units = recurrent.shape()[0];
    const std::size_t state_count = kind == cell::lstm ? 2 : 1;
    reference_result result;
    for (std::size_t n = 0; n < batch; ++n) {
        std::vector<std::vector<double>> state(state_count, std::vector<double>(units, 0.0));
        for (std::size_t s = 0; s < initial.size(); ++s) {
            for (std::size_t k = 0; k < units; ++k) {
                state[s][k] = initial[s](n, k);
            }
        }
        std::vector<double> output(units, 0.0);
        std::vector<std::vector<double>> outputs;
        for (std::size_t i = 0; i < steps; ++i) {
            const std::size_t t = go_backwards ? steps - 1 - i : i;
            std::vector<double> xt_row(features);
            for (std::size_t f = 0; f < features; ++f) {
                xt_row[f] = x(n, t, f);
            }
            const std::vector<double>& h = state[0];
            std::vector<std::vector<double>> next = state;
            const std::vector<double> none;
            if (kind == cell::simple_rnn) {
                const std::vector<double> b(bias.begin(), bias.end());
                const auto z = affine(xt_row, kernel, h, recurrent, b);
                for (std::size_t k = 0; k < units; ++k) {
                    next[0][k] = activation(z[k]);
                }
            } else if (kind == cell::lstm) {
                const std::vector<double> b(bias.begin(), bias.end());
                const auto z = affine(xt_row, kernel, h, recurrent, b);
                for (std::size_t k = 0; k < units; ++k) {
                    const double in = sigmoid(z[k]);
                    const double forget = sigmoid(z[units + k]);
                    const double candidate = activation(z[2 * units + k]);
                    const double out = sigmoid(z[3 * units + k]);
                    next[1][k] = forget * state[1][k] + in * candidate;
                    next[0][k] = out * activation(next[1][k]);
                }
            } else if (kind == cell::gru) {
                const std::vector<double> b_in(bias.begin(), bias.begin() + std::ptrdiff_t(3 * units));
                const std::vector<double> b_rec(bias.begin() + std::ptrdiff_t(3 * units), bias.end());
                const auto xz = affine(xt_row, kernel, none, recurrent, b_in);
                const auto m = affine(none, kernel, h, recurrent, b_rec);
                for (std::size_t k = 0; k < units; ++k) {
                    const double z = sigmoid(xz[k] + m[k]);
                    const double r = sigmoid(xz[units + k] + m[units + k]);
                    const double candidate = activation(xz[2 * units + k] + r * m[2 * units + k]);
                    next[0][k] = z * h[k] + (1 - z) * candidate;
                }
            } else {
                const std::vector<double> b(bias.begin(), bias.end());
                const auto xz = affine(xt_row, kernel, none, recurrent, b);
                const auto m = affine(none, kernel, h, recurrent, {});
                std::vector<double> z(units);
                std::vector<double> reset_h(units);
                for (std::size_t k = 0; k < units; ++k) {
                    z[k] = sigmoid(xz[k] + m[k]);
                    reset_h[k] = sigmoid(xz[units + k] + m[units + k]) * h[k];
                }
                const auto mh = affine(none, kernel, reset_h, recurrent, {});
                for (std::size_t k = 0; k < units; ++k) {
                    const double candidate = activation(xz[2 * units + k] + mh[2 * units + k]);
                    next[0][k] = z[k] * h[k] + (1 - z[k]) * candidate;
                }
            }
            if (mask.dimension() == 0 || mask(n, t) != 0) {
                state = next;
                output = next[0];
            }
            outputs.push_back(output);
        }
        result.outputs.push_back(outputs);
        result.states.push_back(state);
    }
    return result;
}

void require_close(double actual, double expected)
{
    REQUIRE(actual == Approx(expected).margin(1e-12).epsilon(1e-11));
}

// The layer's output at each step (return_sequences) against the loop's.
void require_sequences(const Tensor64& output, const reference_result& expected, bool time_order_reversed = false)
{
    const std::size_t steps = expected.outputs[0].size();
    REQUIRE(output.dimension() == 3);
    for (std::size_t n = 0; n < output.shape()[0]; ++n) {
        for (std::size_t t = 0; t < steps; ++t) {
            const auto& row = expected.outputs[n][time_order_reversed ? steps - 1 - t : t];
            for (std::size_t k = 0; k < row.size(); ++k) {
                require_close(output.value()(n, t, k), row[k]);
            }
        }
    }
}

void require_last(const Tensor64& output, const reference_result& expected)
{
    for (std::size_t n = 0; n < output.shape()[0]; ++n) {
        const auto& row = expected.outputs[n].back();
        for (std::size_t k = 0; k < row.size(); ++k) {
            require_close(output.value()(n, k), row[k]);
        }
    }
}

void require_state(const std::vector<Tensor64>& state, const reference_result& expected)
{
    REQUIRE(state.size() == expected.states[0].size());
    for (std::size_t s = 0; s < state.size(); ++s) {
        for (std::size_t n = 0; n < state[s].shape()[0]; ++n) {
            for (std::size_t k = 0; k < state[s].shape()[1]; ++k) {
                require_close(state[s].value()(n, k), expected.states[n][s][k]);
            }
        }
    }
}

xt::xarray<double> value_of(const gt::Layer64& layer, const std::string& path)
{
    for (const auto& [name, variable] : layer.named_variables()) {
        if (name == path) {
            return variable.value();
        }
    }
    FAIL("no variable " << path);
    return {};
}

// Moves every variable off its initial value, so that a bias of zeros or
// ones does not hide a term.
void perturb(const gt::Layer64& layer)
{
    for (auto variable : layer.variables()) {
        variable.assign_add(random64(variable.shape(), -0.3, 0.3));
    }
}

reference_result loop_of(cell kind, const gt::Layer64& layer, const std::string& path, const Tensor64& x,
                         const xt::xarray<double>& mask = {}, bool go_backwards = false,
                         const std::vector<xt::xarray<double>>& initial = {}, activation_function activation = tanh_of)
{
    return keras_loop(kind, x.value(), value_of(layer, path + "/kernel"), value_of(layer, path + "/recurrent_kernel"),
                      value_of(layer, path + "/bias"), mask, go_backwards, initial, activation);
}

}  // namespace

TEST_CASE("recurrent layers hold Keras's weights in Keras's layouts", "[recurrent]")
{
    gt::set_seed(3);
    const Tensor64 x = random64({2, 5, 3});
    gt::LSTM64 lstm(4);
    (void)lstm(x);
    REQUIRE(lstm.named_variables().size() == 3);
    REQUIRE(value_of(lstm, "lstm/kernel").shape() == std::vector<std::size_t>{3, 16});
    REQUIRE(value_of(lstm, "lstm/recurrent_kernel").shape() == std::vector<std::size_t>{4, 16});
    // unit_forget_bias: ones on the forget gate's slice, zeros elsewhere.
    const xt::xarray<double> bias = value_of(lstm, "lstm/bias");
    for (std::size_t j = 0; j < 16; ++j) {
        REQUIRE(bias(j) == (j >= 4 && j < 8 ? 1.0 : 0.0));
    }
    // The recurrent kernel is orthogonal: its 4 rows are orthonormal.
    const xt::xarray<double> u = value_of(lstm, "lstm/recurrent_kernel");
    for (std::size_t a = 0; a < 4; ++a) {
        for (std::size_t b = 0; b < 4; ++b) {
            double dot = 0;
            for (std::size_t j = 0; j < 16; ++j) {
                dot += u(a, j) * u(b, j);
            }
            REQUIRE(dot == Approx(a == b ? 1.0 : 0.0).margin(1e-12));
        }
    }
    gt::GRU64 gru(4);
    (void)gru(x);
    REQUIRE(value_of(gru, "gru/bias").shape() == std::vector<std::size_t>{2, 12});
    gt::GRU64 before(4, {.reset_after = false});
    (void)before(x);
    REQUIRE(value_of(before, "gru/bias").shape() == std::vector<std::size_t>{12});
    gt::SimpleRNN64 simple(4, {.use_bias = false});
    (void)simple(x);
    REQUIRE(simple.named_variables().size() == 2);
}

TEST_CASE("recurrent layers follow Keras's equations", "[recurrent]")
{
    gt::set_seed(4);
    const Tensor64 x = random64({3, 6, 2});
    const auto [kind, layer, path] = GENERATE(table<cell, std::string, std::string>({
        {cell::simple_rnn, "simple_rnn", "simple_rnn"},
        {cell::lstm, "lstm", "lstm"},
        {cell::gru, "gru", "gru"},
        {cell::gru_reset_before, "gru_reset_before", "gru"},
    }));
    INFO(layer);
    const bool sequences = GENERATE(false, true);
    const gt::recurrent_options options{.reset_after = kind != cell::gru_reset_before, .return_sequences = sequences};
    const auto made = [&]() -> gt::basic_recurrent_layer<double> {
        switch (kind) {
        case cell::simple_rnn: return gt::SimpleRNN64(5, options);
        case cell::lstm: return gt::LSTM64(5, options);
        default: return gt::GRU64(5, options);
        }
    };
    const gt::basic_recurrent_layer<double> rnn = made();
    rnn.build(x.shape());
    perturb(rnn);
    const gt::recurrent_result<double> result = rnn(x, {.initial_state = {}});
    const reference_result expected = loop_of(kind, rnn, path, x);
    if (sequences) {
        REQUIRE(result.output.shape() == gt::shape_type{3, 6, 5});
        require_sequences(result.output, expected);
    } else {
        REQUIRE(result.output.shape() == gt::shape_type{3, 5});
        require_last(result.output, expected);
    }
    require_state(result.state, expected);
    REQUIRE(support::same(rnn(x), result.output));
}

TEST_CASE("an activation other than Keras's default runs the step op by op, to the same equations",
          "[recurrent]")
{
    // tanh and sigmoid run as one fused op per step; relu takes the ops.
    gt::set_seed(10);
    const Tensor64 x = random64({2, 4, 3});
    const Tensor64 h0 = random64({2, 3});
    const Tensor64 c0 = random64({2, 3});
    gt::LSTM64 lstm(3, {.activation = "relu", .return_sequences = true});
    gt::GRU64 gru(3, {.activation = "relu", .return_sequences = true});
    for (const gt::Layer64& layer : {gt::Layer64(lstm), gt::Layer64(gru)}) {
        layer.build(x.shape());
        perturb(layer);
    }
    const auto lstm_result = lstm(x, {.initial_state = {h0, c0}});
    require_sequences(lstm_result.output, loop_of(cell::lstm, lstm, "lstm", x, {}, false, {h0.value(), c0.value()},
                                                  relu));
    const auto gru_result = gru(x, {.initial_state = {h0}});
    require_sequences(gru_result.output, loop_of(cell::gru, gru, "gru", x, {}, false, {h0.value()}, relu));
    const auto f = [&](const std::vector<Tensor64>& in) {
        return lstm(in[0], {.initial_state = {in[1], in[2]}}).output + gru(in[0], {.initial_state = {in[1]}}).output;
    };
    support::require_gradients(f, {x, h0, c0});
}

TEST_CASE("a masked step leaves the state as it was", "[recurrent]")
{
    gt::set_seed(5);
    const Tensor64 x = random64({3, 5, 2});
    // Padding at the end, at the start, and in the middle.
    const xt::xarray<double> mask = support::make64({1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1}, {3, 5}).value();
    const bool zero_output = GENERATE(false, true);
    gt::LSTM64 lstm(3, {.return_sequences = true, .zero_output_for_mask = zero_output});
    lstm.build(x.shape());
    perturb(lstm);
    const auto result = lstm(x, {.mask = Tensor64(mask)});
    const reference_result expected = loop_of(cell::lstm, lstm, "lstm", x, mask);
    require_state(result.state, expected);
    for (std::size_t n = 0; n < 3; ++n) {
        for (std::size_t t = 0; t < 5; ++t) {
            for (std::size_t k = 0; k < 3; ++k) {
                require_close(result.output.value()(n, t, k),
                              zero_output && mask(n, t) == 0 ? 0.0 : expected.outputs[n][t][k]);
            }
        }
    }
    // The first sequence's state is that of its first three steps run alone.
    const auto alone = lstm(gt::slice(x, {0, 0, 0}, {1, 3, -1}), {.initial_state = {}});
    for (std::size_t k = 0; k < 3; ++k) {
        require_close(result.state[0].value()(0, k), alone.state[0].value()(0, k));
        require_close(result.state[1].value()(0, k), alone.state[1].value()(0, k));
    }
}

TEST_CASE("go_backwards runs from the last step and an initial state starts the loop", "[recurrent]")
{
    gt::set_seed(6);
    const Tensor64 x = random64({2, 4, 3});
    gt::GRU64 gru(3, {.return_sequences = true, .go_backwards = true});
    gru.build(x.shape());
    perturb(gru);
    const xt::xarray<double> h0 = random64({2, 3}).value();
    const auto result = gru(x, {.initial_state = {Tensor64(h0)}});
    const reference_result expected = loop_of(cell::gru, gru, "gru", x, {}, true, {h0});
    // Keras gives the sequence in the order it ran: last step first.
    require_sequences(result.output, expected);
    require_state(result.state, expected);
}

TEST_CASE("Bidirectional merges a layer run forward with a copy run backward", "[recurrent]")
{
    gt::set_seed(7);
    const Tensor64 x = random64({2, 4, 3});
    const bool sequences = GENERATE(false, true);
    gt::Bidirectional64 both(gt::LSTM64(2, {.return_sequences = sequences}));
    both.build(x.shape());
    perturb(both);
    std::vector<std::string> names;
    for (const auto& [name, variable] : both.named_variables()) {
        names.push_back(name);
    }
    REQUIRE(names == std::vector<std::string>{"bidirectional/forward_lstm/kernel",
                                              "bidirectional/forward_lstm/recurrent_kernel",
                                              "bidirectional/forward_lstm/bias",
                                              "bidirectional/backward_lstm/kernel",
                                              "bidirectional/backward_lstm/recurrent_kernel",
                                              "bidirectional/backward_lstm/bias"});
    const auto result = both(x, {.initial_state = {}});
    const reference_result ahead = loop_of(cell::lstm, both, "bidirectional/forward_lstm", x);
    const reference_result behind = loop_of(cell::lstm, both, "bidirectional/backward_lstm", x, {}, true);
    REQUIRE(result.state.size() == 4);
    REQUIRE(result.output.shape().back() == 4);
    for (std::size_t n = 0; n < 2; ++n) {
        for (std::size_t t = 0; t < (sequences ? 4u : 1u); ++t) {
            for (std::size_t k = 0; k < 2; ++k) {
                // Step t of the backward run in time order is its (3 - t)th step.
                const double forward = sequences ? ahead.outputs[n][t][k] : ahead.outputs[n].back()[k];
                const double backward = sequences ? behind.outputs[n][3 - t][k] : behind.outputs[n].back()[k];
                const double first = sequences ? result.output.value()(n, t, k) : result.output.value()(n, k);
                const double second =
                    sequences ? result.output.value()(n, t, 2 + k) : result.output.value()(n, 2 + k);
                require_close(first, forward);
                require_close(second, backward);
            }
        }
    }
    gt::Bidirectional64 summed(gt::GRU64(2), {.merge_mode = gt::merge_mode::ave});
    REQUIRE(summed(x).shape() == gt::shape_type{2, 2});
}

TEST_CASE("recurrent layers have the gradients of their equations, to second order", "[recurrent]")
{
    gt::set_seed(8);
    const Tensor64 x = random64({2, 3, 2});
    const Tensor64 h0 = random64({2, 2});
    const Tensor64 c0 = random64({2, 2});
    const xt::xarray<double> mask = support::make64({1, 0, 1, 1, 1, 0}, {2, 3}).value();
    SECTION("LSTM with a mask and an initial state")
    {
        gt::LSTM64 lstm(2, {.return_sequences = true});
        lstm.build(x.shape());
        perturb(lstm);
        const auto f = [&](const std::vector<Tensor64>& in) {
            const auto result = lstm(in[0], {.mask = Tensor64(mask), .initial_state = {in[1], in[2]}});
            return result.output + gt::reduce_sum(result.state[1]);
        };
        support::require_gradients(f, {x, h0, c0});
        support::require_second_gradients(f, {x, h0, c0});
    }
    SECTION("GRU, both resets")
    {
        const bool reset_after = GENERATE(true, false);
        gt::GRU64 gru(2, {.reset_after = reset_after});
        gru.build(x.shape());
        perturb(gru);
        const auto f = [&](const std::vector<Tensor64>& in) {
            return gru(in[0], {.initial_state = {in[1]}}).output;
        };
        support::require_gradients(f, {x, h0});
        support::require_second_gradients(f, {x, h0});
    }
    SECTION("Bidirectional SimpleRNN")
    {
        gt::Bidirectional64 both(gt::SimpleRNN64(2, {.return_sequences = true}));
        const auto f = [&](const std::vector<Tensor64>& in) { return both(in[0]); };
        support::require_gradients(f, {x});
        support::require_second_gradients(f, {x});
    }
}

TEST_CASE("the gradient of a recurrent layer's weights matches finite differences", "[recurrent]")
{
    gt::set_seed(9);
    const Tensor64 x = random64({2, 3, 2});
    gt::LSTM64 lstm(2);
    lstm.build(x.shape());
    perturb(lstm);
    const auto loss = [&] { return support::weighted_sum(lstm(x)); };
    gt::GradientTape tape;
    const auto gradients = tape.gradient(loss(), lstm.trainable_variables());
    const double step = 1e-6;
    auto variables = lstm.trainable_variables();
    for (std::size_t v = 0; v < variables.size(); ++v) {
        INFO(variables[v].name());
        auto& variable = variables[v];
        const xt::xarray<double> original = variable.value();
        for (std::size_t i = 0; i < original.size(); ++i) {
            xt::xarray<double> moved = original;
            moved.flat(i) += step;
            variable.assign(Tensor64(moved));
            const double above = loss().item();
            moved.flat(i) -= 2 * step;
            variable.assign(Tensor64(moved));
            const double below = loss().item();
            variable.assign(Tensor64(original));
            REQUIRE(gradients[v].value().flat(i) == Approx((above - below) / (2 * step)).margin(1e-7));
        }
    }
}

TEST_CASE("recurrent layers refuse inputs, masks and states of the wrong shape, naming the layer", "[recurrent]")
{
    gt::LSTM64 lstm(3, {.name = "encoder"});
    const Tensor64 x = random64({2, 4, 5});
    REQUIRE_THROWS_WITH(lstm(random64({2, 5})),
                        Contains("layer 'encoder'") && Contains("rank 3") && Contains("(2, 5)"));
    REQUIRE_FALSE(lstm.built());
    (void)lstm(x);
    REQUIRE_THROWS_WITH(lstm(random64({2, 4, 6})), Contains("layer 'encoder'") && Contains("(?, ?, 5)"));
    REQUIRE_THROWS_WITH(lstm(x, {.mask = gt::ones<double>({2, 5})}),
                        Contains("mask of shape (2, 4)") && Contains("got (2, 5)"));
    REQUIRE_THROWS_WITH(lstm(x, {.initial_state = {gt::zeros<double>({2, 3})}}),
                        Contains("initial state of 2 tensors, got 1"));
    REQUIRE_THROWS_WITH(lstm(x, {.initial_state = {gt::zeros<double>({2, 3}), gt::zeros<double>({3, 3})}}),
                        Contains("initial states of shape (2, 3)") && Contains("got (3, 3)"));
    REQUIRE_THROWS_WITH(lstm(random64({2, 0, 5})), Contains("one step or more"));
    REQUIRE_THROWS_AS(gt::GRU64(0), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::SimpleRNN64(2, {.recurrent_initializer = "unitary"}), Contains("'unitary'"));
    gt::Bidirectional64 both(gt::GRU64(2));
    REQUIRE_THROWS_WITH(both(x, {.initial_state = {gt::zeros<double>({2, 2})}}),
                        Contains("layer 'bidirectional'") && Contains("2 tensors"));
}
