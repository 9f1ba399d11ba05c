// MaxPool2D, AveragePool2D and GlobalAveragePooling2D.
#include "layers/layer_node.hpp"

#include "core/dtypes.hpp"

namespace gradtape {

namespace {

using detail::check_positive;
using detail::chosen_name;
using detail::function_node;
using detail::input_spec;
using detail::layer_node;

template <dtype T, bool maximum>
class pool_node final : public layer_node<T> {
public:
    pool_node(pool_options options, const source_location& site)
        : layer_node<T>(chosen_name(options.name, maximum ? "max_pooling2d" : "average_pooling2d"))
    {
        const std::string_view layer = maximum ? "MaxPool2D" : "AveragePool2D";
        for (std::size_t axis = 0; axis < 2; ++axis) {
            check_positive(layer, site, "pool_size", options.pool_size[axis]);
            if (options.strides[axis] == 0) {
                options.strides[axis] = options.pool_size[axis];
            }
            check_positive(layer, site, "strides", options.strides[axis]);
        }
        pool = {options.pool_size, options.strides, options.padding};
    }
    void build(const shape_type&, const source_location&) override { this->spec = input_spec{{-1, -1, -1, -1}}; }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) override
    {
        return maximum ? max_pool2d(x, pool, site) : avg_pool2d(x, pool, site);
    }
    pool2d_options pool;
};


}  // namespace

template <dtype T>
basic_max_pool2d<T>::basic_max_pool2d(pool_options options, source_location site)
    : basic_layer<T>(std::make_shared<pool_node<T, true>>(std::move(options), site))
{
}

template <dtype T>
basic_average_pool2d<T>::basic_average_pool2d(pool_options options, source_location site)
    : basic_layer<T>(std::make_shared<pool_node<T, false>>(std::move(options), site))
{
}

template <dtype T>
basic_global_average_pooling2d<T>::basic_global_average_pooling2d(std::string name)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), input_spec{{-1, -1, -1, -1}},
          [](const basic_tensor<T>& x, bool, const source_location& site) {
              return reduce_mean(x, {1, 2}, false, site);
          }))
{
}


#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_max_pool2d<T>;                              \
    template class basic_average_pool2d<T>;                              \
    template class basic_global_average_pooling2d<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
