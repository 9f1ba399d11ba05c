// The Fashion-MNIST CNN of the dataset's benchmark (convnet.py) in LibTorch,
// in the form its documentation shows: conv 5x5x32 same, relu, max-pool 2,
// conv 5x5x64 same, relu, max-pool 2, dense 1024 relu, dropout 0.4, dense 10,
// over NCHW images.
#pragma once

#include <vector>

#include <torch/torch.h>

namespace bench::libtorch {

struct convnet {
    torch::nn::Conv2d conv1{torch::nn::Conv2dOptions(1, 32, 5).padding(2)};
    torch::nn::Conv2d conv2{torch::nn::Conv2dOptions(32, 64, 5).padding(2)};
    torch::nn::Linear dense{7 * 7 * 64, 1024};
    torch::nn::Linear logits{1024, 10};

    std::vector<torch::Tensor> parameters() const
    {
        std::vector<torch::Tensor> all;
        for (const auto& module : {conv1->parameters(), conv2->parameters(), dense->parameters(), logits->parameters()}) {
            all.insert(all.end(), module.begin(), module.end());
        }
        return all;
    }

    torch::Tensor forward(const torch::Tensor& images, bool training)
    {
        namespace F = torch::nn::functional;
        torch::Tensor h = F::max_pool2d(torch::relu(conv1(images)), F::MaxPool2dFuncOptions(2));
        h = F::max_pool2d(torch::relu(conv2(h)), F::MaxPool2dFuncOptions(2));
        h = F::dropout(torch::relu(dense(h.flatten(1))), F::DropoutFuncOptions().p(0.4).training(training));
        return logits(h);
    }
};

}  // namespace bench::libtorch
