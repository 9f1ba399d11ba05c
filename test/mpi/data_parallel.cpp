// Under mpirun -np N: an MLP trained data-parallel (each rank on its shard of
// every batch, gradients averaged) beside, on every rank, the same MLP trained
// in one process on the whole batches. After 100 steps the two must agree
// within 1e-10 in float64 and 1e-5 in float32. Exits 1 when they do not.
#include <cmath>
#include <cstdio>

#include <gradtape/gradtape.hpp>
#include <gradtape/mpi.hpp>

namespace gt = gradtape;

namespace {

template <gt::dtype T>
gt::basic_sequential<T> make_mlp()
{
    gt::set_seed(5);
    // The 512x512 kernel (1 MiB or more) is averaged from its own buffer, the others packed together.
    gt::basic_sequential<T> model({gt::basic_dense<T>(512, {.activation = "tanh"}),
                                   gt::basic_dense<T>(512, {.activation = "tanh"}), gt::basic_dense<T>(3)},
                                  "mlp");
    model.build({1, 8});
    return model;
}

template <gt::dtype T>
bool agrees(const char* dtype, double tolerance)
{
    gt::set_seed(3);
    const gt::basic_tensor<T> points = gt::random_normal<T>({512, 8});
    const xt::xarray<std::int64_t> labels = gt::argmax(points, 1) % 3;

    gt::basic_sequential<T> alone = make_mlp<T>();
    gt::basic_sequential<T> parallel = make_mlp<T>();
    gt::mpi::broadcast_variables(parallel);
    gt::SGD alone_optimizer({.learning_rate = 0.05, .momentum = 0.9});
    gt::SGD parallel_optimizer({.learning_rate = 0.05, .momentum = 0.9});
    gt::mpi::distributed_optimizer distributed(parallel_optimizer);
    gt::minibatches<T> whole({points}, {labels}, {.batch_size = 64});
    gt::minibatches<T> shard({points}, {labels},
                             {.batch_size = 64, .shards = std::size_t(gt::mpi::size()), .shard = std::size_t(gt::mpi::rank())});
    const auto loss = [](const gt::basic_sequential<T>& model, const auto& batch) {
        return [&] {
            return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(batch.labels[0], model(batch.tensors[0])));
        };
    };
    constexpr std::size_t steps = 100;
    for (std::size_t epoch = 0, taken = 0; taken < steps; ++epoch, taken += whole.size()) {
        // The same seed before each epoch's order: both see the same batches.
        gt::set_seed(100 + epoch);
        std::size_t step = taken;
        for (const auto& batch : whole) {
            if (step++ == steps) {
                break;
            }
            (void)alone_optimizer.minimize(loss(alone, batch), alone);
        }
        gt::set_seed(100 + epoch);
        step = taken;
        for (const auto& batch : shard) {
            if (step++ == steps) {
                break;
            }
            (void)distributed.minimize(loss(parallel, batch), parallel);
        }
    }
    double largest = 0;
    const auto a = alone.variables();
    const auto b = parallel.variables();
    for (std::size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, double(xt::amax(xt::abs(a[i].value() - b[i].value()))()));
    }
    if (gt::mpi::is_root()) {
        std::printf("%s: after %zu steps on %d processes, the largest difference from one process is %.3g (at most %g)\n",
                    dtype, steps, gt::mpi::size(), largest, tolerance);
    }
    return largest <= tolerance;
}

}  // namespace

int main(int argc, char** argv)
{
    gt::mpi::environment mpi(argc, argv);
    const bool float64 = agrees<double>("float64", 1e-10);
    const bool float32 = agrees<float>("float32", 1e-5);
    return float64 && float32 ? 0 : 1;
}
