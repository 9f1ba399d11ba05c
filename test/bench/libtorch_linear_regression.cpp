// samples/linear_regression.cpp written for LibTorch, line for line where the
// two APIs allow: the program whose compile compile_time.py sets beside ours.
// Only compiled by that benchmark, never linked or run.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <torch/torch.h>

namespace {

struct arguments {
    std::uint64_t seed = 2;
    std::string output = "linear_regression_libtorch";
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
        } else {
            std::cerr << "usage: " << argv[0] << " [--seed N] [--output PREFIX]\n";
            std::exit(2);
        }
    }
    return parsed;
}

std::pair<double, double> polyfit(const torch::Tensor& x, const torch::Tensor& y)
{
    const double mean_x = x.mean().item<double>();
    const double mean_y = y.mean().item<double>();
    const double slope = ((x - mean_x) * (y - mean_y)).sum().item<double>() / (x - mean_x).pow(2).sum().item<double>();
    return {slope, mean_y - slope * mean_x};
}

void plot(const std::string& prefix)
{
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
        std::cout << "gnuplot is not installed: skipping " << prefix << ".png\n";
        return;
    }
    const std::string script = prefix + ".gnuplot";
    std::ofstream(script) << "set terminal pngcairo size 1200,500\n"
                          << "set output '" << prefix << ".png'\n"
                          << "set datafile separator ','\n"
                          << "set multiplot layout 1,2\n"
                          << "plot '" << prefix << ".csv' using 2:3 with points, '' using 2:4 with lines\n"
                          << "plot '' using 1:5 with linespoints\n"
                          << "unset multiplot\n";
    if (std::system(("gnuplot '" + script + "'").c_str()) != 0) {
        std::cout << "gnuplot failed: see " << script << '\n';
    }
}

}  // namespace

int main(int argc, char** argv)
{
    const arguments args = parse(argc, argv);
    constexpr int steps = 50;
    constexpr int examples = 50;
    torch::manual_seed(args.seed);
    const torch::Tensor x = torch::linspace(-2, 4, examples) + torch::randn({examples});
    const torch::Tensor y = torch::linspace(-6, 6, examples) + torch::randn({examples});
    const torch::Tensor input = torch::stack({torch::ones({examples}), x}, 1);
    const torch::Tensor target = y.reshape({-1, 1});

    torch::Tensor weights = (torch::randn({2, 1}) * 0.1).requires_grad_();
    torch::optim::SGD optimizer({weights}, torch::optim::SGDOptions(0.002));
    std::vector<float> losses;
    for (int step = 0; step < steps; ++step) {
        optimizer.zero_grad();
        const torch::Tensor yhat = torch::matmul(input, weights);
        const torch::Tensor loss = (yhat - target).pow(2).sum() / 2;
        loss.backward();
        optimizer.step();
        losses.push_back(loss.item<float>());
        std::printf("step %2d  loss %.4f\n", step, double(losses.back()));
    }

    const auto [slope, intercept] = polyfit(x, y);
    std::printf("fitted weights:  intercept %8.4f  slope %8.4f\n", weights[0][0].item<double>(),
                weights[1][0].item<double>());
    std::printf("least squares:   intercept %8.4f  slope %8.4f\n", intercept, slope);

    const torch::Tensor fitted = torch::matmul(input, weights).detach();
    std::ofstream csv(args.output + ".csv");
    csv << "step,x,y,fitted,loss\n";
    for (int i = 0; i < examples; ++i) {
        csv << i << ',' << x[i].item<float>() << ',' << y[i].item<float>() << ',' << fitted[i][0].item<float>() << ','
            << (i < int(losses.size()) ? std::to_string(losses[std::size_t(i)]) : "") << '\n';
    }
    csv.close();
    plot(args.output);
}
