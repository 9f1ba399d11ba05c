// The convolutional network of Fashion-MNIST's own benchmark (convnet.py in
// Debian's dataset-fashion-mnist): two 5x5 convolutions with max pooling, a
// dense layer of 1024 with dropout, and 10 logits, trained with Adam on the
// real 60,000 images and measured on the 10,000 test images.
//
//   fashion_mnist_cnn [--epochs N] [--limit N] [--validation N] [--seed N] [--min-accuracy A]
//                     [--output PREFIX] [--resume] [--capture]
//
// --limit trains on the first N images only (a quick check). After every
// epoch it writes PREFIX.npz, a checkpoint that --resume goes on from; at the
// end PREFIX_curves.png (loss and accuracy per epoch, with gnuplot) and
// PREFIX_confusion.png. Exits 1 when the test accuracy is below
// --min-accuracy (0.916, the benchmark's published figure). With --capture
// (in one process), the training step is recorded at its first call for each
// batch size and replayed after (gradtape::capture).
//
// The learning rate halves when the monitored loss stops improving
// (ReduceLROnPlateau, patience 1), and training stops after 3 epochs without
// improvement, back at the best epoch's weights (EarlyStopping). The
// monitored loss is that of --validation N images held out from the end of
// the training set (Keras's validation_split), or with none the epoch's mean
// training loss. --resume feeds both the values of the epochs done (the
// curves file keeps them), so they decide as if never stopped; the best
// weights they hold are then those resumed.
//
// Built with gradtape-mpi, it also runs data-parallel: `mpirun -np 2
// fashion_mnist_cnn` trains each process on half of every batch of 100, and
// process 0 alone prints and writes files. The processes agree on the
// learning rate only through a validation set, which each evaluates whole:
// without one, the rate stays put.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <gradtape/gradtape.hpp>
#if GRADTAPE_SAMPLES_MPI
#include <gradtape/mpi.hpp>
#endif

#include <xtensor/xview.hpp>

namespace gt = gradtape;

namespace {

struct arguments {
    int epochs = 15;
    std::size_t limit = 0;
    std::size_t validation = 0;
    std::uint64_t seed = 1;
    double min_accuracy = 0.916;
    std::string output = "fashion_mnist_cnn";
    bool resume = false;
    bool capture = false;
};

arguments parse(int argc, char** argv)
{
    arguments args;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        const bool has_value = i + 1 < argc;
        if (flag == "--resume") {
            args.resume = true;
        } else if (flag == "--capture") {
            args.capture = true;
        } else if (flag == "--epochs" && has_value) {
            args.epochs = std::atoi(argv[++i]);
        } else if (flag == "--limit" && has_value) {
            args.limit = std::strtoull(argv[++i], nullptr, 10);
        } else if (flag == "--validation" && has_value) {
            args.validation = std::strtoull(argv[++i], nullptr, 10);
        } else if (flag == "--seed" && has_value) {
            args.seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (flag == "--min-accuracy" && has_value) {
            args.min_accuracy = std::atof(argv[++i]);
        } else if (flag == "--output" && has_value) {
            args.output = argv[++i];
        } else {
            std::fprintf(stderr,
                         "usage: %s [--epochs N] [--limit N] [--validation N] [--seed N] [--min-accuracy A] "
                         "[--output PREFIX] [--resume] [--capture]\n",
                         argv[0]);
            std::exit(2);
        }
    }
    return args;
}

gt::Sequential convnet()
{
    const gt::conv_options same{.padding = gt::padding::same, .activation = "relu"};
    return gt::Sequential({gt::Conv2D(32, {5, 5}, same), gt::MaxPool2D(), gt::Conv2D(64, {5, 5}, same),
                           gt::MaxPool2D(), gt::Flatten(), gt::Dense(1024, {.activation = "relu"}), gt::Dropout(0.4),
                           gt::Dense(10)},
                          "convnet");
}

// The values monitored in the epochs a resumed run has done: the curves
// file's fourth column.
std::vector<double> monitored_history(const std::string& curves, int epochs_done)
{
    std::vector<double> values;
    std::ifstream in(curves);
    for (std::string line; std::getline(in, line) && int(values.size()) < epochs_done;) {
        std::istringstream fields(line);
        double epoch = 0, loss = 0, accuracy = 0, monitored = 0;
        if (line.starts_with("#") || !(fields >> epoch >> loss >> accuracy >> monitored)) {
            continue;
        }
        values.push_back(monitored);
    }
    return values;
}

void plot_curves(const std::string& prefix)
{
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
        std::cout << "gnuplot is not installed: skipping " << prefix << "_curves.png (the data is in " << prefix
                  << "_curves.dat)\n";
        return;
    }
    const std::string script = prefix + "_curves.gnuplot";
    std::ofstream(script) << "set terminal pngcairo size 1000,420\n"
                          << "set output '" << prefix << "_curves.png'\n"
                          << "set multiplot layout 1,2\nset xlabel 'epoch'\nset key top right\n"
                          << "set title 'Training loss'\nset ylabel 'cross-entropy'\n"
                          << "plot '" << prefix << "_curves.dat' using 1:2 with linespoints lw 2 title 'train'\n"
                          << "set title 'Test accuracy'\nset ylabel 'accuracy'\nset key bottom right\n"
                          << "plot '' using 1:3 with linespoints lw 2 title 'test', "
                          << "0.916 with lines dt 2 title 'published 0.916'\n"
                          << "unset multiplot\n";
    if (std::system(("gnuplot '" + script + "'").c_str()) == 0) {
        std::cout << "wrote " << prefix << "_curves.png\n";
    }
}

}  // namespace

