// What every layer shares (lib/layers/): the node a layer handle shares, the
// input spec a built layer checks, and the activations and initializers by
// Keras's names.
//
// Note [The layer contract]
// A layer is a layer_node subclass with two members:
//   void build(const shape_type& input, const source_location& site);
//       makes the variables (make_variable, named by the layer's path) for
//       inputs of this shape, and sets `spec`, the shapes the layer then takes;
//   basic_tensor<T> call(const basic_tensor<T>& input, bool training, const source_location& site);
//       runs the layer in gradtape ops, so that tapes record it.
// run() builds on the first call and checks every later input against spec;
// the first call is all or nothing (Note [A layer's first call]), and no
// call writes on the node after it, so that threads may share a built layer.
// A layer made of others (Sequential, Model) holds them as children; its
// variables are theirs.
#pragma once

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <gradtape/layers.hpp>
#include <gradtape/random.hpp>
#include <gradtape/tape.hpp>

#include "core/diagnostics.hpp"
#include "core/tape_core.hpp"
#include "core/tensor_access.hpp"

namespace gradtape::detail {

// The inputs a built layer takes: `dims` are the trailing dimensions (-1 for
// any); with `any_leading`, any number of dimensions may come before them.
struct input_spec {
    std::vector<std::ptrdiff_t> dims;
    bool any_leading = false;

    [[nodiscard]] bool accepts(const shape_type& shape) const
    {
        if (shape.size() < dims.size() || (!any_leading && shape.size() != dims.size())) {
            return false;
        }
        const std::size_t skip = shape.size() - dims.size();
        for (std::size_t i = 0; i < dims.size(); ++i) {
            if (dims[i] >= 0 && std::size_t(dims[i]) != shape[skip + i]) {
                return false;
            }
        }
        return true;
    }

    [[nodiscard]] std::string describe() const
    {
        std::string text = any_leading ? "(..." : "(";
        for (std::size_t i = 0; i < dims.size(); ++i) {
            text += (i > 0 || any_leading) ? ", " : "";
            text += dims[i] < 0 ? std::string("?") : std::to_string(dims[i]);
        }
        return text + ")";
    }
};

enum class activation_kind { linear, relu, sigmoid, tanh, elu, softplus, softmax, swish };

inline activation_kind activation_named(const activation& chosen, const source_location& site)
{
    static const std::vector<std::pair<std::string_view, activation_kind>> names{
        {"linear", activation_kind::linear},     {"relu", activation_kind::relu},
        {"sigmoid", activation_kind::sigmoid},   {"tanh", activation_kind::tanh},
        {"elu", activation_kind::elu},           {"softplus", activation_kind::softplus},
        {"softmax", activation_kind::softmax},   {"swish", activation_kind::swish},
        {"silu", activation_kind::swish},
    };
    for (const auto& [name, kind] : names) {
        if (name == chosen.name) {
            return kind;
        }
    }
    std::string known;
    for (const auto& [name, kind] : names) {
        known += (known.empty() ? "" : ", ") + std::string(name);
    }
    fail<argument_error>("activation", site, "no activation is named '" + chosen.name + "' (known: " + known + ")");
}

template <dtype T>
basic_tensor<T> activate(activation_kind kind, const basic_tensor<T>& x, const source_location& site)
{
    switch (kind) {
    case activation_kind::linear: return x;
    case activation_kind::relu: return relu(x, site);
    case activation_kind::sigmoid: return sigmoid(x, site);
    case activation_kind::tanh: return tanh(x, site);
    case activation_kind::elu: return elu(x, site);
    case activation_kind::softplus: return softplus(x, site);
    case activation_kind::softmax: return softmax(x, -1, site);
    case activation_kind::swish: return multiply(x, sigmoid(x, site), site);
    }
    return x;
}

template <dtype T>
using initializer_function = basic_tensor<T> (*)(const shape_type&, source_location);

template <dtype T>
initializer_function<T> initializer_named(const initializer& chosen, const source_location& site,
                                          std::string_view caller = "initializer")
{
    const std::vector<std::pair<std::string_view, initializer_function<T>>> names{
        {"glorot_uniform", &glorot_uniform<T>}, {"glorot_normal", &glorot_normal<T>},
        {"he_uniform", &he_uniform<T>},         {"he_normal", &he_normal<T>},
        {"orthogonal", &orthogonal<T>},         {"zeros", &zeros<T>},
        {"ones", &ones<T>},
    };
    for (const auto& [name, function] : names) {
        if (name == chosen.name) {
            return function;
        }
    }
    std::string known;
    for (const auto& [name, function] : names) {
        known += (known.empty() ? "" : ", ") + std::string(name);
    }
    fail<argument_error>(caller, site, "no initializer is named '" + chosen.name + "' (known: " + known + ")");
}

// Note [Training mode]
// The rule layers.hpp states: a call's `training` argument, else the mode of
// the layer call it runs inside, else whether a tape records on this thread.
// Each layer run makes its decided mode the one its parts inherit.
struct layer_call {
    bool training;
    const layer_call* outer;
};
inline thread_local const layer_call* innermost_layer_call = nullptr;

inline bool decide_training(std::optional<bool> given)
{
    if (given) {
        return *given;
    }
    return innermost_layer_call ? innermost_layer_call->training : tape_recording();
}

class layer_call_scope {
public:
    explicit layer_call_scope(bool training) : call_{training, innermost_layer_call} { innermost_layer_call = &call_; }
    ~layer_call_scope() { innermost_layer_call = call_.outer; }
    layer_call_scope(const layer_call_scope&) = delete;
    layer_call_scope& operator=(const layer_call_scope&) = delete;

private:
    layer_call call_;
};

template <dtype T>
class layer_node {
public:
    explicit layer_node(std::string base_name)
        : name(std::move(base_name)), path(name), path_in_call(std::make_shared<const std::string>(path))
    {
    }
    layer_node(const layer_node&) = delete;
    layer_node& operator=(const layer_node&) = delete;
    virtual ~layer_node() = default;

