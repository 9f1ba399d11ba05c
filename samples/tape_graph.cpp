// Shows what a tape recorded: one training step of a small two-layer network,
// printed entry by entry, then drawn with Graphviz.
//
//   tape_graph [PREFIX]      writes PREFIX.dot, and PREFIX.png when `dot` is installed
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <gradtape/gradtape.hpp>

namespace gt = gradtape;

int main(int argc, char** argv)
{
    const std::string prefix = argc > 1 ? argv[1] : "tape_graph";
    gt::set_seed(1);
    const gt::Tensor inputs = gt::random_normal<float>({8, 3});
    const xt::xarray<std::int64_t> labels = {0, 1, 1, 0, 1, 0, 0, 1};
    gt::Variable w1(gt::random_normal<float>({3, 4}, 0.0f, 0.5f), "w1");
    gt::Variable w2(gt::random_normal<float>({4, 2}, 0.0f, 0.5f), "w2");

    gt::GradientTape tape;
    const gt::Tensor hidden = gt::relu(gt::matmul(inputs, w1));
    const gt::Tensor logits = gt::matmul(hidden, w2);
    const gt::Tensor loss = gt::reduce_mean(gt::sparse_softmax_cross_entropy_with_logits(labels, logits));
    std::cout << tape << "\nloss " << loss << '\n';

    std::ofstream(prefix + ".dot") << tape.to_dot();
    std::cout << "wrote " << prefix << ".dot\n";
    if (std::system("command -v dot > /dev/null 2>&1") != 0) {
        std::cout << "Graphviz is not installed (apt-get install graphviz): render with dot -Tpng " << prefix
                  << ".dot -o " << prefix << ".png\n";
        return 0;
    }
    if (std::system(("dot -Tpng '" + prefix + ".dot' -o '" + prefix + ".png'").c_str()) == 0) {
        std::cout << "wrote " << prefix << ".png\n";
    }
}
