// SimpleRNN, LSTM and GRU with Keras's equations, weight layouts and
// defaults, and Bidirectional. A layer runs its steps in gradtape ops, so
// tapes record them and gradients of every order come from the ops' rules.
#include "layers/layer_node.hpp"

#include <numeric>

#include "core/dtypes.hpp"
#include "ops/recurrent.hpp"

namespace gradtape {

namespace {

using detail::activation_kind;
using detail::check_positive;
using detail::layer_node;

template <dtype T>
class recurrent_node : public layer_node<T> {
public:
    using layer_node<T>::layer_node;

    // The output and final state for a batch of sequences; inputs.training is decided already.
    virtual recurrent_result<T> sequence(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs,
                                         const source_location& site) = 0;
    // How many tensors the state has (h; h and c).
    [[nodiscard]] virtual std::size_t state_size() const = 0;
    // The same layer, not built, running the other way, named `name`.
    [[nodiscard]] virtual std::shared_ptr<recurrent_node> reversed(std::string name) const = 0;
    [[nodiscard]] virtual bool returns_sequences() const = 0;

    basic_tensor<T> call(const basic_tensor<T>& input, bool, const source_location& site) override
    {
        const recurrent_inputs<T> none;
        check_call(input, none, site);
        return sequence(input, none, site).output;
    }

    // As layer_node::run, with a mask and an initial state.
    recurrent_result<T> run_with(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs, bool training,
                                 const source_location& site)
    {
        const detail::layer_call_scope mode(training);
        check_call(input, inputs, site);
        recurrent_result<T> result;
        this->run_checked(
            input.shape(), site, [&] { this->build(input.shape(), site); },
            [&] {
                result = sequence(input, inputs, site);
                return result.output;
            });
        return result;
    }

    // Input [batch, time, features], mask [batch, time], each state [batch, units].
    void check_shapes(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs, std::size_t units,
                      const source_location& site) const
    {
        const auto refuse = [&](const std::string& what) { this->template refuse<shape_error>(site, what); };
        if (input.dimension() != 3) {
            refuse("takes inputs [batch, time, features] of rank 3, got " + detail::format_shape(input.shape()));
        }
        const std::size_t batch = input.shape()[0];
        const std::size_t steps = input.shape()[1];
        if (steps == 0) {
            refuse("needs sequences of one step or more, got " + detail::format_shape(input.shape()));
        }
        if (inputs.mask.defined() && inputs.mask.shape() != shape_type{batch, steps}) {
            refuse("takes a mask of shape " + detail::format_shape({batch, steps}) + " (batch, time) for inputs " +
                   detail::format_shape(input.shape()) + ", got " + detail::format_shape(inputs.mask.shape()));
        }
        check_state_count(inputs, site, "");
        for (const auto& state : inputs.initial_state) {
            if (!state.defined() || state.shape() != shape_type{batch, units}) {
                refuse("takes initial states of shape " + detail::format_shape({batch, units}) +
                       " (batch, units), got " +
                       (state.defined() ? detail::format_shape(state.shape()) : std::string("an undefined tensor")));
            }
        }
    }

    void check_state_count(const recurrent_inputs<T>& inputs, const source_location& site,
                           const std::string& order) const
    {
        if (!inputs.initial_state.empty() && inputs.initial_state.size() != state_size()) {
            this->template refuse<argument_error>(
                site, "takes an initial state of " + std::to_string(state_size()) +
                          (state_size() == 1 ? " tensor" : " tensors") + order + ", got " +
                          std::to_string(inputs.initial_state.size()));
        }
    }

    // Refuses inputs, a mask or an initial state this layer cannot take,
    // before the call (which names the layer in its own errors).
    virtual void check_call(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs,
                            const source_location& site) const = 0;
};

enum class cell_kind { simple_rnn, lstm, gru };

template <dtype T>
class cell_node final : public recurrent_node<T> {
public:
    cell_node(cell_kind kind, std::size_t units, recurrent_options options, const source_location& site)
        : recurrent_node<T>(detail::chosen_name(options.name, kind == cell_kind::lstm  ? "lstm"
                                                              : kind == cell_kind::gru ? "gru"
                                                                                       : "simple_rnn")),
          kind(kind), units(units), options(options), activation(detail::activation_named(options.activation, site)),
          recurrent_activation(detail::activation_named(options.recurrent_activation, site)),
          kernel_initializer(detail::initializer_named<T>(options.kernel_initializer, site)),
          recurrent_initializer(detail::initializer_named<T>(options.recurrent_initializer, site)),
          bias_initializer(detail::initializer_named<T>(options.bias_initializer, site))
    {
        check_positive(this->name, site, "units", std::ptrdiff_t(units));
    }

