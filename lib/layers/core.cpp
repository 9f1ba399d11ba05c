// Dense, Embedding, and the layers of one function: Flatten, Dropout, Activation.
#include "layers/layer_node.hpp"

#include <cmath>

#include "core/dtypes.hpp"
#include "ops/op.hpp"

namespace gradtape {

namespace {

using detail::activation_kind;
using detail::check_positive;
using detail::function_node;
using detail::input_spec;
using detail::layer_node;

template <dtype T>
class dense_node final : public layer_node<T> {
public:
    dense_node(std::size_t units, dense_options options, const source_location& site)
        : layer_node<T>(options.name), units(units), kind(detail::activation_named(options.activation, site)),
          kernel_initializer(detail::initializer_named<T>(options.kernel_initializer, site)), use_bias(options.use_bias)
    {
        check_positive("Dense", site, "units", std::ptrdiff_t(units));
    }
    void build(const shape_type& shape, const source_location& site) override
    {
        if (shape.empty()) {
            this->template refuse<shape_error>(site, "takes inputs of rank 1 or more, got ()");
        }
        this->spec = input_spec{{std::ptrdiff_t(shape.back())}, true};
        kernel = this->make_variable("kernel", kernel_initializer({shape.back(), units}, site));
        if (use_bias) {
            bias = this->make_variable("bias", zeros<T>({units}, site));
        }
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) override
    {
        basic_tensor<T> y;
        if (x.dimension() <= 2) {
            y = matmul(x, *kernel, {}, site);
        } else {
            // One product over all leading dimensions rather than a batch of small ones.
            std::vector<std::ptrdiff_t> flat{-1, std::ptrdiff_t(x.shape().back())};
            std::vector<std::ptrdiff_t> back(x.shape().begin(), x.shape().end());
            back.back() = std::ptrdiff_t(units);
            y = reshape(matmul(reshape(x, flat, site), *kernel, {}, site), back, site);
        }
        if (bias) {
            y = add(y, *bias, site);
        }
        return detail::activate(kind, y, site);
    }
    std::size_t units;
    activation_kind kind;
    detail::initializer_function<T> kernel_initializer;
    bool use_bias;
    std::optional<basic_variable<T>> kernel;
    std::optional<basic_variable<T>> bias;
};


template <dtype T>
class embedding_node final : public layer_node<T> {
public:
    embedding_node(std::size_t input_dim, std::size_t output_dim, std::string name, const source_location& site)
        : layer_node<T>(std::move(name)), input_dim(input_dim), output_dim(output_dim)
    {
        check_positive("Embedding", site, "input_dim", std::ptrdiff_t(input_dim));
        check_positive("Embedding", site, "output_dim", std::ptrdiff_t(output_dim));
    }
    void build(const shape_type&, const source_location& site) override
    {
        embeddings = this->make_variable("embeddings",
                                         random_uniform<T>({input_dim, output_dim}, T(-0.05), T(0.05), site));
    }
    // The ids are whole numbers in a tensor: read by the op's kernel, so that
    // a capture's replay reads its call's.
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) override
    {
        caller = "layer '" + this->path + "'";
        return detail::embedding_of_numbers(*embeddings, x, caller, site);
    }
    basic_tensor<T> lookup(const xt::xarray<std::int64_t>& ids, const source_location& site)
    {
        const shape_type shape(ids.shape().begin(), ids.shape().end());
        return this->run_checked(
            shape, site, [&] { build(shape, site); }, [&] { return embedding_lookup(*embeddings, ids, site); });
    }
    std::size_t input_dim;
    std::size_t output_dim;
    std::optional<basic_variable<T>> embeddings;
    // How errors about the ids name this layer; the ops keep a view of it.
    std::string caller;
};


}  // namespace

template <dtype T>
basic_dense<T>::basic_dense(std::size_t units, dense_options options, source_location site)
    : basic_layer<T>(std::make_shared<dense_node<T>>(units, std::move(options), site))
{
}


template <dtype T>
basic_flatten<T>::basic_flatten(std::string name)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), input_spec{{-1}, true},
          [](const basic_tensor<T>& x, bool, const source_location& site) {
              return reshape(x, {std::ptrdiff_t(x.shape()[0]), -1}, site);
          }))
{
}

template <dtype T>
basic_dropout<T>::basic_dropout(double rate, std::string name, source_location site)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          std::move(name), std::nullopt,
          [rate](const basic_tensor<T>& x, bool training, const source_location& at) {
              return training ? dropout(x, rate, at) : x;
          }))
{
    if (!(rate >= 0 && rate < 1)) {
        detail::fail<argument_error>("Dropout", site, "needs a rate in [0, 1), got " + std::to_string(rate));
    }
}

template <dtype T>
basic_activation_layer<T>::basic_activation_layer(::gradtape::activation chosen, source_location site)
    : basic_layer<T>(std::make_shared<function_node<T>>(
          "activation", std::nullopt,
          [kind = detail::activation_named(chosen, site)](const basic_tensor<T>& x, bool,
                                                          const source_location& at) {
              return detail::activate(kind, x, at);
          }))
{
}


template <dtype T>
basic_embedding<T>::basic_embedding(std::size_t input_dim, std::size_t output_dim, std::string name,
                                    source_location site)
    : basic_layer<T>(std::make_shared<embedding_node<T>>(input_dim, output_dim, std::move(name), site))
{
}

template <dtype T>
basic_tensor<T> basic_embedding<T>::operator()(const xt::xarray<std::int64_t>& ids, source_location site) const
{
    return static_cast<embedding_node<T>&>(*this->node_).lookup(ids, site);
}


#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_dense<T>;                              \
    template class basic_flatten<T>;                              \
    template class basic_dropout<T>;                              \
    template class basic_activation_layer<T>;                              \
    template class basic_embedding<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
