// The Fashion-MNIST CNN sample's counterpart in LibTorch: the same network,
// data, optimizer (Adam, 1e-3), batch (100, shuffled every epoch) and test,
// so that their wall times compare.
//
//   libtorch_fashion_mnist [--epochs N] [--threads N]
//
// The images come from Debian's dataset-fashion-mnist through gradtape's
// reader; everything else is LibTorch.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gradtape/datasets.hpp>

#include "libtorch_convnet.hpp"

namespace {

torch::Tensor images_of(const gradtape::Tensor& images)
{
    const auto& values = images.value();
    // [N, H, W, 1] and [N, 1, H, W] hold the same bytes.
    return torch::from_blob(const_cast<float*>(values.data()),
                            {std::int64_t(values.shape()[0]), 1, std::int64_t(values.shape()[1]),
                             std::int64_t(values.shape()[2])})
        .clone();
}

torch::Tensor labels_of(const xt::xarray<std::int64_t>& labels)
{
    return torch::from_blob(const_cast<std::int64_t*>(labels.data()), {std::int64_t(labels.size())}, torch::kLong)
        .clone();
}

}  // namespace

int main(int argc, char** argv)
{
    int epochs = 12;
    int threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--epochs") == 0) {
            epochs = std::atoi(argv[i + 1]);
        } else if (std::strcmp(argv[i], "--threads") == 0) {
            threads = std::atoi(argv[i + 1]);
        } else {
            std::fprintf(stderr, "usage: %s [--epochs N] [--threads N]\n", argv[0]);
            return 2;
        }
    }
    torch::set_num_threads(threads);
    torch::manual_seed(1);
    const gradtape::image_dataset data = gradtape::fashion_mnist();
    const torch::Tensor train_images = images_of(data.train_images);
    const torch::Tensor train_labels = labels_of(data.train_labels);
    const torch::Tensor test_images = images_of(data.test_images);
    const torch::Tensor test_labels = labels_of(data.test_labels);

    bench::libtorch::convnet model;
    torch::optim::Adam optimizer(model.parameters(), torch::optim::AdamOptions(1e-3));
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t rows = train_images.size(0);
    for (int epoch = 1; epoch <= epochs; ++epoch) {
        const torch::Tensor order = torch::randperm(rows, torch::kLong);
        double total = 0;
        std::int64_t steps = 0;
        for (std::int64_t first = 0; first < rows; first += 100) {
            const torch::Tensor rows_of_batch = order.slice(0, first, std::min(first + 100, rows));
            optimizer.zero_grad();
            const torch::Tensor loss = torch::nn::functional::cross_entropy(
                model.forward(train_images.index_select(0, rows_of_batch), true),
                train_labels.index_select(0, rows_of_batch));
            loss.backward();
            optimizer.step();
            total += loss.item<double>();
            ++steps;
        }
        torch::NoGradGuard no_grad;
        std::int64_t correct = 0;
        for (std::int64_t first = 0; first < test_images.size(0); first += 1000) {
            const torch::Tensor logits = model.forward(test_images.slice(0, first, first + 1000), false);
            correct += logits.argmax(1).eq(test_labels.slice(0, first, first + 1000)).sum().item<std::int64_t>();
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf("epoch %2d  mean loss %.4f  test accuracy %.4f  %.0f s\n", epoch, total / double(steps),
                    double(correct) / double(test_images.size(0)), seconds);
        std::fflush(stdout);
    }
}
