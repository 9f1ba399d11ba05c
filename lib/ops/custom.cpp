// custom_gradient: an op made of a caller's forward and backward functions.
#include <gradtape/tape.hpp>

#include "core/dtypes.hpp"
#include "ops/op.hpp"

namespace gradtape {

namespace {

// Its value comes from the caller's forward, so it is recorded, not applied.
template <dtype T>
struct custom_op {
    using value_type = T;
    static constexpr std::string_view name = "custom_gradient";
    static constexpr detail::saved saves = detail::saved::inputs_and_output;
    custom_backward<T> backward_function;
    source_location site;

    std::vector<basic_tensor<T>> backward(const detail::backward_args<T, std::dynamic_extent>& args) const
    {
        const std::vector<basic_tensor<T>> inputs(args.inputs.begin(), args.inputs.end());
        std::vector<basic_tensor<T>> gradients = backward_function(args.grad, inputs, args.output);
        if (gradients.size() != inputs.size()) {
            detail::fail<argument_error>(name, site,
                                         "the backward function returned " + std::to_string(gradients.size()) +
                                             " gradients for " + std::to_string(inputs.size()) + " inputs");
        }
        return gradients;
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>& inputs,
                                 const std::type_identity_t<custom_forward<T>>& forward,
                                 const std::type_identity_t<custom_backward<T>>& backward, source_location site)
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
    return detail::record_list(custom_op<T>{backward, site}, site, std::move(result), inputs);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> custom_gradient(const std::vector<basic_tensor<T>>&, const custom_forward<T>&,          \
                                             const custom_backward<T>&, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
