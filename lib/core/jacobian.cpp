// jacobian and batch_jacobian: one backward pass per target element, the
// rows assembled with ops so that an outer tape can differentiate them again.
#include <gradtape/ops.hpp>
#include <gradtape/tape.hpp>

#include <xtensor/xbuilder.hpp>

#include "core/diagnostics.hpp"
#include "core/tape_core.hpp"

namespace gradtape {

template <dtype T, dtype S>
basic_tensor<S> GradientTape::jacobian_of(const basic_tensor<T>& target, const basic_tensor<S>& source, bool batched,
                                          source_location site)
{
    using detail::fail;
    using detail::format_shape;
    detail::tape_state& tape = *state_;
    const std::string_view op = batched ? "batch_jacobian" : "jacobian";
    detail::check_answerable(tape, op, site);
    if (batched && (target.dimension() == 0 || source.dimension() == 0 || target.shape()[0] != source.shape()[0])) {
        fail<shape_error>(op, site,
                          "target " + format_shape(target.shape()) + " and source " + format_shape(source.shape()) +
                              " must share their first (batch) dimension");
    }
    const tensor_id source_id = detail::watched_source(tape, op, detail::tape_input_of(source), 0, site);
    detail::check_recorded(tape, op, detail::tape_input_of(target), detail::tensor_access::node(target)->origin, site);

    std::vector<std::ptrdiff_t> shape = detail::signed_shape(target.shape());
    const auto source_shape = detail::signed_shape(source.shape());
    shape.insert(shape.end(), source_shape.begin() + (batched ? 1 : 0), source_shape.end());
    detail::check_allocatable(op, site, shape_type(shape.begin(), shape.end()), sizeof(S));

    // One backward pass per target element (per element of one example, when
    // batched: the examples are independent, so one seed serves them all).
    const std::size_t batch = batched ? target.shape()[0] : 1;
    const std::size_t rows = target.size() / std::max<std::size_t>(batch, 1);
    std::vector<basic_tensor<S>> gradients;
    gradients.reserve(rows);
    for (std::size_t row = 0; row < rows; ++row) {
        xt::xarray<T> seed = xt::zeros<T>(target.shape());
        for (std::size_t b = 0; b < batch; ++b) {
            seed.flat(b * rows + row) = T(1);
        }
        auto found = detail::backward_pass(tape, target.id(), basic_tensor<T>(std::move(seed)),
                                           std::span(&source_id, 1), false);
        gradients.push_back(detail::gradient_or_zeros<S>(found.front(), source.shape()));
    }
    detail::finish_answer(tape);

    if (gradients.empty()) {
        return zeros<S>(shape_type(shape.begin(), shape.end()));
    }
    return reshape(stack(gradients, batched ? 1 : 0, site), shape, site);
}


#define GRADTAPE_INSTANTIATE_JACOBIAN(T, S)                                                                            \
    template basic_tensor<S> GradientTape::jacobian_of(const basic_tensor<T>&, const basic_tensor<S>&, bool,         \
                                                       source_location);
GRADTAPE_INSTANTIATE_JACOBIAN(float, float)
GRADTAPE_INSTANTIATE_JACOBIAN(float, double)
GRADTAPE_INSTANTIATE_JACOBIAN(double, float)
GRADTAPE_INSTANTIATE_JACOBIAN(double, double)

}  // namespace gradtape