int main(int argc, char** argv)
{
#if GRADTAPE_SAMPLES_MPI
    gt::mpi::environment mpi(argc, argv);
    const auto shards = std::size_t(gt::mpi::size());
    const auto shard = std::size_t(gt::mpi::rank());
#else
    const std::size_t shards = 1;
    const std::size_t shard = 0;
#endif
    const bool root = shard == 0;
    const arguments args = parse(argc, argv);
    gt::set_seed(args.seed);
    const gt::image_dataset data = gt::fashion_mnist();
    const std::size_t available = data.train_images.shape()[0];
    if (args.validation >= available) {
        std::fprintf(stderr, "--validation %zu leaves no training images of %zu\n", args.validation, available);
        return 2;
    }
    const std::size_t rows = args.limit > 0 ? std::min(args.limit, available - args.validation)
                                            : available - args.validation;
    const gt::Tensor images = gt::slice(data.train_images, {0, 0, 0, 0}, {std::ptrdiff_t(rows), -1, -1, -1});
    const xt::xarray<std::int64_t> labels = xt::view(data.train_labels, xt::range(0, rows));
    const std::size_t held_out = available - args.validation;
    const gt::Tensor validation_images =
        gt::slice(data.train_images, {held_out, 0, 0, 0}, {std::ptrdiff_t(args.validation), -1, -1, -1});
    const xt::xarray<std::int64_t> validation_labels = xt::view(data.train_labels, xt::range(held_out, available));

    gt::Sequential model = convnet();
    model.build({1, 28, 28, 1});
    gt::ReduceLROnPlateau plateau(1e-3, {.factor = 0.5, .patience = 1});
    gt::Adam optimizer({.learning_rate = plateau.schedule()});
    gt::EarlyStopping stopping(model, {.patience = 3, .restore_best_weights = true});
    const bool monitoring = args.validation > 0 || shards == 1;
#if GRADTAPE_SAMPLES_MPI
    gt::mpi::broadcast_variables(model);
    gt::mpi::distributed_optimizer distributed(optimizer);
    // Each rank's gradient weighs as many rows as its part of the batch has.
    const auto train = [&](auto loss_fn, std::size_t rows) { return distributed.minimize(loss_fn, model, rows); };
#else
    const auto train = [&](auto loss_fn, std::size_t) { return optimizer.minimize(loss_fn, model); };
#endif
    gt::minibatches<float> batches({images}, {labels},
                                   {.batch_size = 100, .prefetch = 2, .shards = shards, .shard = shard});
    if (args.capture && shards > 1) {
        std::fprintf(stderr, "--capture runs in one process: a replay does not exchange gradients\n");
        return 2;
    }
    auto captured_step = gt::capture([&](const gt::Tensor& batch_images, const xt::xarray<std::int64_t>& batch_labels) {
        return optimizer.minimize(
            [&] {
                return gt::reduce_mean(
                    gt::sparse_softmax_cross_entropy_with_logits(batch_labels, model(batch_images, true)));
            },
            model);
    });
    const std::string checkpoint = args.output + ".npz";
    const std::string curves = args.output + "_curves.dat";
    int first_epoch = 1;
    if (args.resume && std::filesystem::exists(checkpoint)) {
        gt::load_checkpoint(checkpoint, model, optimizer);
        first_epoch = int(optimizer.iterations() / batches.size()) + 1;
        for (const double value : monitored_history(curves, first_epoch - 1)) {
            (void)plateau.update(value);
            (void)stopping.update(value);
        }
        if (root) {
            std::printf("resumed from %s after epoch %d\n", checkpoint.c_str(), first_epoch - 1);
        }
    } else if (root) {
        std::ofstream(curves) << "# epoch  mean training loss  test accuracy  monitored loss\n";
    }
    if (root) {
        std::cout << model.summary();
    }

    const auto start = std::chrono::steady_clock::now();
    for (int epoch = first_epoch; epoch <= args.epochs; ++epoch) {
        gt::progress_bar bar("epoch " + std::to_string(epoch), batches.size());
        double total = 0;
        std::size_t step = 0;
        for (const auto& batch : batches) {
            const gt::Tensor loss =
                args.capture ? captured_step(batch.tensors[0], batch.labels[0])
                             : train(
                                   [&] {
                                       return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(
                                           batch.labels[0], model(batch.tensors[0], true)));
                                   },
                                   batch.rows.size());
            total += loss.item();
            ++step;
            if (root) {
                char status[32];
                std::snprintf(status, sizeof status, "loss %.4f", total / double(step));
                bar.update(step, status);
            }
        }
        bar.finish();
        const double mean_loss = total / double(step);
        const double monitored =
            args.validation > 0
                ? gt::evaluate(model, validation_images, validation_labels, {.batch_size = 1000, .progress = false})
                      .loss
                : mean_loss;
        const bool cut = monitoring && plateau.update(monitored);
        const bool stop = monitoring && stopping.update(monitored);
        if (root) {
            const gt::evaluation test = gt::evaluate(model, data.test_images, data.test_labels,
                                                     {.batch_size = 1000, .metrics = {"accuracy"}, .progress = false});
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::printf("epoch %2d  mean loss %.4f  %s %.4f  test accuracy %.4f  %.0f s%s\n", epoch, mean_loss,
                        args.validation > 0 ? "validation loss" : "monitored", monitored, test.metric("accuracy"),
                        seconds, cut ? "  (learning rate halved)" : "");
            std::ofstream(curves, std::ios::app)
                << epoch << ' ' << mean_loss << ' ' << test.metric("accuracy") << ' ' << monitored << '\n';
            gt::save_checkpoint(checkpoint, model, optimizer);
        }
        if (stop) {
            if (root) {
                std::printf("no improvement for 3 epochs: stopped, at the weights of epoch %zu\n",
                            stopping.best_epoch() + 1);
            }
            break;
        }
    }

    gt::confusion_matrix matrix(10, {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                     "Sneaker", "Bag", "Ankle boot"});
    matrix.add(data.test_labels, gt::argmax(gt::predict(model, data.test_images, {.batch_size = 1000}), -1));
    if (!root) {
        return matrix.accuracy() >= args.min_accuracy ? 0 : 1;
    }
    std::cout << matrix;
    matrix.write_png(args.output + "_confusion.png");
    plot_curves(args.output);
    std::printf("test accuracy %.4f (goal %.3f)\n", matrix.accuracy(), args.min_accuracy);
    return matrix.accuracy() >= args.min_accuracy ? 0 : 1;
}
