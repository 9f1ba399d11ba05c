// bench.cpp's workloads in LibTorch, each in its fastest form that LibTorch's
// documentation shows: tensors with requires_grad or nn modules, backward(),
// torch::optim::SGD.
#include "libtorch.hpp"

#include <torch/torch.h>

#include "harness.hpp"
#include "libtorch_convnet.hpp"

namespace bench::libtorch {

void set_threads(int threads)
{
    torch::set_num_threads(threads);
}

double per_op_ns(std::size_t size)
{
    const auto n = std::int64_t(size);
    const torch::Tensor x = torch::rand({n}).mul_(1).add_(0.5).requires_grad_();
    const torch::Tensor scale = torch::full({n}, 0.999f);
    const torch::Tensor shift = torch::full({n}, 0.001f);
    const torch::Tensor seed = scale.clone();
    const double total = median_ns(
        [&] {
            torch::Tensor y = x;
            for (int i = 0; i < 50; ++i) {
                y = y * scale + shift;
            }
            y.backward(seed);
            x.mutable_grad().reset();
        },
        2000);
    return total / 100;
}

double tutorial_ns(const float* input, const float* target, std::size_t examples)
{
    const auto n = std::int64_t(examples);
    const torch::Tensor inputs = torch::from_blob(const_cast<float*>(input), {n, 2}).clone();
    const torch::Tensor targets = torch::from_blob(const_cast<float*>(target), {n, 1}).clone();
    return median_ns(
        [&] {
            torch::Tensor weights = torch::zeros({2, 1}, torch::requires_grad());
            torch::optim::SGD optimizer({weights}, torch::optim::SGDOptions(0.002));
            for (int step = 0; step < 50; ++step) {
                optimizer.zero_grad();
                const torch::Tensor loss = (torch::matmul(inputs, weights) - targets).pow(2).sum() / 2;
                loss.backward();
                optimizer.step();
            }
        },
        200);
}

// As LibTorch's documentation writes an MLP: nn::Linear layers, whose bias
// goes into the GEMM (addmm), rather than matmul(x, w) + b.
double mlp_step_ns()
{
    const torch::Tensor images = torch::rand({128, 784});
    const torch::Tensor labels = torch::arange(128, torch::kLong).remainder(10);
    torch::nn::Linear hidden_layer(784, 256);
    torch::nn::Linear output_layer(256, 10);
    std::vector<torch::Tensor> parameters = hidden_layer->parameters();
    for (const auto& p : output_layer->parameters()) {
        parameters.push_back(p);
    }
    torch::optim::SGD optimizer(parameters, torch::optim::SGDOptions(0.01));
    return median_ns(
        [&] {
            optimizer.zero_grad();
            const torch::Tensor hidden = torch::relu(hidden_layer(images));
            const torch::Tensor loss = torch::nn::functional::cross_entropy(output_layer(hidden), labels);
            loss.backward();
            optimizer.step();
        },
        50);
}

double mlp_hvp_ns()
{
    torch::manual_seed(1);
    const torch::Tensor images = torch::rand({128, 784});
    const torch::Tensor labels = torch::arange(128, torch::kLong).remainder(10);
    const std::vector<torch::Tensor> parameters{
        (torch::randn({784, 256}) * 0.05).requires_grad_(), torch::zeros({256}, torch::requires_grad()),
        (torch::randn({256, 10}) * 0.05).requires_grad_(), torch::zeros({10}, torch::requires_grad())};
    std::vector<torch::Tensor> vectors;
    for (const auto& p : parameters) {
        vectors.push_back(torch::rand_like(p));
    }
    return median_ns(
        [&] {
            const torch::Tensor hidden = torch::relu(torch::matmul(images, parameters[0]) + parameters[1]);
            const torch::Tensor loss = torch::nn::functional::cross_entropy(
                torch::matmul(hidden, parameters[2]) + parameters[3], labels);
            const auto gradients = torch::autograd::grad({loss}, parameters, {}, true, true);
            torch::Tensor dot = torch::zeros({});
            for (std::size_t i = 0; i < gradients.size(); ++i) {
                dot = dot + (gradients[i] * vectors[i]).sum();
            }
            (void)torch::autograd::grad({dot}, parameters);
        },
        50);
}

double matmul_ns()
{
    const torch::Tensor a = torch::rand({1024, 1024}, torch::requires_grad());
    const torch::Tensor b = torch::rand({1024, 1024}, torch::requires_grad());
    const torch::Tensor seed = torch::rand({1024, 1024});
    return median_ns(
        [&] {
            torch::matmul(a, b).backward(seed);
            a.mutable_grad().reset();
            b.mutable_grad().reset();
        },
        7);
}

// One Adam step of the Fashion-MNIST CNN (libtorch_convnet.hpp) at batch 100 on random images.
double cnn_step_ns()
{
    torch::manual_seed(1);
    const torch::Tensor images = torch::rand({100, 1, 28, 28});
    const torch::Tensor labels = torch::arange(100, torch::kLong).remainder(10);
    convnet model;
    torch::optim::Adam optimizer(model.parameters(), torch::optim::AdamOptions(1e-3));
    return median_ns(
        [&] {
            optimizer.zero_grad();
            const torch::Tensor loss = torch::nn::functional::cross_entropy(model.forward(images, true), labels);
            loss.backward();
            optimizer.step();
        },
        5);
}

// relu of a float tensor of `mib` MiB into a new tensor.
double relu_ms(std::size_t mib)
{
    const torch::Tensor x = torch::rand({std::int64_t(mib << 18)}).sub_(0.5);
    return median_ns([&] { (void)torch::relu(x); }, 9) / 1e6;
}

// conv2d forward and backward, same padding, NCHW as LibTorch keeps images.
double conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t filters, std::size_t kernel)
{
    const auto b = std::int64_t(batch), s = std::int64_t(size), c = std::int64_t(channels), f = std::int64_t(filters),
               k = std::int64_t(kernel);
    const torch::Tensor input = torch::rand({b, c, s, s}, torch::requires_grad());
    const torch::Tensor weight = torch::rand({f, c, k, k}, torch::requires_grad());
    const torch::Tensor seed = torch::rand({b, f, s, s});
    return median_ns(
        [&] {
            torch::conv2d(input, weight, {}, 1, k / 2).backward(seed);
            input.mutable_grad().reset();
            weight.mutable_grad().reset();
        },
        7);
}

