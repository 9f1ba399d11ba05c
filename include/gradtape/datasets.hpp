// Data on disk, read into arrays: IDX files (the MNIST format, plain or
// gzip-compressed), NumPy's .npy and .npz files, CSV files of numbers, and
// Fashion-MNIST as Debian's dataset-fashion-mnist package installs it.
//
//   const auto data = gradtape::fashion_mnist();   // 60,000 + 10,000 images
//   gradtape::minibatches<float> batches({data.train_images}, {data.train_labels}, {.batch_size = 100});
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// The array an IDX file holds, converted to T (an integer type for labels, a
/// floating type for values); gzip-compressed files are read through zlib. A
/// malformed file (magic, type, dimensions, length) is an argument_error
/// naming the file and what is wrong.
template <class T>
[[nodiscard]] xt::xarray<T> read_idx(const std::filesystem::path& path,
                                     source_location site = source_location::current());

/// The array of a .npy file, and every array of a .npz (keyed by name, without
/// ".npy"), converted to T: float, double, std::int64_t or std::uint8_t, from
/// any of float32, float64, int32, int64, uint64 and uint8. A malformed file
/// is an argument_error naming it and what is wrong.
template <class T>
[[nodiscard]] xt::xarray<T> read_npy(const std::filesystem::path& path,
                                     source_location site = source_location::current());
/// Every array of an uncompressed or deflated .npz, by name, converted to T as read_npy converts.
template <class T>
[[nodiscard]] std::map<std::string, xt::xarray<T>> read_npz(
    const std::filesystem::path& path, source_location site = source_location::current());

/// How read_csv splits a file.
struct csv_options {
    char delimiter = ',';  ///< Between fields.
    /// Skip the first line (column names).
    bool header = false;
};

/// A CSV file of numbers as a [rows, columns] array of T (float, double or
/// std::int64_t). Every row needs the first row's number of fields; empty
/// lines are skipped. A missing field or one that is not a number of T is an
/// argument_error naming the file, the line and the field.
template <class T>
[[nodiscard]] xt::xarray<T> read_csv(const std::filesystem::path& path, csv_options options = {},
                                     source_location site = source_location::current());

/// An image classification data set, split as published.
struct image_dataset {
    Tensor train_images;                     ///< [N, H, W, 1], values in [0, 1].
    xt::xarray<std::int64_t> train_labels;   ///< [N], class numbers.
    Tensor test_images;                      ///< As train_images.
    xt::xarray<std::int64_t> test_labels;    ///< As train_labels.
};

/// Where the Debian package dataset-fashion-mnist puts its files.
inline constexpr const char* default_fashion_mnist_directory = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST (Zalando's 70,000 28x28 grey images of 10 kinds of clothing)
/// from the files of the Debian package dataset-fashion-mnist; a missing
/// package is an argument_error saying which to install, a directory given
/// that is not one or lacks a file an argument_error naming it.
[[nodiscard]] image_dataset fashion_mnist(const std::filesystem::path& directory = default_fashion_mnist_directory,
                                          source_location site = source_location::current());

}  // namespace gradtape