    basic_tensor<T> run(const basic_tensor<T>& input, bool training, const source_location& site)
    {
        const layer_call_scope mode(training);
        return run_checked(
            input.shape(), site, [&] { build(input.shape(), site); },
            [&] { return call(input, training, site); });
    }

    // Note [A layer's first call]
    // The first call builds the layer (its variables, from the input's shape)
    // and is all or nothing: if it throws, this layer and every layer under it
    // that it built are as new again, so that a refused first call leaves no
    // variable shaped for the refused input. Only the first call writes on a
    // node (built, spec, own, the first shapes); later calls read, which is
    // what lets threads share a built layer.
    template <class Build, class Call>
    basic_tensor<T> run_checked(const shape_type& shape, const source_location& site, Build&& make, Call&& call)
    {
        if (built) {
            check(shape, site);
            return called(call);
        }
        std::vector<layer_node*> new_nodes;
        collect_unbuilt(new_nodes);
        try {
            building = true;
            make();
            check(shape, site);
            basic_tensor<T> output = called(call);
            built_input_shape = shape;
            first_output_shape = output.shape();
            built = true;
            building = false;
            return output;
        } catch (...) {
            for (layer_node* node : new_nodes) {
                node->unbuild();
            }
            throw;
        }
    }

    // Runs the layer's own call() as the layer in call (Note [The layer in call]).
    template <class Call>
    basic_tensor<T> called(Call&& call) const
    {
        const layer_in_call_scope in_layer(path_in_call);
        return call();
    }

    // Throws E with "layer 'path': what [at file:line]", the layer named once.
    template <class E>
    [[noreturn]] void refuse(const source_location& site, const std::string& what) const
    {
        const layer_in_call_scope outside(nullptr);
        fail<E>("layer '" + path + "'", site, what);
    }

    void check(const shape_type& shape, const source_location& site) const
    {
        if (spec && !spec->accepts(shape)) {
            refuse<shape_error>(site, "takes inputs of shape " + spec->describe() + ", got " + format_shape(shape));
        }
    }

