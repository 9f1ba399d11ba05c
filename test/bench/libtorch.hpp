// The benchmark workloads written in LibTorch, for the side-by-side figures.
// Declared without Torch's headers, which take long to compile.
#pragma once

#include <cstddef>

namespace bench::libtorch {

// Intra-op threads for LibTorch (its own pool, and OpenBLAS under it).
void set_threads(int threads);

// The same workloads as bench.cpp's, in the same units.
double per_op_ns(std::size_t size);
double tutorial_ns(const float* input, const float* target, std::size_t examples);
double mlp_step_ns();
double matmul_ns();
double cnn_step_ns();
double conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t filters, std::size_t kernel);
double depthwise_conv2d_ns(std::size_t batch, std::size_t size, std::size_t channels, std::size_t kernel);
double transformer_step_ns();
double relu_ms(std::size_t mib);
// The MLP loss of mlp_step_ns (its four parameters, no step): a Hessian-vector
// product by double backward (autograd::grad with create_graph, then the
// gradient of its dot with v).
double mlp_hvp_ns();
// An LSTM (else a GRU), batch-first, 64x100x128 to 256 units: the gradient of the last output's sum.
double recurrent_ns(bool lstm);

}  // namespace bench::libtorch
