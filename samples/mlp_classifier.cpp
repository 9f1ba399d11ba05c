// A small experiment in one file: a seeded three-class spiral, a 2-64-64-3
// relu network of layers trained with Adam on shuffled minibatches, its progress, a
// picture of the decision regions and of the loss, and a checkpoint.
//
//   mlp_classifier [--seed N] [--steps N] [--output PREFIX] [--capture] [--monitor-gradients]
//
// Writes PREFIX.png (with gnuplot), PREFIX_*.dat (the plotted data) and
// PREFIX.npz (the weights, for numpy.load). Exits 1 below 95% training accuracy.
// Built with gradtape-mpi, `mpirun -np 2 mlp_classifier` trains each process
// on half of every batch, and process 0 alone prints and writes files.
// With --capture (in one process), the training step is recorded at its
// first call for each batch size and replayed after (gradtape::capture).
// With --monitor-gradients, every gradient norm of every variable goes to
// PREFIX_gradients.csv and is drawn in PREFIX_gradients.png.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <numbers>
#include <optional>
#include <string>

#include <unistd.h>

#include <gradtape/gradtape.hpp>
#if GRADTAPE_SAMPLES_MPI
#include <gradtape/mpi.hpp>
#endif

namespace gt = gradtape;

namespace {

struct arguments {
    std::uint64_t seed = 7;
    int steps = 3000;
    std::string output = "mlp_classifier";
    bool capture = false;
    bool monitor_gradients = false;
};

arguments parse(int argc, char** argv)
{
    arguments parsed;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        const bool valued = i + 1 < argc;
        if (flag == "--seed" && valued) {
            parsed.seed = std::stoull(argv[++i]);
        } else if (flag == "--steps" && valued) {
            parsed.steps = std::stoi(argv[++i]);
        } else if (flag == "--output" && valued) {
            parsed.output = argv[++i];
        } else if (flag == "--capture") {
            parsed.capture = true;
        } else if (flag == "--monitor-gradients") {
            parsed.monitor_gradients = true;
        } else {
            std::cerr << "usage: " << argv[0]
                      << " [--seed N] [--steps N] [--output PREFIX] [--capture] [--monitor-gradients]\n";
            std::exit(2);
        }
    }
    return parsed;
}

struct spiral {
    gt::Tensor points;                  // (3 * per_class, 2)
    xt::xarray<std::int64_t> labels;    // (3 * per_class,)
};

// Three arms of a spiral, as in CS231n's classic example: radius grows along
// each arm, the angle gets Gaussian noise.
spiral make_spiral(std::size_t per_class)
{
    constexpr std::size_t classes = 3;
    const gt::Tensor noise = gt::random_normal<float>({classes * per_class}, 0.0f, 0.2f);
    xt::xarray<float> points = xt::zeros<float>({classes * per_class, std::size_t{2}});
    xt::xarray<std::int64_t> labels = xt::zeros<std::int64_t>({classes * per_class});
    for (std::size_t c = 0; c < classes; ++c) {
        for (std::size_t i = 0; i < per_class; ++i) {
            const std::size_t row = c * per_class + i;
            const float radius = float(i) / float(per_class - 1);
            const float angle = 4.0f * (float(c) + radius) + noise.value()(row);
            points(row, 0) = radius * std::sin(angle);
            points(row, 1) = radius * std::cos(angle);
            labels(row) = std::int64_t(c);
        }
    }
    return {points, labels};
}

// Two hidden layers of 64 relu units, as He et al. initialise them, and three logits.
gt::Sequential make_network()
{
    const gt::dense_options hidden{.activation = "relu", .kernel_initializer = "he_normal"};
    return gt::Sequential({gt::Dense(64, hidden), gt::Dense(64, hidden), gt::Dense(3)}, "mlp");
}

// The class of the largest logit in each row.
xt::xarray<std::int64_t> predictions(const gt::Sequential& model, const gt::Tensor& points)
{
    return gt::argmax(model(points), -1);
}

