// The library's own access to what is behind a tensor handle, and its only
// write path to a variable's value. Not in the public headers: a program
// changes a variable through assign() and the optimizers.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

#include <gradtape/variable.hpp>

#include "core/bookkeeping.hpp"

namespace gradtape::detail {

struct tensor_access {
    template <dtype T>
    static const std::shared_ptr<tensor_node<T>>& node(const basic_tensor<T>& tensor)
    {
        return tensor.node_;
    }
    template <dtype T>
    static basic_tensor<T> adopt(std::shared_ptr<tensor_node<T>> node)
    {
        return basic_tensor<T>(basic_tensor<T>::share_node, std::move(node));
    }
};

// A node whose value has `shape`, its elements not yet written: ops compute
// their result into it where it will stay, with no move of the array.
template <class T>
std::shared_ptr<tensor_node<T>> make_node_of_shape(const shape_type& shape);

// Runs write(value) on the variable's value, under the variable's lock: in
// place when no read holds the value, otherwise on a copy that becomes the
// current value (Note in tensor_node). Reads take the lock to share the
// value, so none can begin during a write in place.
template <dtype T, class Write>
void write_variable(const basic_variable<T>& variable, Write&& write)
{
    tensor_node<T>& storage = *tensor_access::node(variable);
    const std::lock_guard lock(storage.variable->mutex);
    if (storage.current.use_count() > 1) {
        storage.current = make_bookkept<tensor_node<T>>(xt::xarray<T>(storage.current->value), storage.id,
                                                        storage.variable, false);
    }
    std::forward<Write>(write)(storage.current->value);
}

}  // namespace gradtape::detail
