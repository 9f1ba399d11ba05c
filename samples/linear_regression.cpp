// The TensorFlow "Getting Started" linear regression, eagerly, in C++:
// fit yhat = matmul(input, weights) to noisy points with 50 steps of gradient
// descent on l2_loss, print the loss of every step, compare the fit with the
// closed-form least-squares line, and plot both.
//
//   linear_regression [--seed N] [--output PREFIX] [--capture]
//
// With --capture, the step is recorded at its first call and replayed after
// (gradtape::capture), with the same losses and weights bit for bit.
// Writes PREFIX.csv (the data, the fit and the loss per step) and, when
// gnuplot is installed, PREFIX.png (the tutorial's two-panel figure). Exits 1
// when the fit's loss is more than 5% above the least-squares line's.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <gradtape/gradtape.hpp>

#include "tutorial_data.hpp"

namespace gt = gradtape;

namespace {

struct arguments {
    std::uint64_t seed = 2;
    std::string output = "linear_regression";
    bool capture = false;
};

arguments parse(int argc, char** argv)
{
    arguments parsed;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--seed" && i + 1 < argc) {
            parsed.seed = std::stoull(argv[++i]);
        } else if (flag == "--output" && i + 1 < argc) {
            parsed.output = argv[++i];
        } else if (flag == "--capture") {
            parsed.capture = true;
        } else {
            std::cerr << "usage: " << argv[0] << " [--seed N] [--output PREFIX] [--capture]\n";
            std::exit(2);
        }
    }
    return parsed;
}

// numpy.polyfit(x, y, 1): slope and intercept of the least-squares line.
std::pair<double, double> polyfit(const xt::xarray<float>& x, const xt::xarray<float>& y)
{
    double mean_x = 0, mean_y = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        mean_x += x(i) / double(x.size());
        mean_y += y(i) / double(y.size());
    }
    double covariance = 0, variance = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        covariance += (x(i) - mean_x) * (y(i) - mean_y);
        variance += (x(i) - mean_x) * (x(i) - mean_x);
    }
    const double slope = covariance / variance;
    return {slope, mean_y - slope * mean_x};
}

void plot(const std::string& prefix)
{
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
        std::cout << "gnuplot is not installed: skipping " << prefix << ".png (the data is in " << prefix
                  << ".csv)\n";
        return;
    }
    const std::string script = prefix + ".gnuplot";
    std::ofstream(script) << "set terminal pngcairo size 1200,500\n"
                          << "set output '" << prefix << ".png'\n"
                          << "set datafile separator ','\n"
                          << "set key autotitle columnhead left top\n"
                          << "set multiplot layout 1,2\n"
                          << "set title 'Data and fit'\nset xlabel 'x'\nset ylabel 'y'\n"
                          << "plot '" << prefix << ".csv' using 2:3 with points pt 7 title 'data', "
                          << "'' using 2:4 with points pt 6 title 'fitted', "
                          << "'' using 2:4 with lines lw 2 title 'fitted line'\n"
                          << "set title 'Loss per step'\nset xlabel 'step'\nset ylabel 'l2 loss'\n"
                          << "plot '' using 1:5 with linespoints title 'loss'\n"
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
    const arguments args = parse(argc, argv);
    constexpr int steps = 50;
    constexpr float learning_rate = 0.002f;

    const tutorial::data data = tutorial::make_data(args.seed);
    gt::Variable weights = tutorial::make_weights();
    gt::SGD optimizer(learning_rate);
    const auto train_step = [&] {
        gt::GradientTape tape;
        const gt::Tensor yhat = gt::matmul(data.input, weights);
        const gt::Tensor loss = gt::l2_loss(yhat - data.target);
        optimizer.apply_gradients(tape.gradient(loss, {weights}), {weights});
        return loss;
    };
    auto captured_step = gt::capture(train_step);
    std::vector<float> losses;
    for (int step = 0; step < steps; ++step) {
        const gt::Tensor loss = args.capture ? captured_step() : train_step();
        losses.push_back(loss.item());
        std::printf("step %2d  loss %.4f\n", step, double(loss.item()));
    }

    const auto [slope, intercept] = polyfit(data.x.value(), data.y.value());
    std::printf("fitted weights:  intercept %8.4f  slope %8.4f\n", double(weights.value()(0, 0)),
                double(weights.value()(1, 0)));
    std::printf("least squares:   intercept %8.4f  slope %8.4f\n", intercept, slope);
    // The fit's loss beside the least-squares line's: 50 steps at this rate
    // reach it within 5% (the suite runs this program and checks its exit).
    xt::xarray<float> line{float(intercept), float(slope)};
    line.reshape({2, 1});
    const double optimum = gt::l2_loss(gt::matmul(data.input, gt::Tensor(line)) - data.target).item();
    const double final_loss = gt::l2_loss(gt::matmul(data.input, weights) - data.target).item();
    std::printf("final loss %.4f, least squares %.4f: %.3f times\n", final_loss, optimum, final_loss / optimum);

    const gt::Tensor fitted = gt::matmul(data.input, weights);
    std::ofstream csv(args.output + ".csv");
    csv << "step,x,y,fitted,loss\n";
    for (std::size_t i = 0; i < data.x.size(); ++i) {
        csv << i << ',' << data.x.value()(i) << ',' << data.y.value()(i) << ',' << fitted.value()(i, 0) << ','
            << (i < losses.size() ? std::to_string(losses[i]) : "") << '\n';
    }
    csv.close();
    std::cout << "wrote " << args.output << ".csv\n";
    plot(args.output);
    return final_loss <= 1.05 * optimum ? 0 : 1;
}
