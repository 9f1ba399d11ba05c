// The library's own access to what is behind a tensor handle, and its only
// write path to a variable's value. Not in the public headers: a program
// changes a variable through assign() and the optimizers.
#pragma once

#include <memory>
#include <mutex>
#include <utility>

#include <gradtape/source_location.hpp>
#include <gradtape/variable.hpp>

#include "core/bookkeeping.hpp"

namespace gradtape::detail {

struct tensor_access {
    template <dtype T>
    static const std::shared_ptr<tensor_node<T>>& node(const basic_tensor<T>& tensor)
    {
        return tensor.node_;
    }
    // The value without the capture's read check (Note [Reads while capturing]):
    // for the library's own reads that a replay repeats, an op's kernel.
    template <dtype T>
    static const xt::xarray<T>& value(const basic_tensor<T>& tensor)
    {
        const tensor_node<T>& node = *tensor.node_;
        return (node.is_variable_storage ? *node.current : node).value;
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

// A new id, never given before, for a node that holds a new value (a replay's output).
tensor_id new_tensor_id() noexcept;

// Refuses, while this thread records a capture, a write to `variable` that
// no replay step repeats (Note [Reads while capturing]).
void check_capture_write(const variable_info& variable, const source_location& site);

// Runs write(value) on the variable's value, under the variable's lock: in
// place when no read holds the value, otherwise on a copy that becomes the
// current value (Note in tensor_node). Reads take the lock to share the
// value, so none can begin during a write in place.
template <dtype T, class Write>
void write_variable(const basic_variable<T>& variable, const source_location& site, Write&& write)
{
    tensor_node<T>& storage = *tensor_access::node(variable);
    if (captures_recording.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        check_capture_write(*storage.variable, site);
    }
    const std::lock_guard lock(storage.variable->mutex);
    if (storage.current.use_count() > 1) {
        storage.current = make_bookkept<tensor_node<T>>(xt::xarray<T>(storage.current->value), storage.id,
                                                        storage.variable, false);
    }
    std::forward<Write>(write)(storage.current->value);
}

}  // namespace gradtape::detail
