// basic_variable: a named, mutable, optionally trainable tensor; the state a
// model learns.
//
//   gradtape::Variable w(gradtape::random_normal<float>({2, 1}, 0, 0.1), "weights");
//   auto yhat = gradtape::matmul(input, w);   // a variable is usable wherever a tensor is
//   w.assign_sub(0.002f * grad);              // in place, no reallocation
//
// Copies of a variable share it (a second handle to the same state); copying
// one into a plain Tensor reads it, keeping the value of that moment. A read
// shares the variable's buffer; a later write copies it first only while a
// read (a recorded op, a tensor) still holds it.
#pragma once

#include <string>

#include "tensor.hpp"

namespace gradtape {

/// A tensor whose value can be replaced in place: a model's weight. A tape
/// watches every trainable variable an op reads (tape_options), optimizers
/// update them, checkpoints save them. Copies share the variable; copying one
/// into a plain basic_tensor reads its value of that moment.
template <dtype T>
class basic_variable : public basic_tensor<T> {
public:
    /// The shape is fixed here: assign() refuses any other. Explicit, so that a
    /// tensor never turns into a new variable silently (in an optimizer's list, say).
    explicit basic_variable(const basic_tensor<T>& initial, std::string name = {}, bool trainable = true);

    /// The same variable: a write through either is seen by both.
    basic_variable(const basic_variable& other) : basic_tensor<T>(basic_tensor<T>::share_node, other.node_) {}
    /// Makes this handle name other's variable.
    basic_variable& operator=(const basic_variable& other)
    {
        this->node_ = other.node_;
        return *this;
    }
    ~basic_variable() = default;

    /// The name given at construction, or its layer path (`net/dense/kernel`).
    [[nodiscard]] const std::string& name() const { return this->node_->variable->name; }
    /// Whether optimizers train it and tapes watch it unasked.
    [[nodiscard]] bool trainable() const { return this->node_->variable->trainable; }

    /// Replaces the value in place; a value of another shape throws shape_error.
    void assign(const basic_tensor<T>& value,
                source_location site = source_location::current());
    /// Adds delta in place; a delta of another shape throws shape_error.
    void assign_add(const basic_tensor<T>& delta,
                    source_location site = source_location::current());
    /// Subtracts delta in place; a delta of another shape throws shape_error.
    void assign_sub(const basic_tensor<T>& delta,
                    source_location site = source_location::current());

};

using Variable = basic_variable<float>;     ///< A float32 variable.
using Variable64 = basic_variable<double>;  ///< A float64 variable.

}  // namespace gradtape
