// gradtape: eager tensors, a thread-local gradient tape, and optimizers.
//
//   #include <gradtape/gradtape.hpp>
//   namespace gt = gradtape;
//
//   gt::Variable w(gt::random_normal<float>({2, 1}, 0, 0.1), "weights");
//   gt::SGD opt(0.002);
//   for (int step = 0; step < 50; ++step) {
//       gt::GradientTape tape;
//       auto loss = gt::l2_loss(gt::matmul(input, w) - target);
//       opt.apply_gradients(tape.gradient(loss, {w}), {w});
//   }
#pragma once

#include "capture.hpp"
#include "checkpoint.hpp"
#include "data.hpp"
#include "datasets.hpp"
#include "debug.hpp"
#include "error.hpp"
#include "forward.hpp"
#include "gradcheck.hpp"
#include "hooks.hpp"
#include "layers.hpp"
#include "memory.hpp"
#include "metrics.hpp"
#include "nn.hpp"
#include "ops.hpp"
#include "optim.hpp"
#include "random.hpp"
#include "source_location.hpp"
#include "tape.hpp"
#include "tensor.hpp"
#include "training.hpp"
#include "variable.hpp"

/// Eager tensors, a thread-local gradient tape, layers and optimizers: every
/// public name of the library (`namespace gt = gradtape;` in the examples).
namespace gradtape {
}
