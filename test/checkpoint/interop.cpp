// The C++ half of the NumPy interoperability test: `write PATH` saves known
// values, `read PATH` loads a file NumPy wrote and checks them, `write-unicode
// PATH` saves a variable with a non-ASCII name, `refuse PATH` succeeds only
// when loading the array 'a' of shape (2,) from PATH is refused,
// `write-model PATH` saves a model and its optimizer after one step, and
// `read-arrays DIR` reads the integer and float arrays NumPy wrote in DIR.
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
    if (mode == "write-model") {
        gt::Sequential64 model({gt::Dense64(3), gt::Dense64(1)}, "mlp");
        gt::Adam optimizer(0.1);
        const gt::Tensor64 x = expected_weights();
        (void)optimizer.minimize([&] { return gt::reduce_sum(model(x)); }, model);
        gt::save_checkpoint(path, model, optimizer);
        return 0;
    }
    if (mode == "read-arrays") {
        const auto labels = gt::read_npy<std::int64_t>(path + "/labels.npy");
        const auto pixels = gt::read_npy<float>(path + "/pixels.npy");
        const auto arrays = gt::read_npz<double>(path + "/arrays.npz");
        const bool same = labels == xt::xarray<std::int64_t>{3, -1, 4000000000} &&
                          pixels == xt::xarray<float>{{0, 128}, {255, 7}} && arrays.size() == 2 &&
                          arrays.at("ints") == xt::xarray<double>{{1, 2, 3}, {4, 5, 6}} &&
                          arrays.at("gr\u00f6\u00dfe") == expected_weights();
        std::cout << (same ? "arrays match" : "arrays differ") << '\n';
        return same ? 0 : 1;
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