// Step, loss and accuracy: a bar with an ETA on a terminal, plain lines in a pipe or a log.
void report(int step, int steps, float loss, double train_accuracy, std::chrono::steady_clock::time_point start)
{
    static const bool terminal = ::isatty(STDOUT_FILENO) != 0;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (terminal) {
        constexpr int width = 30;
        const int filled = width * step / steps;
        const double eta = step > 0 ? elapsed / step * (steps - step) : 0;
        std::printf("\r[%s%s] step %5d/%d  loss %.4f  accuracy %5.1f%%  ETA %4.1fs", std::string(filled, '#').c_str(),
                    std::string(width - filled, '.').c_str(), step, steps, double(loss), 100 * train_accuracy, eta);
        if (step == steps) {
            std::printf("\n");
        }
        std::fflush(stdout);
    } else {
        std::printf("step %5d  loss %.4f  accuracy %5.1f%%  %.1fs\n", step, double(loss), 100 * train_accuracy,
                    elapsed);
    }
}

void plot(const std::string& prefix, const gt::Sequential& model, const spiral& data, const std::vector<float>& losses)
{
    std::ofstream grid(prefix + "_regions.dat");
    constexpr int cells = 150;
    xt::xarray<float> lattice = xt::zeros<float>({std::size_t(cells * cells), std::size_t{2}});
    for (int i = 0; i < cells; ++i) {
        for (int j = 0; j < cells; ++j) {
            lattice(std::size_t(i * cells + j), 0) = -1.2f + 2.4f * float(j) / (cells - 1);
            lattice(std::size_t(i * cells + j), 1) = -1.2f + 2.4f * float(i) / (cells - 1);
        }
    }
    const auto region = predictions(model, lattice);
    for (std::size_t k = 0; k < region.size(); ++k) {
        grid << lattice(k, 0) << ' ' << lattice(k, 1) << ' ' << region(k) << '\n';
    }
    std::ofstream points(prefix + "_points.dat");
    for (std::size_t k = 0; k < data.labels.size(); ++k) {
        points << data.points.value()(k, 0) << ' ' << data.points.value()(k, 1) << ' ' << data.labels(k) << '\n';
    }
    // One minibatch's loss is noisy: beside it, an exponential moving average
    // divided by the weight its start is missing (TensorBoard's smoothing),
    // which is the curve to read.
    std::ofstream loss_file(prefix + "_loss.dat");
    constexpr double smoothing = 0.98;
    double average = 0;
    double weight = 0;
    for (std::size_t k = 0; k < losses.size(); ++k) {
        average = smoothing * average + (1 - smoothing) * losses[k];
        weight = smoothing * weight + (1 - smoothing);
        loss_file << k << ' ' << losses[k] << ' ' << average / weight << '\n';
    }
    grid.close();
    points.close();
    loss_file.close();

    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
        std::cout << "gnuplot is not installed: skipping " << prefix << ".png (the data is in " << prefix
                  << "_*.dat)\n";
        return;
    }
    const std::string script = prefix + ".gnuplot";
    std::ofstream(script) << "set terminal pngcairo size 1200,520\n"
                          << "set output '" << prefix << ".png'\n"
                          << "set multiplot layout 1,2\n"
                          << "set title 'Decision regions and training points'\nset size ratio -1\n"
                          << "unset colorbox\nset palette defined (0 '#f4c7c3', 1 '#c8e6c9', 2 '#bbdefb')\n"
                          << "set cbrange [0:2]\nset xrange [-1.2:1.2]\nset yrange [-1.2:1.2]\n"
                          << "plot '" << prefix << "_regions.dat' using 1:2:3 with image notitle, \\\n"
                          << "     '" << prefix << "_points.dat' using 1:2:($3 == 0 ? 0xc0392b : $3 == 1 ? 0x2e7d32 : 0x1565c0) \\\n"
                          << "     with points pt 7 ps 0.6 lc rgb variable notitle\n"
                          << "set title 'Training loss'\nset size noratio\nset autoscale\n"
                          << "set xlabel 'step'\nset ylabel 'cross-entropy'\nset logscale y\nset format y '%g'\n"
                          << "set key top right\n"
                          << "plot '" << prefix << "_loss.dat' using 1:2 with lines lc rgb '#d5d8dc' title 'minibatch', \\\n"
                          << "     '' using 1:3 with lines lw 2 lc rgb '#1a5276' title 'moving average (0.98)'\n"
                          << "unset multiplot\n";
    if (std::system(("gnuplot '" + script + "'").c_str()) == 0) {
        std::cout << "wrote " << prefix << ".png\n";
    } else {
        std::cout << "gnuplot failed: see " << script << '\n';
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
    const spiral data = make_spiral(100);
    gt::Sequential model = make_network();
    gt::Adam optimizer({.learning_rate = gt::cosine_decay(0.01, std::uint64_t(args.steps), 0.05)});
    model.build({1, 2});
#if GRADTAPE_SAMPLES_MPI
    gt::mpi::broadcast_variables(model);
    gt::mpi::distributed_optimizer distributed(optimizer);
    // Each rank's gradient weighs as many rows as its part of the batch has.
    const auto train = [&](auto loss_fn, std::size_t rows) { return distributed.minimize(loss_fn, model, rows); };
#else
    const auto train = [&](auto loss_fn, std::size_t) { return optimizer.minimize(loss_fn, model); };
#endif
    gt::minibatches<float> batches({data.points}, {data.labels}, {.batch_size = 32, .shards = shards, .shard = shard});
    if (args.capture && shards > 1) {
        std::cerr << "--capture runs in one process: a replay does not exchange gradients\n";
        return 2;
    }
    if (args.capture && args.monitor_gradients) {
        std::cerr << "--monitor-gradients needs eager steps: a replay runs no backward pass to hook\n";
        return 2;
    }
    std::optional<gt::gradient_monitor> monitor;
    if (args.monitor_gradients && root) {
        monitor.emplace(model, args.output + "_gradients.csv");
    }
    auto captured_step = gt::capture([&](const gt::Tensor& points, const xt::xarray<std::int64_t>& labels) {
        return optimizer.minimize(
            [&] { return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, model(points))); },
            model);
    });

    std::vector<float> losses;
    const auto start = std::chrono::steady_clock::now();
    int step = 0;
    while (step < args.steps) {
        for (const auto& batch : batches) {
            const gt::Tensor loss =
                args.capture ? captured_step(batch.tensors[0], batch.labels[0])
                             : train(
                                   [&] {
                                       return gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(
                                           batch.labels[0], model(batch.tensors[0])));
                                   },
                                   batch.rows.size());
            losses.push_back(loss.item());
            if ((++step % 250 == 0 || step == args.steps) && root) {
                report(step, args.steps, loss.item(), gt::accuracy(data.labels, model(data.points)), start);
            }
            if (step == args.steps) {
                break;
            }
        }
    }

    const double final_accuracy = gt::accuracy(data.labels, model(data.points));
    if (!root) {
        return final_accuracy >= 0.95 ? 0 : 1;
    }
    std::printf("training accuracy %.1f%% after %d steps\n", 100 * final_accuracy, step);
    gt::save_checkpoint(args.output + ".npz", model);
    std::cout << "wrote " << args.output << ".npz\n";
    plot(args.output, model, data, losses);
    if (monitor) {
        std::cout << "wrote " << args.output << "_gradients.csv\n";
        try {
            monitor->plot(args.output + "_gradients.png");
            std::cout << "wrote " << args.output << "_gradients.png\n";
        } catch (const gt::error& e) {
            std::cout << e.what() << '\n';
        }
    }
    return final_accuracy >= 0.95 ? 0 : 1;
}
