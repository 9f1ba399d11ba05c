// custom_gradient: an op made of a caller's forward and backward functions.
#include <gradtape/tape.hpp>

#include "op.hpp"

namespace gradtape {

template <dtype T>
basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>& inputs,
                                 const std::type_identity_t<custom_forward<T>>& forward,
                                 const std::type_identity_t<custom_backward<T>>& backward, std::source_location site)
{
    basic_tensor<T> result;
    {
        // The caller's backward replaces the gradient of whatever forward does.
        const auto pause = stop_recording();
        result = forward(inputs);
    }
    if (!result.defined()) {
        detail::fail<argument_error>("custom_gradient", site, "the forward function returned an undefined tensor");
    }
    // A forward that returns an input (an identity with a custom gradient)
    // must still give the tape a new tensor, or the entry would feed itself.
    for (const auto& input : inputs) {
        if (input.id() == result.id()) {
            result = basic_tensor<T>(xt::xarray<T>(result.value()));
            break;
        }
    }
    return detail::record_op_of_list<T>(
        "custom_gradient", site, result,
        [inputs, result, backward, site](const basic_tensor<T>& grad, detail::input_mask) {
            std::vector<basic_tensor<T>> gradients = backward(grad, inputs, result);
            if (gradients.size() != inputs.size()) {
                detail::fail<argument_error>("custom_gradient", site,
                                             "the backward function returned " + std::to_string(gradients.size()) +
                                                 " gradients for " + std::to_string(inputs.size()) + " inputs");
            }
            return gradients;
        },
        inputs);
}

template basic_tensor<float> custom_gradient(const std::vector<basic_tensor<float>>&, const custom_forward<float>&,
                                             const custom_backward<float>&, std::source_location);
template basic_tensor<double> custom_gradient(const std::vector<basic_tensor<double>>&, const custom_forward<double>&,
                                              const custom_backward<double>&, std::source_location);

}  // namespace gradtape
