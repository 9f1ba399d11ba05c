// Metrics of a classifier: accuracy, and a confusion matrix that prints as a
// table and draws itself as a PNG.
//
//   gradtape::confusion_matrix matrix(10, {"T-shirt", "Trouser", ...});
//   matrix.add(test_labels, gradtape::argmax(logits, -1));
//   std::cout << matrix;                       // counts, with each class's recall
//   matrix.write_png("confusion.png");
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// The share of predictions equal to their labels (NaN for none).
[[nodiscard]] double accuracy(const xt::xarray<std::int64_t>& labels, const xt::xarray<std::int64_t>& predictions,
                              source_location site = source_location::current());
/// The same with the prediction of each row the largest of its logits (last axis).
template <dtype T>
[[nodiscard]] double accuracy(const xt::xarray<std::int64_t>& labels, const basic_tensor<T>& logits,
                              source_location site = source_location::current());

/// counts()(label, prediction): how many examples of class `label` were predicted as `prediction`.
class confusion_matrix {
public:
    /// Names, when given, label the printed rows (one per class).
    explicit confusion_matrix(std::size_t classes, std::vector<std::string> names = {},
                              source_location site = source_location::current());

    /// Labels and predictions of one shape, each in [0, classes); else an
    /// argument_error, and nothing is counted.
    void add(const xt::xarray<std::int64_t>& labels, const xt::xarray<std::int64_t>& predictions,
             source_location site = source_location::current());

    /// [label, prediction] counts.
    [[nodiscard]] const xt::xarray<std::int64_t>& counts() const noexcept { return counts_; }
    /// Examples counted.
    [[nodiscard]] std::int64_t total() const;
    /// The share on the diagonal; 0 before any example.
    [[nodiscard]] double accuracy() const;

    /// A heat map: a square per (label, prediction), shaded by the share of
    /// the label's examples it holds and marked with it in percent; labels
    /// down the left, predictions along the top, by class number.
    void write_png(const std::filesystem::path& path,
                   source_location site = source_location::current()) const;

    /// The counts as a table, labels down, predictions across.
    friend std::ostream& operator<<(std::ostream& out, const confusion_matrix& matrix);

private:
    std::vector<std::string> names_;
    xt::xarray<std::int64_t> counts_;
};

}  // namespace gradtape