    void check_call(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs,
                    const source_location& site) const override
    {
        this->check_shapes(input, inputs, units, site);
    }

    // Keras's default activations run as one fused op per step (ops/recurrent.hpp).
    bool fused() const
    {
        return activation == activation_kind::tanh && recurrent_activation == activation_kind::sigmoid;
    }

    std::size_t gates() const { return kind == cell_kind::lstm ? 4 : kind == cell_kind::gru ? 3 : 1; }
    bool two_biases() const { return kind == cell_kind::gru && options.reset_after; }
    std::size_t state_size() const override { return kind == cell_kind::lstm ? 2 : 1; }
    bool returns_sequences() const override { return options.return_sequences; }

    std::shared_ptr<recurrent_node<T>> reversed(std::string name) const override
    {
        recurrent_options copy = options;
        copy.go_backwards = !copy.go_backwards;
        copy.name = std::move(name);
        return std::make_shared<cell_node>(kind, units, copy, source_location::current());
    }

    void build(const shape_type& shape, const source_location& site) override
    {
        if (shape.size() != 3) {
            this->template refuse<shape_error>(site, "takes inputs [batch, time, features] of rank 3, got " +
                                                         detail::format_shape(shape));
        }
        const std::size_t width = gates() * units;
        this->spec = detail::input_spec{{-1, -1, std::ptrdiff_t(shape[2])}, false};
        kernel = this->make_variable("kernel", kernel_initializer({shape[2], width}, site));
        recurrent_kernel = this->make_variable("recurrent_kernel", recurrent_initializer({units, width}, site));
        if (!options.use_bias) {
            return;
        }
        if (kind == cell_kind::lstm && options.unit_forget_bias) {
            bias = this->make_variable("bias", concat({bias_initializer({units}, site), ones<T>({units}, site),
                                                       bias_initializer({2 * units}, site)},
                                                      0, site));
        } else {
            bias = this->make_variable("bias", bias_initializer(two_biases() ? shape_type{2, width} : shape_type{width},
                                                                site));
        }
    }

    recurrent_result<T> sequence(const basic_tensor<T>& x, const recurrent_inputs<T>& inputs,
                                 const source_location& site) override
    {
        const std::size_t batch = x.shape()[0];
        const std::size_t steps = x.shape()[1];
        const auto width = std::ptrdiff_t(gates() * units);
        basic_tensor<T> input_bias;
        basic_tensor<T> recurrent_bias;
        if (bias && two_biases()) {
            const auto rows = split(*bias, {1, 1}, 0, site);
            input_bias = reshape(rows[0], {width}, site);
            recurrent_bias = reshape(rows[1], {width}, site);
        } else if (bias) {
            input_bias = *bias;
        }
        // Each step's input apart, in time order: the gradient of a slice is
        // the input's whole shape, so slicing a projection of all steps at
        // once would add time-many tensors of that size into its gradient.
        const std::vector<basic_tensor<T>> input_steps = time_slices(x, site);
        std::vector<basic_tensor<T>> mask_steps;
        if (inputs.mask.defined()) {
            mask_steps = time_slices(expand_dims(inputs.mask, 2, site), site);
        }

        std::vector<basic_tensor<T>> state = inputs.initial_state;
        if (state.empty()) {
            for (std::size_t k = 0; k < state_size(); ++k) {
                state.push_back(zeros<T>({batch, units}, site));
            }
        }
        const basic_tensor<T> no_output = mask_steps.empty() ? basic_tensor<T>{} : zeros<T>({batch, units}, site);
        basic_tensor<T> output = no_output;
        std::vector<basic_tensor<T>> outputs;
        outputs.reserve(options.return_sequences ? steps : 0);
        for (std::size_t n = 0; n < steps; ++n) {
            const std::size_t t = options.go_backwards ? steps - 1 - n : n;
            basic_tensor<T> projected = matmul(input_steps[t], *kernel, {}, site);
            if (input_bias.defined()) {
                projected = add(projected, input_bias, site);
            }
            std::vector<basic_tensor<T>> next = step(projected, state, recurrent_bias, site);
            if (mask_steps.empty()) {
                output = next[0];
                state = std::move(next);
            } else {
                // Keras: a masked step keeps the state, and its output is the last kept one (or zeros).
                const basic_tensor<T>& kept = mask_steps[t];
                output = where(kept, next[0], options.zero_output_for_mask ? no_output : output, site);
                for (std::size_t k = 0; k < state.size(); ++k) {
                    state[k] = where(kept, next[k], state[k], site);
                }
            }
            if (options.return_sequences) {
                outputs.push_back(output);
            }
        }
        return {options.return_sequences ? stack(outputs, 1, site) : output, state};
    }

