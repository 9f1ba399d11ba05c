// Under mpirun -np N: an MLP trained data-parallel (each rank on its shard of
// every batch, gradients averaged by rows) beside, on every rank, the same
// MLP trained in one process on the whole batches. Batches of 61 rows split
// unevenly over 2 and 3 ranks, and every epoch ends on a batch of 24. After
// 100 steps the two must agree within 1e-10 in float64 and 1e-5 in float32.
// Exits 1 when they do not.
//
//   mpi_data_parallel save PATH   rank 0 also saves the float64 model and optimizer
//   mpi_data_parallel load PATH   every rank loads PATH (saved by any number of
//                                 processes) and checks it against its own
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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

struct checkpointing {
    std::string mode;  // "save", "load" or none
    std::string path;
};

// The largest difference between two lists of arrays of the same shapes.
template <class Arrays>
double largest_difference(const Arrays& a, const Arrays& b)
{
    double largest = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, double(xt::amax(xt::abs(a[i] - b[i]))()));
    }
    return largest;
}

template <gt::dtype T>
std::vector<xt::xarray<double>> values_of(const gt::basic_sequential<T>& model, const gt::optimizer& optimizer)
{
    std::vector<xt::xarray<double>> values;
    for (const auto& variable : model.variables()) {
        values.emplace_back(variable.value());
        values.push_back(optimizer.slots(variable).at("momentum"));
    }
    return values;
}

template <gt::dtype T>
bool agrees(const char* dtype, double tolerance, const checkpointing& checkpoint = {})
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
    gt::minibatches<T> whole({points}, {labels}, {.batch_size = 61});
    gt::minibatches<T> shard({points}, {labels},
                             {.batch_size = 61, .shards = std::size_t(gt::mpi::size()), .shard = std::size_t(gt::mpi::rank())});
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
            (void)distributed.minimize(loss(parallel, batch), parallel, batch.rows.size());
        }
    }
    const auto expected = values_of(alone, alone_optimizer);
    const double largest = largest_difference(expected, values_of(parallel, parallel_optimizer));
    if (gt::mpi::is_root()) {
        std::printf("%s: after %zu steps on %d processes, the largest difference from one process is %.3g (at most %g)\n",
                    dtype, steps, gt::mpi::size(), largest, tolerance);
    }
    if (checkpoint.mode == "save" && gt::mpi::is_root()) {
        gt::save_checkpoint(checkpoint.path, parallel, parallel_optimizer);
    }
    if (checkpoint.mode == "load") {
        gt::basic_sequential<T> loaded = make_mlp<T>();
        gt::SGD loaded_optimizer({.learning_rate = 0.05, .momentum = 0.9});
        gt::load_checkpoint(checkpoint.path, loaded, loaded_optimizer);
        const double difference = largest_difference(expected, values_of(loaded, loaded_optimizer));
        std::printf("rank %d: the checkpoint differs from one process by %.3g after %llu steps\n", gt::mpi::rank(),
                    difference, (unsigned long long)loaded_optimizer.iterations());
        return largest <= tolerance && difference <= tolerance && loaded_optimizer.iterations() == steps;
    }
    return largest <= tolerance;
}

}  // namespace

int main(int argc, char** argv)
{
    gt::mpi::environment mpi(argc, argv);
    const checkpointing checkpoint{argc == 3 ? argv[1] : "", argc == 3 ? argv[2] : ""};
    const bool float64 = agrees<double>("float64", 1e-10, checkpoint);
    const bool float32 = agrees<float>("float32", 1e-5);
    return float64 && float32 ? 0 : 1;
}