// A depthwise convolution: one group per channel, multiplier 1.
double depthwise_conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t kernel)
{
    const auto b = std::int64_t(batch), s = std::int64_t(size), c = std::int64_t(channels), k = std::int64_t(kernel);
    const torch::Tensor input = torch::rand({b, c, s, s}, torch::requires_grad());
    const torch::Tensor weight = torch::rand({c, 1, k, k}, torch::requires_grad());
    const torch::Tensor seed = torch::rand({b, c, s, s});
    return median_ns(
        [&] {
            torch::conv2d(input, weight, {}, 1, k / 2, 1, c).backward(seed);
            input.mutable_grad().reset();
            weight.mutable_grad().reset();
        },
        7);
}

// One step of a transformer encoder block (post-norm, as nn::TransformerEncoderLayer):
// batch 32, sequence 128, width 128, 4 heads, feed-forward 512, no dropout, Adam.
double transformer_step_ns()
{
    torch::manual_seed(1);
    const torch::Tensor x = torch::rand({128, 32, 128});
    torch::nn::TransformerEncoderLayer block(
        torch::nn::TransformerEncoderLayerOptions(128, 4).dim_feedforward(512).dropout(0.0));
    torch::optim::Adam optimizer(block->parameters(), torch::optim::AdamOptions(1e-3));
    return median_ns(
        [&] {
            optimizer.zero_grad();
            const torch::Tensor loss = block(x).square().mean();
            loss.backward();
            optimizer.step();
        },
        7);
}

double recurrent_ns(bool lstm)
{
    torch::manual_seed(1);
    const torch::Tensor x = torch::rand({64, 100, 128});
    const auto run = [&](auto& layer) {
        return median_ns(
            [&] {
                const torch::Tensor output = std::get<0>(layer->forward(x));
                output.select(1, 99).sum().backward();
                for (auto& p : layer->parameters()) {
                    p.mutable_grad().reset();
                }
            },
            5);
    };
    if (lstm) {
        torch::nn::LSTM layer(torch::nn::LSTMOptions(128, 256).batch_first(true));
        return run(layer);
    }
    torch::nn::GRU layer(torch::nn::GRUOptions(128, 256).batch_first(true));
    return run(layer);
}

}  // namespace bench::libtorch
