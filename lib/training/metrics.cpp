#include <gradtape/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <numeric>
#include <ostream>
#include <sstream>

#include <gradtape/error.hpp>
#include <gradtape/ops.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "io/files.hpp"
#include "io/png.hpp"

#include <xtensor/xview.hpp>

namespace gradtape {

namespace {

void check_same_shape(std::string_view op, const xt::xarray<std::int64_t>& labels,
                      const xt::xarray<std::int64_t>& predictions, const source_location& site)
{
    const shape_type a(labels.shape().begin(), labels.shape().end());
    const shape_type b(predictions.shape().begin(), predictions.shape().end());
    if (a != b) {
        detail::fail<argument_error>(op, site,
                                     "labels of shape " + detail::format_shape(a) + " and predictions of shape " +
                                         detail::format_shape(b) + " differ");
    }
}

// From white to a dark blue as `share` goes from 0 to 1.
std::uint32_t shade(double share)
{
    const auto mix = [share](int from, int to) { return std::uint32_t(std::lround(from + (to - from) * share)); };
    return (mix(255, 8) << 16) | (mix(255, 48) << 8) | mix(255, 107);
}

}  // namespace

double accuracy(const xt::xarray<std::int64_t>& labels, const xt::xarray<std::int64_t>& predictions,
                source_location site)
{
    check_same_shape("accuracy", labels, predictions, site);
    if (labels.size() == 0) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const auto correct = std::inner_product(labels.begin(), labels.end(), predictions.begin(), std::size_t{0},
                                            std::plus<>(), std::equal_to<>());
    return double(correct) / double(labels.size());
}

template <dtype T>
double accuracy(const xt::xarray<std::int64_t>& labels, const basic_tensor<T>& logits, source_location site)
{
    return accuracy(labels, argmax(logits, -1, site), site);
}

confusion_matrix::confusion_matrix(std::size_t classes, std::vector<std::string> names, source_location site)
    : names_(std::move(names)), counts_(xt::zeros<std::int64_t>({classes, classes}))
{
    if (classes == 0 || (!names_.empty() && names_.size() != classes)) {
        detail::fail<argument_error>("confusion_matrix", site,
                                     "needs at least one class and a name for each or none; got " +
                                         std::to_string(classes) + " classes and " + std::to_string(names_.size()) +
                                         " names");
    }
}

void confusion_matrix::add(const xt::xarray<std::int64_t>& labels, const xt::xarray<std::int64_t>& predictions,
                           source_location site)
{
    check_same_shape("confusion_matrix.add", labels, predictions, site);
    const auto classes = std::int64_t(counts_.shape()[0]);
    for (const auto* values : {&labels, &predictions}) {
        const auto outside = std::ranges::find_if(*values, [&](std::int64_t c) { return c < 0 || c >= classes; });
        if (outside != values->end()) {
            detail::fail<argument_error>("confusion_matrix.add", site,
                                         std::string(values == &labels ? "label " : "prediction ") +
                                             std::to_string(*outside) + " is not a class in [0, " +
                                             std::to_string(classes) + ")");
        }
    }
    for (std::size_t i = 0; i < labels.size(); ++i) {
        ++counts_(std::size_t(labels.flat(i)), std::size_t(predictions.flat(i)));
    }
}

std::int64_t confusion_matrix::total() const
{
    return xt::sum(counts_)();
}

double confusion_matrix::accuracy() const
{
    const std::int64_t all = total();
    return all == 0 ? std::numeric_limits<double>::quiet_NaN() : double(xt::sum(xt::diagonal(counts_))()) / double(all);
}

std::ostream& operator<<(std::ostream& out, const confusion_matrix& matrix)
{
    const std::size_t classes = matrix.counts_.shape()[0];
    std::size_t name_width = 5;
    for (const auto& name : matrix.names_) {
        name_width = std::max(name_width, name.size());
    }
    const int cell = std::max(6, int(std::to_string(matrix.counts_.size() ? xt::amax(matrix.counts_)() : 0).size()) + 1);
    std::ostringstream table;
    table << std::setw(int(name_width)) << "label" << " |";
    for (std::size_t p = 0; p < classes; ++p) {
        table << std::setw(cell) << p;
    }
    table << " | recall\n" << std::string(name_width, '-') << "-+" << std::string(std::size_t(cell) * classes, '-')
          << "-+-------\n";
    for (std::size_t l = 0; l < classes; ++l) {
        const std::string name = matrix.names_.empty() ? std::to_string(l) : matrix.names_[l];
        table << std::setw(int(name_width)) << name << " |";
        std::int64_t row_total = 0;
        for (std::size_t p = 0; p < classes; ++p) {
            table << std::setw(cell) << matrix.counts_(l, p);
            row_total += matrix.counts_(l, p);
        }
        table << " | ";
        if (row_total > 0) {
            table << std::fixed << std::setprecision(3) << double(matrix.counts_(l, l)) / double(row_total);
        } else {
            table << "-";
        }
        table << '\n';
    }
    table << "accuracy " << std::fixed << std::setprecision(4) << matrix.accuracy() << " over " << matrix.total()
          << " examples\n";
    return out << table.str();
}

void confusion_matrix::write_png(const std::filesystem::path& path, source_location site) const
{
    constexpr std::size_t cell = 40;
    constexpr std::size_t scale = 2;
    const std::size_t classes = counts_.shape()[0];
    const std::size_t label_width = std::to_string(classes - 1).size() * 4 * scale + 2 * cell / 4;
    const std::size_t margin = cell / 2;
    detail::rgb_image image(label_width + classes * cell + margin, label_width + classes * cell + margin);
    const std::size_t digit_height = 5 * scale;
    const auto text_width = [](const std::string& text) { return text.size() * 4 * scale - scale; };
    for (std::size_t c = 0; c < classes; ++c) {
        const std::string number = std::to_string(c);
        const std::size_t middle = label_width + c * cell + cell / 2;
        image.write_digits(middle - text_width(number) / 2, label_width / 2 - digit_height / 2, number, scale, 0x000000);
        image.write_digits(label_width / 2 - text_width(number) / 2, middle - digit_height / 2, number, scale, 0x000000);
    }
    for (std::size_t l = 0; l < classes; ++l) {
        const std::int64_t row_total = xt::sum(xt::view(counts_, l, xt::all()))();
        for (std::size_t p = 0; p < classes; ++p) {
            const double share = row_total == 0 ? 0.0 : double(counts_(l, p)) / double(row_total);
            const std::size_t x = label_width + p * cell;
            const std::size_t y = label_width + l * cell;
            image.fill(x, y, cell, cell, shade(share));
            if (counts_(l, p) > 0) {
                const std::string percent = std::to_string(std::lround(100 * share));
                image.write_digits(x + cell / 2 - text_width(percent) / 2, y + cell / 2 - digit_height / 2, percent,
                                   scale, share < 0.5 ? 0x000000 : 0xffffff);
            }
        }
    }
    detail::replace_file("confusion_matrix.write_png", path, detail::encode_png(image), site);
}

#define GRADTAPE_INSTANTIATE_ACCURACY(T) \
    template double accuracy(const xt::xarray<std::int64_t>&, const basic_tensor<T>&, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_ACCURACY)
#undef GRADTAPE_INSTANTIATE_ACCURACY

}  // namespace gradtape
