// Data-parallel throughput under mpirun: `mpi_scaling mlp|cnn STEPS` trains
// at a global batch of 512, each rank on its shard, and rank 0 prints the
// examples per second (the median of the steps after a warm-up) and the
// share of a step spent averaging gradients. mpi_scaling.py runs it on one
// and two processes and compares.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <gradtape/gradtape.hpp>
#include <gradtape/mpi.hpp>

namespace gt = gradtape;

int main(int argc, char** argv)
{
    gt::mpi::environment mpi(argc, argv);
    const std::string model_name = argc > 1 ? argv[1] : "mlp";
    const int steps = argc > 2 ? std::atoi(argv[2]) : 30;
    constexpr std::size_t global_batch = 512;
    const std::size_t local_batch = global_batch / std::size_t(gt::mpi::size());
    gt::set_seed(1);
    const bool cnn = model_name == "cnn";
    const gt::Tensor images = gt::random_uniform<float>(cnn ? gt::shape_type{local_batch, 28, 28, 1}
                                                            : gt::shape_type{local_batch, 784});
    const xt::xarray<std::int64_t> labels = xt::arange<std::int64_t>(std::int64_t(local_batch)) % 10;
    const gt::conv_options same{.padding = gt::padding::same, .activation = "relu"};
    gt::Sequential model =
        cnn ? gt::Sequential({gt::Conv2D(32, {5, 5}, same), gt::MaxPool2D(), gt::Conv2D(64, {5, 5}, same),
                              gt::MaxPool2D(), gt::Flatten(), gt::Dense(1024, {.activation = "relu"}),
                              gt::Dropout(0.4), gt::Dense(10)})
            : gt::Sequential({gt::Dense(256, {.activation = "relu"}), gt::Dense(10)});
    model.build(images.shape());
    gt::mpi::broadcast_variables(model);
    gt::Adam adam(1e-3);
    gt::mpi::distributed_optimizer optimizer(adam);
    std::vector<double> seconds;
    std::chrono::duration<double> communication_before{};
    for (int step = 0; step < steps; ++step) {
        if (step == 3) {
            communication_before = optimizer.communication_time();
        }
        const auto start = std::chrono::steady_clock::now();
        (void)optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, model(images, true))); },
            model, local_batch);
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    double total = 0;
    for (std::size_t i = 3; i < seconds.size(); ++i) {
        total += seconds[i];
    }
    const double communication = (optimizer.communication_time() - communication_before).count();
    std::vector<double> timed(seconds.begin() + 3, seconds.end());
    std::ranges::sort(timed);
    const double median = timed[timed.size() / 2];
    if (gt::mpi::is_root()) {
        std::printf("%s %d %.1f %.3f %.4f\n", model_name.c_str(), gt::mpi::size(), double(global_batch) / median,
                    communication / total, median);
    }
}
