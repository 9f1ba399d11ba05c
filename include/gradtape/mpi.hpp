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
//       for (const auto& batch : batches) optimizer.minimize(loss_fn, model, batch.rows.size());
//       if (gt::mpi::is_root()) gt::save_checkpoint("model.npz", model, adam);
//   }
//
//   mpirun -np 2 ./train            (one machine)
//   mpirun -np 8 -H a:4,b:4 ./train  (two machines, four processes each)
#pragma once

#include <chrono>
#include <cstddef>
#include <exception>
#include <string>
#include <vector>

#include "layers.hpp"
#include "optim.hpp"
#include "source_location.hpp"
#include "tape.hpp"

namespace gradtape::mpi {

/// MPI for the program's life: MPI_Init_thread (the funneled level: only
/// the thread that made it calls MPI) and MPI_Finalize. While it lives, an
/// exception that escapes (std::terminate) or passes through its destructor
/// ends the whole job with this rank's message, instead of leaving the other
/// ranks waiting in their next collective. One per program.
class environment {
public:
    /// Initialises MPI with the program's arguments (MPI_Init_thread).
    environment(int& argc, char**& argv);
    /// Finalises MPI, after every rank has arrived.
    ~environment();
    environment(const environment&) = delete;
    environment& operator=(const environment&) = delete;

    /// Ends every rank of the job at once, printing `why` with this rank's number.
    [[noreturn]] static void abort(const std::string& why);
};

// Note [Collectives agree first]: every collective of this library (and the
// end of the environment) starts with one small allreduce in which each rank
// says which collective it is in, how many means it has taken so far, what
// the others must match (the root, the tensors' shapes) and whether its own
// checks passed. Where they differ, or a check failed on any rank, every rank
// throws the same argument_error, naming each rank's state, instead of some
// waiting for ever in a collective the others never reach: ranks that take
// different numbers of steps are named when the first of them ends. So
// every rank must take the same steps: with minibatches, give every rank the
// same data set and shards = size(), which gives each its part (possibly
// empty) of every batch.

[[nodiscard]] int rank();
[[nodiscard]] int size();
[[nodiscard]] inline bool is_root()
{
    return rank() == 0;
}

/// Every rank's variables take root's values. Every rank must hold the same
/// names and shapes in the same order: a difference is an argument_error on
/// every rank, naming the first rank and variable that differ.
template <dtype T>
void broadcast_variables(const std::vector<basic_variable<T>>& variables, int root = 0,
                         source_location site = source_location::current());
/// The same for every variable of a model (built), moving statistics included.
template <dtype T>
void broadcast_variables(const basic_layer<T>& model, int root = 0,
                         source_location site = source_location::current());

/// The mean over ranks of each tensor. Tensors under 1 MiB are packed into
/// buffers of at most fusion_bytes, each summed by one allreduce (Horovod's
/// tensor fusion); a larger one is summed in a buffer of its own. Every rank
/// must pass tensors of the same shapes in the same order.
inline constexpr std::size_t fusion_bytes = std::size_t{64} << 20;
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors,
                                                          source_location site = source_location::current());
/// The same, each rank's tensors weighted by its `rows`: the sum over ranks
/// of rows * tensor, over the sum of rows. Gradients of a mean over each
/// rank's rows so become the gradient of the mean over all of them, however
/// the rows were split. A rank of no rows adds nothing (a mean over no rows is
/// NaN, and is not read); no rows on any rank is an argument_error.
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> allreduce_mean(const std::vector<basic_tensor<T>>& tensors,
                                                          std::size_t rows,
                                                          source_location site = source_location::current());

namespace detail {
// allreduce_mean(tensors, rows); or, where this rank's step failed before it
// (`failure`), the agreement that ends the step on every rank: this rank
// rethrows its exception, the others throw an argument_error naming it.
template <dtype T>
[[nodiscard]] std::vector<basic_tensor<T>> allreduce_step(const std::vector<basic_tensor<T>>& tensors,
                                                          std::size_t rows, const std::exception_ptr& failure,
                                                          const source_location& site);
}  // namespace detail

/// An optimizer whose updates use the gradients averaged over every rank,
/// so that every rank's variables stay equal. It wraps one of the library's
/// optimizers, which keeps the state (and goes into checkpoints). Each step
/// takes this rank's row count, over which its loss is a mean: each rank's
/// gradient is weighted by it, so that any number of processes takes the
/// step one process would take on the whole batch, whatever its size.
class distributed_optimizer {
public:
    /// Wraps `inner`, which applies the averaged gradients.
    explicit distributed_optimizer(optimizer& inner) : inner_(inner) {}

    /// Averages this rank's gradients, of a batch of `rows`, with the other
    /// ranks' and applies the average with the inner optimizer.
    template <dtype T>
    void apply_gradients(const std::vector<basic_tensor<T>>& gradients, const std::vector<basic_variable<T>>& variables,
                         std::size_t rows, source_location site = source_location::current())
    {
        step(gradients, variables, rows, nullptr, site);
    }

    /// As optimizer::minimize(loss_fn, model): this rank's loss, a mean over
    /// its `rows` (batch.rows.size()), its gradient averaged over the ranks.
    /// Where the loss or its gradient fails on one rank, the step ends on
    /// every rank, with that rank's message, and no variable changes.
    template <class LossFn, dtype T>
    basic_tensor<T> minimize(LossFn&& loss_fn, const basic_layer<T>& model, std::size_t rows,
                             source_location site = source_location::current())
    {
        ::gradtape::detail::model_gradients<T> computed;
        std::exception_ptr failure;
        try {
            computed = ::gradtape::detail::gradients_of_model(loss_fn, model, site);
        } catch (...) {
            failure = std::current_exception();
        }
        step(computed.gradients, computed.variables, rows, failure, site);
        return computed.loss;
    }

    /// The optimizer that applies the steps.
    [[nodiscard]] optimizer& inner() noexcept { return inner_; }
    /// Time spent averaging gradients so far: the allreduce's share of the steps.
    [[nodiscard]] std::chrono::duration<double> communication_time() const noexcept { return communication_; }

private:
    template <dtype T>
    void step(const std::vector<basic_tensor<T>>& gradients, const std::vector<basic_variable<T>>& variables,
              std::size_t rows, const std::exception_ptr& failure, const source_location& site)
    {
        const auto start = std::chrono::steady_clock::now();
        const std::vector<basic_tensor<T>> averaged = detail::allreduce_step(gradients, rows, failure, site);
        communication_ += std::chrono::steady_clock::now() - start;
        inner_.apply_gradients(averaged, variables, site);
    }

    optimizer& inner_;
    std::chrono::duration<double> communication_{};
};

}  // namespace gradtape::mpi
