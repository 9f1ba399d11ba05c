// Data sets on disk, read into tensors: IDX files (the MNIST format, plain or
// gzip-compressed) and Fashion-MNIST as Debian's dataset-fashion-mnist
// package installs it.
//
//   const auto data = gradtape::fashion_mnist();   // 60,000 + 10,000 images
//   gradtape::minibatches<float> batches({data.train_images}, {data.train_labels}, {.batch_size = 100});
#pragma once

#include <cstdint>
#include <filesystem>
#include <source_location>

#include "tensor.hpp"

namespace gradtape {

// The array an IDX file holds, converted to T (an integer type for labels, a
// floating type for values); gzip-compressed files are read through zlib. A
// malformed file (magic, type, dimensions, length) is an argument_error
// naming the file and what is wrong.
template <class T>
[[nodiscard]] xt::xarray<T> read_idx(const std::filesystem::path& path,
                                     std::source_location site = std::source_location::current());

struct image_dataset {
    Tensor train_images;  // [N, H, W, 1], values in [0, 1]
    xt::xarray<std::int64_t> train_labels;
    Tensor test_images;
    xt::xarray<std::int64_t> test_labels;
};

// Fashion-MNIST (Zalando's 70,000 28x28 grey images of 10 kinds of clothing)
// from the files of the Debian package dataset-fashion-mnist; a missing
// package is an argument_error saying which to install.
[[nodiscard]] image_dataset fashion_mnist(const std::filesystem::path& directory = "/usr/share/datasets/fashion-mnist",
                                          std::source_location site = std::source_location::current());

}  // namespace gradtape