    // [batch, time, n] -> time pieces of [batch, n]
    std::vector<basic_tensor<T>> time_slices(const basic_tensor<T>& sequences, const source_location& site) const
    {
        const std::size_t steps = sequences.shape()[1];
        const std::vector<std::ptrdiff_t> piece{std::ptrdiff_t(sequences.shape()[0]),
                                                std::ptrdiff_t(sequences.shape()[2])};
        std::vector<basic_tensor<T>> pieces = split(transpose(sequences, {1, 0, 2}, site),
                                                    std::vector<std::size_t>(steps, 1), 0, site);
        for (auto& one : pieces) {
            one = reshape(one, piece, site);
        }
        return pieces;
    }

    // The next state from one step's input projection (bias included).
    std::vector<basic_tensor<T>> step(const basic_tensor<T>& projected, const std::vector<basic_tensor<T>>& state,
                                      const basic_tensor<T>& recurrent_bias, const source_location& site) const
    {
        const basic_tensor<T>& h = state[0];
        const auto act = [&](const basic_tensor<T>& z) { return detail::activate(activation, z, site); };
        const auto gate = [&](const basic_tensor<T>& z) { return detail::activate(recurrent_activation, z, site); };
        switch (kind) {
        case cell_kind::simple_rnn:
            return {act(add(projected, matmul(h, *recurrent_kernel, {}, site), site))};
        case cell_kind::lstm: {
            const basic_tensor<T> gates = add(projected, matmul(h, *recurrent_kernel, {}, site), site);
            if (fused()) {
                return split(detail::lstm_cell(gates, state[1], site), {units, units}, 1, site);
            }
            const auto z = split(gates, {units, units, units, units}, 1, site);
            const basic_tensor<T> c = add(multiply(gate(z[1]), state[1], site), multiply(gate(z[0]), act(z[2]), site),
                                          site);
            return {multiply(gate(z[3]), act(c), site), c};
        }
        case cell_kind::gru: return {gru_step(projected, h, recurrent_bias, site)};
        }
        return state;
    }

    // h = z * h + (1 - z) * candidate, written as candidate + z * (h - candidate).
    basic_tensor<T> gru_step(const basic_tensor<T>& projected, const basic_tensor<T>& h,
                             const basic_tensor<T>& recurrent_bias, const source_location& site) const
    {
        const auto act = [&](const basic_tensor<T>& z) { return detail::activate(activation, z, site); };
        const auto gate = [&](const basic_tensor<T>& z) { return detail::activate(recurrent_activation, z, site); };
        basic_tensor<T> candidate;
        basic_tensor<T> z;
        if (options.reset_after) {
            basic_tensor<T> inner = matmul(h, *recurrent_kernel, {}, site);
            if (recurrent_bias.defined()) {
                inner = add(inner, recurrent_bias, site);
            }
            if (fused()) {
                return detail::gru_cell(projected, inner, h, site);
            }
            const auto x = split(projected, {units, units, units}, 1, site);
            const auto m = split(inner, {units, units, units}, 1, site);
            z = gate(add(x[0], m[0], site));
            const basic_tensor<T> r = gate(add(x[1], m[1], site));
            candidate = act(add(x[2], multiply(r, m[2], site), site));
        } else {
            const auto x = split(projected, {units, units, units}, 1, site);
            const auto kernels = split(*recurrent_kernel, {2 * units, units}, 1, site);
            const auto m = split(matmul(h, kernels[0], {}, site), {units, units}, 1, site);
            z = gate(add(x[0], m[0], site));
            const basic_tensor<T> r = gate(add(x[1], m[1], site));
            candidate = act(add(x[2], matmul(multiply(r, h, site), kernels[1], {}, site), site));
        }
        return add(candidate, multiply(z, subtract(h, candidate, site), site), site);
    }

    cell_kind kind;
    std::size_t units;
    recurrent_options options;
    activation_kind activation;
    activation_kind recurrent_activation;
    detail::initializer_function<T> kernel_initializer;
    detail::initializer_function<T> recurrent_initializer;
    detail::initializer_function<T> bias_initializer;
    std::optional<basic_variable<T>> kernel;
    std::optional<basic_variable<T>> recurrent_kernel;
    std::optional<basic_variable<T>> bias;
};

template <dtype T>
class bidirectional_node final : public recurrent_node<T> {
public:
    bidirectional_node(const std::shared_ptr<recurrent_node<T>>& layer, bidirectional_options options,
                       const source_location& site)
        : recurrent_node<T>(detail::chosen_name(options.name, "bidirectional")), merge(options.merge_mode),
          forward(layer), backward(layer->reversed("backward_" + layer->name))
    {
        if (!layer->adopted) {
            layer->name = "forward_" + layer->name;
        }
        this->adopt(forward, site);
        this->adopt(backward, site);
    }