    virtual void build(const shape_type& shape, const source_location& site) = 0;
    virtual basic_tensor<T> call(const basic_tensor<T>& input, bool training, const source_location& site) = 0;

    // Builds for an input of `shape` by calling the layer on zeros, unrecorded:
    // a layer made of others learns its parts' input shapes only by running.
    void build_for(const shape_type& shape, const source_location& site)
    {
        if (!built) {
            const auto pause = stop_recording();
            (void)run(zeros<T>(shape, site), false, site);
        }
    }

    void collect_unbuilt(std::vector<layer_node*>& out)
    {
        if (std::ranges::find(out, this) != out.end()) {
            return;
        }
        if (!built) {
            out.push_back(this);
        }
        for (const auto& [edge, child] : children) {
            child->collect_unbuilt(out);
        }
    }

    void unbuild()
    {
        built = false;
        building = false;
        spec.reset();
        own.erase(own.begin() + std::ptrdiff_t(made_before_build), own.end());
        built_input_shape.clear();
        first_output_shape.clear();
    }

    // A variable of this layer, named by its path.
    basic_variable<T> make_variable(const std::string& slot, const basic_tensor<T>& initial, bool trainable = true)
    {
        basic_variable<T> variable(initial, path + "/" + slot, trainable);
        own.emplace_back(slot, variable);
        if (!built && !building) {
            made_before_build = own.size();
        }
        return variable;
    }

    // A weight a model's own code asks for (basic_model::add_weight): checked
    // in full before anything is made.
    basic_variable<T> add_weight(const std::string& slot, const shape_type& shape, const weight_options& options,
                                 const source_location& site)
    {
        const std::string who = "add_weight of '" + path + "'";
        if (built) {
            fail<argument_error>(who, site,
                                 "the model is built: make weights in its constructor or in make_weights(), "
                                 "not after its first call");
        }
        if (slot.empty() || slot.find('/') != std::string::npos) {
            fail<argument_error>(who, site, "a weight's name must be non-empty and without '/', got '" + slot + "'");
        }
        const auto same = [&](const auto& entry) { return entry.first == slot; };
        if (std::ranges::any_of(own, same) || std::ranges::any_of(children, same)) {
            fail<argument_error>(who, site, "'" + path + "/" + slot + "' is taken by another weight or layer");
        }
        if (std::ranges::find(shape, std::size_t(0)) != shape.end()) {
            fail<argument_error>(who, site, "weight '" + slot + "' needs dimensions of 1 or more, got " +
                                                format_shape(shape));
        }
        check_allocatable(who, site, shape, sizeof(T));
        const initializer_function<T> initial = initializer_named<T>(options.initializer, site, who);
        return make_variable(slot, initial(shape, site), options.trainable);
    }

    void collect(const std::string& prefix, std::set<const layer_node*>& seen,
                 std::vector<std::pair<std::string, basic_variable<T>>>& out) const
    {
        if (!seen.insert(this).second) {
            return;
        }
        for (const auto& [slot, variable] : own) {
            out.emplace_back(prefix + "/" + slot, variable);
        }
        for (const auto& [edge, child] : children) {
            child->collect(prefix + "/" + edge, seen, out);
        }
    }

    // One row per layer, its parts indented under it: path, the output shape
    // of its first call, and the parameters it holds with its parts.
    void describe(const std::string& prefix, std::size_t depth,
                  std::vector<std::array<std::string, 3>>& rows) const
    {
        std::vector<std::pair<std::string, basic_variable<T>>> held;
        std::set<const layer_node*> seen;
        collect(prefix, seen, held);
        std::size_t count = 0;
        for (const auto& [slot, variable] : held) {
            count += variable.size();
        }
        rows.push_back({std::string(depth * 2, ' ') + prefix,
                        built ? format_shape(first_output_shape) : std::string("(not built)"),
                        std::to_string(count)});
        for (const auto& [edge, child] : children) {
            child->describe(prefix + "/" + edge, depth + 1, rows);
        }
    }

