// BatchNormalization and LayerNormalization.
#include "layers/layer_node.hpp"

#include "core/dtypes.hpp"

namespace gradtape {

namespace {

using detail::input_spec;
using detail::last_dimension;
using detail::layer_node;

template <dtype T>
class batch_normalization_node final : public layer_node<T> {
public:
    batch_normalization_node(batch_normalization_options options, const source_location& site)
        : layer_node<T>(options.name), options(options)
    {
        if (!(options.momentum >= 0 && options.momentum <= 1) || !(options.epsilon > 0)) {
            detail::fail<argument_error>("BatchNormalization", site,
                                         "needs momentum in [0, 1] and a positive epsilon, got " +
                                             std::to_string(options.momentum) + " and " +
                                             std::to_string(options.epsilon));
        }
    }
    void build(const shape_type& shape, const source_location& site) override
    {
        const std::size_t channels = last_dimension(shape);
        this->spec = input_spec{{std::ptrdiff_t(channels)}, true};
        if (options.scale) {
            gamma = this->make_variable("gamma", ones<T>({channels}, site));
        }
        if (options.center) {
            beta = this->make_variable("beta", zeros<T>({channels}, site));
        }
        moving_mean = this->make_variable("moving_mean", zeros<T>({channels}, site), false);
        moving_variance = this->make_variable("moving_variance", ones<T>({channels}, site), false);
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool training, const source_location& site) override
    {
        const basic_tensor<T> offset = beta ? basic_tensor<T>(*beta) : basic_tensor<T>();
        const basic_tensor<T> scale = gamma ? basic_tensor<T>(*gamma) : basic_tensor<T>();
        if (!training) {
            return batch_normalization(x, *moving_mean, *moving_variance, offset, scale, T(options.epsilon), site);
        }
        axes_type axes;
        for (std::size_t axis = 0; axis + 1 < x.dimension(); ++axis) {
            axes.push_back(std::ptrdiff_t(axis));
        }
        const auto [mean, variance] = moments(x, axes, false, site);
        // An empty batch has no moments (0 / 0); its output is empty whatever
        // they are, and the moving statistics stay as they were, as PyTorch's.
        if (x.size() > 0) {
            const auto pause = stop_recording();
            const T keep = T(options.momentum);
            moving_mean->assign(add(multiply(*moving_mean, keep, site), multiply(mean, T(1) - keep, site), site),
                                site);
            moving_variance->assign(
                add(multiply(*moving_variance, keep, site), multiply(variance, T(1) - keep, site), site), site);
        }
        return batch_normalization(x, mean, variance, offset, scale, T(options.epsilon), site);
    }
    batch_normalization_options options;
    std::optional<basic_variable<T>> gamma, beta, moving_mean, moving_variance;
};

template <dtype T>
class layer_normalization_node final : public layer_node<T> {
public:
    layer_normalization_node(layer_normalization_layer_options options, const source_location& site)
        : layer_node<T>(options.name), epsilon(options.epsilon)
    {
        if (!(epsilon > 0)) {
            detail::fail<argument_error>("LayerNormalization", site,
                                         "needs a positive epsilon, got " + std::to_string(epsilon));
        }
    }
    void build(const shape_type& shape, const source_location& site) override
    {
        const std::size_t width = last_dimension(shape);
        this->spec = input_spec{{std::ptrdiff_t(width)}, true};
        gamma = this->make_variable("gamma", ones<T>({width}, site));
        beta = this->make_variable("beta", zeros<T>({width}, site));
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) override
    {
        return layer_normalization(x, *gamma, *beta, {.axes = {-1}, .epsilon = epsilon}, site);
    }
    double epsilon;
    std::optional<basic_variable<T>> gamma, beta;
};


}  // namespace

template <dtype T>
basic_batch_normalization<T>::basic_batch_normalization(batch_normalization_options options,
                                                        source_location site)
    : basic_layer<T>(std::make_shared<batch_normalization_node<T>>(std::move(options), site))
{
}

template <dtype T>
basic_layer_normalization<T>::basic_layer_normalization(layer_normalization_layer_options options,
                                                        source_location site)
    : basic_layer<T>(std::make_shared<layer_normalization_node<T>>(std::move(options), site))
{
}


#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_batch_normalization<T>;                              \
    template class basic_layer_normalization<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