    std::size_t state_size() const override { return forward->state_size() + backward->state_size(); }
    bool returns_sequences() const override { return forward->returns_sequences(); }
    std::shared_ptr<recurrent_node<T>> reversed(std::string name) const override
    {
        bidirectional_options options{merge, std::move(name)};
        return std::make_shared<bidirectional_node>(forward->reversed(forward->name), options,
                                                    source_location::current());
    }

    void build(const shape_type&, const source_location&) override {}

    void check_call(const basic_tensor<T>&, const recurrent_inputs<T>& inputs,
                    const source_location& site) const override
    {
        this->check_state_count(inputs, site, " (the forward layer's, then the backward's)");
    }

    recurrent_result<T> sequence(const basic_tensor<T>& x, const recurrent_inputs<T>& inputs,
                                 const source_location& site) override
    {
        const bool training = detail::decide_training(inputs.training);
        recurrent_inputs<T> ahead{inputs.mask, {}, training};
        recurrent_inputs<T> behind{inputs.mask, {}, training};
        if (!inputs.initial_state.empty()) {
            const auto middle = inputs.initial_state.begin() + std::ptrdiff_t(forward->state_size());
            ahead.initial_state.assign(inputs.initial_state.begin(), middle);
            behind.initial_state.assign(middle, inputs.initial_state.end());
        }
        recurrent_result<T> first = forward->run_with(x, ahead, training, site);
        recurrent_result<T> second = backward->run_with(x, behind, training, site);
        basic_tensor<T> back = second.output;
        if (returns_sequences()) {
            // The backward layer's sequence runs from the last step: put it in time order.
            const std::size_t steps = x.shape()[1];
            xt::xarray<std::int64_t> reverse = xt::xarray<std::int64_t>::from_shape({steps});
            std::iota(reverse.rbegin(), reverse.rend(), std::int64_t(0));
            back = gather(back, reverse, 1, site);
        }
        recurrent_result<T> result{merged(first.output, back, site), std::move(first.state)};
        result.state.insert(result.state.end(), second.state.begin(), second.state.end());
        return result;
    }

    basic_tensor<T> merged(const basic_tensor<T>& a, const basic_tensor<T>& b, const source_location& site) const
    {
        switch (merge) {
        case merge_mode::concat: return concat({a, b}, -1, site);
        case merge_mode::sum: return add(a, b, site);
        case merge_mode::mul: return multiply(a, b, site);
        case merge_mode::ave: return multiply(add(a, b, site), basic_tensor<T>(T(0.5)), site);
        }
        return a;
    }

    merge_mode merge;
    std::shared_ptr<recurrent_node<T>> forward;
    std::shared_ptr<recurrent_node<T>> backward;
};

}  // namespace

template <dtype T>
recurrent_result<T> basic_recurrent_layer<T>::operator()(const basic_tensor<T>& input, const recurrent_inputs<T>& inputs,
                                                         source_location site) const
{
    auto& node = static_cast<recurrent_node<T>&>(*this->node_);
    return node.run_with(input, inputs, detail::decide_training(inputs.training), site);
}

template <dtype T>
basic_simple_rnn<T>::basic_simple_rnn(std::size_t units, recurrent_options options, source_location site)
    : basic_recurrent_layer<T>(std::make_shared<cell_node<T>>(cell_kind::simple_rnn, units, std::move(options), site))
{
}

template <dtype T>
basic_lstm<T>::basic_lstm(std::size_t units, recurrent_options options, source_location site)
    : basic_recurrent_layer<T>(std::make_shared<cell_node<T>>(cell_kind::lstm, units, std::move(options), site))
{
}

template <dtype T>
basic_gru<T>::basic_gru(std::size_t units, recurrent_options options, source_location site)
    : basic_recurrent_layer<T>(std::make_shared<cell_node<T>>(cell_kind::gru, units, std::move(options), site))
{
}

template <dtype T>
basic_bidirectional<T>::basic_bidirectional(const basic_recurrent_layer<T>& layer, bidirectional_options options,
                                            source_location site)
    : basic_recurrent_layer<T>(std::make_shared<bidirectional_node<T>>(
          std::static_pointer_cast<recurrent_node<T>>(detail::layer_access::node(layer)), std::move(options), site))
{
}

#define GRADTAPE_INSTANTIATE_LAYERS(T)         \
    template class basic_recurrent_layer<T>;   \
    template class basic_simple_rnn<T>;        \
    template class basic_lstm<T>;              \
    template class basic_gru<T>;               \
    template class basic_bidirectional<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
