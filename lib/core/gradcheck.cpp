#include <gradtape/gradcheck.hpp>

#include <algorithm>
#include <cmath>
#include <ostream>

#include <gradtape/tape.hpp>

#include "core/diagnostics.hpp"

namespace gradtape {

std::ostream& operator<<(std::ostream& out, const gradient_check& check)
{
    return out << "max error " << check.max_error << " at input " << check.input << ", element " << check.element
               << " (tape " << check.analytic << ", finite difference " << check.numeric << ")";
}

gradient_check check_gradients(const std::function<Tensor64(const std::vector<Tensor64>&)>& f,
                               const std::vector<Tensor64>& inputs, double step)
{
    const auto value_of = [&](const std::vector<Tensor64>& at) {
        const Tensor64 y = f(at);
        if (y.size() != 1) {
            throw argument_error("check_gradients: f must return one element, it returned shape " +
                                 detail::format_shape(y.shape()));
        }
        return y.item();
    };

    std::vector<Tensor64> analytic;
    {
        GradientTape tape;
        for (const auto& input : inputs) {
            tape.watch(input);
        }
        analytic = tape.gradient(f(inputs), inputs, {}, unconnected_gradients::zero);
    }

    gradient_check worst;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        for (std::size_t e = 0; e < inputs[i].size(); ++e) {
            std::vector<Tensor64> shifted = inputs;
            const auto evaluate_at = [&](double offset) {
                xt::xarray<double> moved = inputs[i].value();
                moved.flat(e) += offset;
                shifted[i] = Tensor64(std::move(moved));
                return value_of(shifted);
            };
            const double numeric = (evaluate_at(step) - evaluate_at(-step)) / (2 * step);
            const double exact = analytic[i].value().flat(e);
            const double error = std::abs(exact - numeric) / std::max({1.0, std::abs(exact), std::abs(numeric)});
            if (!(error <= worst.max_error)) {
                worst = {error, i, e, exact, numeric};
            }
        }
    }
    return worst;
}

}  // namespace gradtape
