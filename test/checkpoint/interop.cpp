// The C++ half of the NumPy interoperability test: `write PATH` saves known
// values, `read PATH` loads a file NumPy wrote and checks them, `write-unicode
// PATH` saves a variable with a non-ASCII name, and `refuse PATH` succeeds
// only when loading the array 'a' of shape (2,) from PATH is refused.
#include <cstdlib>
#include <iostream>
#include <string>

#include <gradtape/gradtape.hpp>

#include <xtensor/xbuilder.hpp>

namespace gt = gradtape;

namespace {

// weights(i, j) = 0.5 * (3 i + j) - 1, bias(j) = 10 + j: both sides compute them.
xt::xarray<double> expected_weights()
{
    xt::xarray<double> values = 0.5 * xt::arange<double>(6.0) - 1.0;
    values.reshape({2, 3});
    return values;
}

xt::xarray<double> expected_bias()
{
    return 10.0 + xt::arange<double>(3.0);
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc != 3) {
        std::cerr << "usage: interop write|read|write-unicode|refuse PATH\n";
        return 2;
    }
    const std::string mode = argv[1];
    const std::string path = argv[2];
    if (mode == "write-unicode") {
        gt::save_checkpoint(path, {gt::Variable(gt::fill<float>({2}, 1.5f), "gr\u00f6\u00dfe/\u91cd\u307f")});
        return 0;
    }
    if (mode == "refuse") {
        gt::Variable64 a(gt::fill<double>({2}, -1.0), "a");
        try {
            gt::load_checkpoint(path, {a});
        } catch (const gt::argument_error& e) {
            std::cout << "refused: " << e.what() << '\n';
            return a.value() == xt::xarray<double>{-1.0, -1.0} ? 0 : 1;
        }
        std::cout << "loaded " << a << '\n';
        return 1;
    }
    if (mode == "write") {
        gt::Variable weights(gt::cast<float>(gt::Tensor64(expected_weights())), "weights");
        gt::Variable bias(gt::cast<float>(gt::Tensor64(expected_bias())), "bias");
        gt::save_checkpoint(path, {weights, bias});
        return 0;
    }
    gt::Variable64 weights(gt::zeros<double>({2, 3}), "weights");
    gt::Variable64 bias(gt::zeros<double>({3}), "bias");
    gt::load_checkpoint(path, {weights, bias});
    const bool same = weights.value() == expected_weights() && bias.value() == expected_bias();
    std::cout << weights << '\n' << bias << '\n' << (same ? "values match" : "values differ") << '\n';
    return same ? 0 : 1;
}
