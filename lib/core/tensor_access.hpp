// The library's own access to what is behind a tensor handle, and its only
// write path to a variable's value. Not in the public headers: a program
// changes a variable through assign() and the optimizers.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

#include <gradtape/variable.hpp>

namespace gradtape::detail {

struct tensor_access {
    template <dtype T>
    static const std::shared_ptr<tensor_node<T>>& node(const basic_tensor<T>& tensor)
    {
        return tensor.node_;
    }
};

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
        storage.current = std::make_shared<tensor_node<T>>(xt::xarray<T>(storage.current->value), storage.id,
                                                           storage.variable, false);
    }
    std::forward<Write>(write)(storage.current->value);
}

}  // namespace gradtape::detail
