// Data-parallel training over MPI (Open MPI: libopenmpi-dev, openmpi-bin),
// as Horovod does it: every process holds the whole model, trains on its
// shard of each batch, and the gradients are averaged across processes
// before every update. A separate library, gradtape-mpi (pkg-config
// gradtape-mpi, Meson dependency('gradtape-mpi')), so that a program without
// MPI never links it.
//
//   int main(int argc, char** argv) {
//       gt::mpi::environment mpi(argc, argv);                     // 1
//       ...
//       gt::minibatches<float> batches({x}, {y}, {.batch_size = 512,
//                                      .shards = gt::mpi::size(), .shard = gt::mpi::rank()});   // 2
//       gt::mpi::distributed_optimizer optimizer(adam);            // 3
//       model.build(input_shape);
//       gt::mpi::broadcast_variables(model);
//       for (const auto& batch : batches) optimizer.minimize(loss_fn, model);
//       if (gt::mpi::is_root()) gt::save_checkpoint("model.npz", model, adam);
//   }
//
//   mpirun -np 2 ./train            (one machine)
//   mpirun -np 8 -H a:4,b:4 ./train  (two machines, four processes each)
#pragma once

#include <chrono>
#include <cstddef>
#include <source_location>
#include <string>
#include <vector>

#include "layers.hpp"
#include "optim.hpp"
#include "tape.hpp"

namespace gradtape::mpi {

// MPI for the program's life: MPI_Init_thread (the funneled level: only
// the thread that made it calls MPI) and MPI_Finalize. While it lives, an
// exception that escapes (std::terminate) or passes through its destructor
// ends the whole job with this rank's message, instead of leaving the other
// ranks waiting in their next collective. One per program.
class environment {
public:
    environment(int& argc, char**& argv);
    ~environment();
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    // Ends every rank of the job at once, printing `why` with this rank's number.
    [[noreturn]] static void abort(const std::string& why);
};

[[nodiscard]] int rank();
[[nodiscard]] int size();
[[nodiscard]] inline bool is_root()
{
    return rank() == 0;
}

// Every rank's variables take root's values. Every rank must hold the same
// names and shapes in the same order: a difference is an argument_error on
// every rank, naming the first rank and variable that differ.
template <dtype T>
void broadcast_variables(const std::vector<basic_variable<T>>& variables, int root = 0,
                         std::source_location site = std::source_location::current());
// The same for every variable of a model (built), moving statistics included.
template <dtype T>
void broadcast_variables(const basic_layer<T>& model, int root = 0,
                         std::source_location site = std::source_location::current());

// The mean over ranks of each tensor. Tensors under 1 MiB are packed into
// buffers of at most fusion_bytes, each summed by one allreduce (Horovod's
// tensor fusion); a larger one is summed from its own buffer, without a copy.
// Every rank must pass tensors of the same shapes in the same order.
inline constexpr std::size_t fusion_bytes = std::size_t{64} << 20;
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors,
                                                          std::source_location site = std::source_location::current());

// An optimizer whose updates use the gradients averaged over every rank,
// so that every rank's variables stay equal. It wraps one of the library's
// optimizers, which keeps the state (and goes into checkpoints).
class distributed_optimizer {
public:
    explicit distributed_optimizer(optimizer& inner) : inner_(inner) {}

    template <dtype T>
    void apply_gradients(const std::vector<basic_tensor<T>>& gradients, const std::vector<basic_variable<T>>& variables,
                         std::source_location site = std::source_location::current())
    {
        const auto start = std::chrono::steady_clock::now();
        const std::vector<basic_tensor<T>> averaged = allreduce_mean(gradients, site);
        communication_ += std::chrono::steady_clock::now() - start;
        inner_.apply_gradients(averaged, variables, site);
    }

    // As optimizer::minimize(loss_fn, model): this rank's loss, its gradient
    // averaged over the ranks.
    template <class LossFn, dtype T>
    basic_tensor<T> minimize(LossFn&& loss_fn, const basic_layer<T>& model,
                             std::source_location site = std::source_location::current())
    {
        auto step = detail::gradients_of_model(loss_fn, model, site);
        apply_gradients(step.gradients, step.variables, site);
        return step.loss;
    }

    [[nodiscard]] optimizer& inner() noexcept { return inner_; }
    // Time spent averaging gradients so far: the allreduce's share of the steps.
    [[nodiscard]] std::chrono::duration<double> communication_time() const noexcept { return communication_; }

private:
    optimizer& inner_;
    std::chrono::duration<double> communication_{};
};

}  // namespace gradtape::mpi
