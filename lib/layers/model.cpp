// Layers made of layers, Sequential and Model, and what every layer handle
// does: run, build, walk its variables, summarize.
#include "layers/layer_node.hpp"

#include <gradtape/error.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape {

namespace {

using detail::layer_node;

template <dtype T>
class sequential_node final : public layer_node<T> {
public:
    using layer_node<T>::layer_node;
    void build(const shape_type&, const source_location&) override {}
    basic_tensor<T> call(const basic_tensor<T>& input, bool training, const source_location& site) override
    {
        basic_tensor<T> x = input;
        for (const auto& [edge, child] : this->children) {
            x = child->run(x, training, site);
        }
        return x;
    }
};

template <dtype T>
class model_node final : public layer_node<T> {
public:
    model_node(std::string name, basic_model<T>* owner) : layer_node<T>(std::move(name)), owner(owner) {}
    void build(const shape_type& shape, const source_location& site) override
    {
        detail::layer_access::build(held(site), shape);
    }
    basic_tensor<T> call(const basic_tensor<T>& input, bool training, const source_location& site) override
    {
        return held(site).call(input, training);
    }
    basic_model<T>& held(const source_location& site) const
    {
        if (!owner) {
            const detail::layer_in_call_scope outside(nullptr);
            detail::fail<argument_error>("model '" + this->path + "'", site,
                                         "is called through a handle that outlived its model object");
        }
        return *owner;
    }
    basic_model<T>* owner;
};


}  // namespace

template <dtype T>
basic_tensor<T> basic_layer<T>::operator()(const basic_tensor<T>& input, std::optional<bool> training,
                                           source_location site) const
{
    return node_->run(input, detail::decide_training(training), site);
}

template <dtype T>
void basic_layer<T>::build(const shape_type& input_shape, source_location site) const
{
    node_->build_for(input_shape, site);
}

template <dtype T>
bool basic_layer<T>::built() const
{
    return node_->built;
}

template <dtype T>
const std::string& basic_layer<T>::name() const
{
    return node_->name;
}

template <dtype T>
const std::string& basic_layer<T>::path() const
{
    return node_->path;
}

template <dtype T>
std::vector<std::pair<std::string, basic_variable<T>>> basic_layer<T>::named_variables() const
{
    std::vector<std::pair<std::string, basic_variable<T>>> out;
    std::set<const layer_node<T>*> seen;
    node_->collect(node_->path, seen, out);
    return out;
}

template <dtype T>
std::vector<basic_variable<T>> basic_layer<T>::variables() const
{
    std::vector<basic_variable<T>> out;
    for (auto& [path, variable] : named_variables()) {
        out.push_back(variable);
    }
    return out;
}

template <dtype T>
std::vector<basic_variable<T>> basic_layer<T>::trainable_variables() const
{
    std::vector<basic_variable<T>> out;
    for (auto& [path, variable] : named_variables()) {
        if (variable.trainable()) {
            out.push_back(variable);
        }
    }
    return out;
}

template <dtype T>
std::string basic_layer<T>::summary() const
{
    std::vector<std::array<std::string, 3>> rows{{"Layer", "Output shape", "Params"}};
    node_->describe(node_->path, 0, rows);
    std::array<std::size_t, 2> widths{};
    for (const auto& row : rows) {
        widths[0] = std::max(widths[0], row[0].size());
        widths[1] = std::max(widths[1], row[1].size());
    }
    std::ostringstream out;
    for (const auto& row : rows) {
        out << row[0] << std::string(widths[0] - row[0].size() + 2, ' ') << row[1]
            << std::string(widths[1] - row[1].size() + 2, ' ') << row[2] << '\n';
    }
    std::size_t trainable = 0;
    std::size_t frozen = 0;
    for (const auto& variable : variables()) {
        (variable.trainable() ? trainable : frozen) += variable.size();
    }
    out << "Total params: " << detail::with_thousands(trainable + frozen) << '\n'
        << "Trainable params: " << detail::with_thousands(trainable) << '\n'
        << "Non-trainable params: " << detail::with_thousands(frozen) << '\n';
    return out.str();
}

template <dtype T>
basic_model<T>::basic_model(std::string name) : basic_layer<T>(std::make_shared<model_node<T>>(std::move(name), this))
{
}

template <dtype T>
basic_model<T>::~basic_model()
{
    static_cast<model_node<T>&>(*this->node_).owner = nullptr;
}

template <dtype T>
void basic_model<T>::make_weights(const shape_type&)
{
}

template <dtype T>
basic_variable<T> basic_model<T>::add_weight(const std::string& name, const shape_type& shape,
                                             weight_options options, source_location site)
{
    return this->node_->add_weight(name, shape, options, site);
}

template <dtype T>
void basic_model<T>::adopt(const basic_layer<T>& layer, const source_location& site)
{
    this->node_->adopt(detail::layer_access::node(layer), site);
}

template <dtype T>
basic_sequential<T>::basic_sequential(std::vector<basic_layer<T>> layers, std::string name, source_location site)
    : basic_layer<T>(std::make_shared<sequential_node<T>>(std::move(name)))
{
    for (const auto& layer : layers) {
        add(layer, site);
    }
}

template <dtype T>
void basic_sequential<T>::add(const basic_layer<T>& layer, source_location site)
{
    this->node_->adopt(detail::layer_access::node(layer), site);
}

template <dtype T>
std::vector<basic_layer<T>> basic_sequential<T>::layers() const
{
    std::vector<basic_layer<T>> out;
    for (const auto& [edge, child] : this->node_->children) {
        out.push_back(basic_layer<T>(child));
    }
    return out;
}

#define GRADTAPE_INSTANTIATE_LAYERS(T) \
    template class basic_layer<T>;                              \
    template class basic_model<T>;                              \
    template class basic_sequential<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_LAYERS)
#undef GRADTAPE_INSTANTIATE_LAYERS

}  // namespace gradtape
