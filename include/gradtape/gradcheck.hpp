// Checks a tape gradient against central finite differences in float64.
//
//   auto result = gradtape::check_gradients(
//       [](const std::vector<gradtape::Tensor64>& in) { return gradtape::reduce_sum(gradtape::tanh(in[0])); },
//       {gradtape::random_normal<double>({3, 4})});
//   REQUIRE(result.max_error < 1e-6);
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <vector>

#include "tensor.hpp"

namespace gradtape {

/// The worst disagreement check_gradients found between the tape's gradient
/// and central finite differences.
struct gradient_check {
    /// |analytic - numeric| / max(1, |analytic|, |numeric|) at the worst element:
    /// a relative error for large derivatives, an absolute one for small.
    double max_error = 0;
    std::size_t input = 0;    ///< Which input it is at.
    std::size_t element = 0;  ///< Which element of that input, flattened.
    double analytic = 0;      ///< The tape's derivative there.
    double numeric = 0;       ///< The finite-difference estimate there.
};

/// The error, and where, on one line.
std::ostream& operator<<(std::ostream& out, const gradient_check& check);

/// f maps the inputs to a tensor of one element. Each input is perturbed by
/// +-step, one element at a time.
[[nodiscard]] gradient_check check_gradients(const std::function<Tensor64(const std::vector<Tensor64>&)>& f,
                                             const std::vector<Tensor64>& inputs, double step = 1e-6);

}  // namespace gradtape
