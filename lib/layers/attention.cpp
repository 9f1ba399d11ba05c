// MultiHeadAttention.
#include "layers/layer_node.hpp"

#include "core/dtypes.hpp"

namespace gradtape {

namespace {

using detail::check_positive;
using detail::input_spec;
using detail::last_dimension;
using detail::layer_node;

template <dtype T>
class multi_head_attention_node final : public layer_node<T> {
public:
    multi_head_attention_node(std::size_t heads, std::size_t key_dim, multi_head_attention_options options,
                              const source_location& site)
        : layer_node<T>(options.name), heads(heads), key_dim(key_dim),
          value_dim(options.value_dim == 0 ? key_dim : options.value_dim), use_bias(options.use_bias),
          causal(options.use_causal_mask)
    {
        check_positive("MultiHeadAttention", site, "num_heads", std::ptrdiff_t(heads));
        check_positive("MultiHeadAttention", site, "key_dim", std::ptrdiff_t(key_dim));
    }
    void build(const shape_type& shape, const source_location& site) override
    {
        build_projections(shape, shape, shape, site);
    }
    void build_projections(const shape_type& query, const shape_type& value, const shape_type& key,
                           const source_location& site)
    {
        const std::size_t width = last_dimension(query);
        this->spec = input_spec{{-1, -1, std::ptrdiff_t(width)}};
        if (query.size() != 3) {
            return;
        }
        projections[0] = projection("query", width, key_dim, site);
        projections[1] = projection("key", last_dimension(key), key_dim, site);
        projections[2] = projection("value", last_dimension(value), value_dim, site);
        output_kernel = this->make_variable("attention_output/kernel", glorot_uniform<T>({heads, value_dim, width}, site));
        if (use_bias) {
            output_bias = this->make_variable("attention_output/bias", zeros<T>({width}, site));
        }
        value_spec = input_spec{{-1, -1, std::ptrdiff_t(last_dimension(value))}};
        key_spec = input_spec{{-1, -1, std::ptrdiff_t(last_dimension(key))}};
    }
    basic_tensor<T> call(const basic_tensor<T>& x, bool, const source_location& site) override
    {
        return attend(x, x, x, {.mask = {}, .causal = causal}, site);
    }
    basic_tensor<T> run_attention(const basic_tensor<T>& query, const basic_tensor<T>& value,
                                  const basic_tensor<T>& key, const attention_options<T>& options,
                                  const source_location& site)
    {
        return this->run_checked(
            query.shape(), site, [&] { build_projections(query.shape(), value.shape(), key.shape(), site); },
            [&] { return attend(query, value, key, options, site); });
    }
    basic_tensor<T> attend(const basic_tensor<T>& query, const basic_tensor<T>& value, const basic_tensor<T>& key,
                           const attention_options<T>& options, const source_location& site)
    {
        const auto check = [&](const input_spec& spec, const basic_tensor<T>& given, std::string_view what) {
            if (!spec.accepts(given.shape())) {
                this->template refuse<shape_error>(site, "takes a " + std::string(what) + " of shape " + spec.describe() + ", got " +
                                              detail::format_shape(given.shape()));
            }
        };
        check(value_spec, value, "value");
        check(key_spec, key, "key");
        const basic_tensor<T> q = split_heads(query, projections[0], key_dim, site);
        const basic_tensor<T> k = split_heads(key, projections[1], key_dim, site);
        const basic_tensor<T> v = split_heads(value, projections[2], value_dim, site);
        attention_options<T> per_head = options;
        if (per_head.mask.defined() && per_head.mask.dimension() == 3) {
            per_head.mask = expand_dims(per_head.mask, 1, site);
        }
        // [B, H, T, Dv] -> [B, T, H * Dv] -> [B, T, D]
        const basic_tensor<T> attended = scaled_dot_product_attention(q, k, v, per_head, site);
        const std::ptrdiff_t batch = std::ptrdiff_t(query.shape()[0]);
        const std::ptrdiff_t steps = std::ptrdiff_t(query.shape()[1]);
        const basic_tensor<T> merged = reshape(transpose(attended, {0, 2, 1, 3}, site),
                                               {batch * steps, std::ptrdiff_t(heads * value_dim)}, site);
        basic_tensor<T> y = matmul(merged, reshape(*output_kernel, {std::ptrdiff_t(heads * value_dim), -1}, site), {},
                                   site);
        if (output_bias) {
            y = add(y, *output_bias, site);
        }
        return reshape(y, {batch, steps, -1}, site);
    }

    struct dense_projection {
        std::optional<basic_variable<T>> kernel;  // [D, heads, dim]
        std::optional<basic_variable<T>> bias;    // [heads, dim]
    };
    dense_projection projection(const std::string& role, std::size_t width, std::size_t dim,
                                const source_location& site)
    {
        dense_projection p;
        p.kernel = this->make_variable(role + "/kernel", glorot_uniform<T>({width, heads, dim}, site));
        if (use_bias) {
            p.bias = this->make_variable(role + "/bias", zeros<T>({heads, dim}, site));
        }
        return p;
    }
    // [B, T, D] -> [B, H, T, dim]
    basic_tensor<T> split_heads(const basic_tensor<T>& x, const dense_projection& p, std::size_t dim,
                                const source_location& site) const
    {
        const auto batch = std::ptrdiff_t(x.shape()[0]);
        const auto steps = std::ptrdiff_t(x.shape()[1]);
        const auto width = std::ptrdiff_t(x.shape()[2]);
        const auto columns = std::ptrdiff_t(heads * dim);
        basic_tensor<T> y = matmul(reshape(x, {batch * steps, width}, site), reshape(*p.kernel, {width, columns}, site),
                                   {}, site);
        if (p.bias) {
            y = add(y, reshape(*p.bias, {columns}, site), site);
        }
        return transpose(reshape(y, {batch, steps, std::ptrdiff_t(heads), std::ptrdiff_t(dim)}, site), {0, 2, 1, 3},
                         site);
    }

    std::size_t heads;
    std::size_t key_dim;
    std::size_t value_dim;
    bool use_bias;
    bool causal;
    std::array<dense_projection, 3> projections;
    std::optional<basic_variable<T>> output_kernel;
    std::optional<basic_variable<T>> output_bias;
    input_spec value_spec;
    input_spec key_spec;
};


}  // namespace

template <dtype T>
basic_multi_head_attention<T>::basic_multi_head_attention(std::size_t num_heads, std::size_t key_dim,
                                                          multi_head_attention_options options,
                                                          source_location site)
    : basic_layer<T>(std::make_shared<multi_head_attention_node<T>>(num_heads, key_dim, std::move(options), site))
{
}

template <dtype T>
basic_tensor<T> basic_multi_head_attention<T>::operator()(const basic_tensor<T>& query, const basic_tensor<T>& value,
                                                          const basic_tensor<T>& key, attention_options<T> options,
                                                          std::optional<bool>, source_location site) const
{
    auto& node = static_cast<multi_head_attention_node<T>&>(*this->node_);
    return node.run_attention(query, value, key.defined() ? key : value, options, site);
}

#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_multi_head_attention<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
