// Helpers the tests share: float64 inputs, a scalar that weighs every output
// element differently (so that a transposed or misplaced gradient shows),
// first- and second-order gradient checks through check_gradients, and a
// scratch directory.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <unistd.h>

#include <catch2/catch.hpp>
#include <gradtape/gradtape.hpp>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>

namespace support {

using gradtape::Tensor64;
using function = std::function<Tensor64(const std::vector<Tensor64>&)>;

// A directory of this process's own for a test's files, removed with it.
struct scratch_directory {
    scratch_directory() : path(std::filesystem::temp_directory_path() / ("gradtape_test_" + std::to_string(::getpid())))
    {
        std::filesystem::create_directories(path);
    }
    ~scratch_directory() { std::filesystem::remove_all(path); }
    scratch_directory(const scratch_directory&) = delete;
    scratch_directory& operator=(const scratch_directory&) = delete;
    std::filesystem::path path;
};

// A float64 tensor of the given values, laid out in `shape` (by default, a vector).
inline Tensor64 make64(std::initializer_list<double> values, gradtape::shape_type shape = {})
{
    xt::xarray<double> array = xt::adapt(std::vector<double>(values));
    array.reshape(shape.empty() && values.size() != 1 ? gradtape::shape_type{values.size()} : shape);
    return array;
}

// Requires `actual` to have `shape` and, element by element, the expected
// values to a relative (or, near zero, absolute) 1e-12.
inline void require_values(const Tensor64& actual, std::initializer_list<double> expected,
                           const gradtape::shape_type& shape)
{
    INFO(actual);
    REQUIRE(actual.shape() == shape);
    std::size_t i = 0;
    for (double e : expected) {
        REQUIRE_THAT(actual.value().flat(i++),
                     Catch::Matchers::WithinRel(e, 1e-12) || Catch::Matchers::WithinAbs(e, 1e-12));
    }
}

// Whether two tensors have one shape and values within 1e-12.
inline bool same(const Tensor64& actual, const Tensor64& expected)
{
    return actual.shape() == expected.shape() && xt::allclose(actual.value(), expected.value(), 1e-12, 1e-12);
}

inline Tensor64 random64(const gradtape::shape_type& shape, double low = -1.5, double high = 1.5)
{
    return gradtape::random_uniform<double>(shape, low, high);
}

// sum(y * w) with w = 0.5, 0.87, 1.24, ... laid out in y's shape.
inline Tensor64 weighted_sum(const Tensor64& y)
{
    xt::xarray<double> weights = 0.5 + 0.37 * xt::arange<double>(double(y.size()));
    weights.reshape(y.shape());
    return gradtape::reduce_sum(y * Tensor64(weights));
}

// The tape gradient of weighted_sum(f(inputs)) against finite differences.
inline void require_gradients(const function& f, const std::vector<Tensor64>& inputs, double tolerance = 1e-6,
                              double step = 1e-6)
{
    const auto check = gradtape::check_gradients([&](const auto& in) { return weighted_sum(f(in)); }, inputs, step);
    INFO(check);
    REQUIRE(check.max_error < tolerance);
}

// The same for the second derivative: the gradient of a weighted sum of the
// first gradients, which an inner tape computes and the checker's tape records.
inline void require_second_gradients(const function& f, const std::vector<Tensor64>& inputs,
                                     double tolerance = 1e-5, double step = 1e-6)
{
    const auto first_gradients = [&](const std::vector<Tensor64>& in) {
        gradtape::GradientTape tape;
        for (const auto& input : in) {
            tape.watch(input);
        }
        const auto gradients = tape.gradient(weighted_sum(f(in)), in);
        Tensor64 total = 0.0;
        for (const auto& gradient : gradients) {
            total = total + weighted_sum(gradient);
        }
        return total;
    };
    const auto check = gradtape::check_gradients(first_gradients, inputs, step);
    INFO(check);
    REQUIRE(check.max_error < tolerance);
}

}  // namespace support