    bool contains(const layer_node* other) const
    {
        return this == other ||
               std::ranges::any_of(children, [&](const auto& child) { return child.second->contains(other); });
    }

    // Takes `child` as a part of this node, under a name unique among its
    // siblings ("dense", "dense_1", ...). A layer shared by two models has a
    // name in each; its own name and path are those of the first.
    void adopt(const std::shared_ptr<layer_node>& child, const source_location& site)
    {
        if (child->contains(this)) {
            fail<argument_error>("add", site, "layer '" + child->path + "' cannot be a part of itself");
        }
        if (std::ranges::any_of(children, [&](const auto& c) { return c.second == child; })) {
            fail<argument_error>("add", site, "layer '" + child->path + "' is already a part of '" + path + "'");
        }
        std::string unique = child->name;
        for (int n = 1; std::ranges::any_of(children, [&](const auto& c) { return c.first == unique; }); ++n) {
            unique = child->name + "_" + std::to_string(n);
        }
        if (!child->adopted) {
            child->name = unique;
            child->adopted = true;
            child->repath(path + "/" + unique);
        }
        children.emplace_back(unique, child);
    }

    void repath(const std::string& new_path)
    {
        const std::string old_path = std::exchange(path, new_path);
        path_in_call = std::make_shared<const std::string>(path);
        // A weight made in a model's constructor is named before the model
        // is added anywhere. Its info is made mutable and only shown as const
        // to readers; a model is put together before it is used, so none reads it now.
        for (const auto& [slot, variable] : own) {
            const_cast<variable_info&>(*tensor_access::node(variable)->variable).name = path + "/" + slot;
        }
        for (const auto& [edge, child] : children) {
            if (child->path == old_path + "/" + edge) {
                child->repath(path + "/" + edge);
            }
        }
    }

    std::string name;
    std::string path;
    // The path as tape entries and replay steps keep it.
    layer_path path_in_call;
    bool adopted = false;
    bool built = false;
    // In the first call (build() and call()).
    bool building = false;
    // How many of `own` were made before the first call (a model's
    // add_weight in its constructor): a refused first call keeps them.
    std::size_t made_before_build = 0;
    std::optional<input_spec> spec;
    // The shapes of the first call's input and output (for summary() and the debuggers).
    shape_type built_input_shape;
    shape_type first_output_shape;
    std::vector<std::pair<std::string, basic_variable<T>>> own;
    // Each part with its name here.
    std::vector<std::pair<std::string, std::shared_ptr<layer_node>>> children;
};

struct layer_access {
    template <dtype T>
    static const std::shared_ptr<layer_node<T>>& node(const basic_layer<T>& layer)
    {
        return layer.node_;
    }
    template <dtype T>
    static void build(basic_model<T>& model, const shape_type& input_shape)
    {
        model.make_weights(input_shape);
    }
};

inline std::string chosen_name(const std::string& given, std::string_view fallback)
{
    return given.empty() ? std::string(fallback) : given;
}

inline void check_positive(std::string_view op, const source_location& site, std::string_view what, std::ptrdiff_t value)
{
    if (value <= 0) {
        fail<argument_error>(op, site, std::string(what) + " must be positive, got " + std::to_string(value));
    }
}

inline std::size_t last_dimension(const shape_type& shape)
{
    return shape.empty() ? 1 : shape.back();
}

// A layer without variables: a function of its input (and the mode).
template <dtype T>
class function_node final : public layer_node<T> {
public:
    using function = std::function<basic_tensor<T>(const basic_tensor<T>&, bool, const source_location&)>;
    function_node(std::string name, std::optional<input_spec> takes, function f)
        : layer_node<T>(std::move(name)), takes(std::move(takes)), f(std::move(f))
    {
    }
    void build(const shape_type&, const source_location&) override { this->spec = takes; }
    basic_tensor<T> call(const basic_tensor<T>& x, bool training, const source_location& site) override
    {
        return f(x, training, site);
    }
    std::optional<input_spec> takes;
    function f;
};


}  // namespace gradtape::detail
