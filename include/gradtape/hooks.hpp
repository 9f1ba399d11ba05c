// Gradient hooks: a look at, or a change to, a gradient as a backward pass
// computes it (PyTorch's Tensor.register_hook), and a monitor of the
// gradient norms of every trainable variable built on them.
//
//   auto hook = gradtape::register_hook(w, [](const gradtape::Tensor& g) {
//       return gradtape::clip_by_value(g, -1.f, 1.f);
//   });
//   gradtape::gradient_monitor monitor(model, "gradients.csv");
//   ...
//   monitor.plot("gradients.png");
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"
#include "variable.hpp"

namespace gradtape {

namespace detail {
struct hook_entry;
}

template <dtype T>
class basic_layer;

/// Keeps a hook registered while it lives: destroying it, or remove(),
/// unregisters the hook. Movable, not copyable.
class [[nodiscard]] hook_handle {
public:
    /// Holds no hook.
    hook_handle() = default;
    /// Holds a hook register_hook made.
    explicit hook_handle(std::shared_ptr<detail::hook_entry> entry) : entry_(std::move(entry)) {}
    /// Takes other's hook; other then holds none.
    hook_handle(hook_handle&& other) noexcept = default;
    /// Unregisters this handle's hook, then takes other's.
    hook_handle& operator=(hook_handle&& other) noexcept;
    hook_handle(const hook_handle&) = delete;
    hook_handle& operator=(const hook_handle&) = delete;
    ~hook_handle();

    /// Unregisters the hook; a second call does nothing.
    void remove();

private:
    std::shared_ptr<detail::hook_entry> entry_;
};

/// A hook: the complete gradient of its tensor in one backward pass; it
/// returns a replacement of the same shape, or an undefined tensor to keep it.
template <dtype T>
using gradient_hook = std::function<basic_tensor<T>(const basic_tensor<T>& gradient)>;

/// Calls `hook` in every backward pass, on any tape, in which the gradient of
/// `tensor` (a tensor or a variable) is complete: before it flows on to what
/// computed the tensor, or before it is returned for a source. Hooks on one
/// tensor run in the order registered. They run with ops, so that an outer
/// tape records what they do. A hook that returns a gradient of another
/// shape is a shape_error naming where it was registered and where the
/// tensor was computed.
template <dtype T>
hook_handle register_hook(const basic_tensor<T>& tensor, const std::type_identity_t<gradient_hook<T>>& hook,
                          source_location site = source_location::current());

/// Writes, for every gradient of its variables that a backward pass
/// computes, a line of `step,variable,gradient_norm` (the L2 norm) to a CSV
/// file: the step counts the gradients of that variable from 0.
template <dtype T>
class basic_gradient_monitor {
public:
    /// Every trainable variable of a model or layer.
    basic_gradient_monitor(const basic_layer<T>& model, const std::filesystem::path& csv,
                           source_location site = source_location::current());
    /// The trainable ones of `variables`; none is an argument_error.
    basic_gradient_monitor(const std::vector<basic_variable<T>>& variables, const std::filesystem::path& csv,
                           source_location site = source_location::current());

    /// The norms per step, one line per variable, drawn by gnuplot into a PNG
    /// (an argument_error when gnuplot is missing or fails).
    void plot(const std::filesystem::path& png, source_location site = source_location::current()) const;

private:
    struct state;
    std::shared_ptr<state> state_;
    std::vector<hook_handle> hooks_;
};

/// A monitor of float32 variables.
using gradient_monitor = basic_gradient_monitor<float>;
/// A monitor of float64 variables.
using gradient_monitor64 = basic_gradient_monitor<double>;

}  // namespace gradtape
