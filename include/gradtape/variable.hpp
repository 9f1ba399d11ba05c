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

template <dtype T>
class basic_variable : public basic_tensor<T> {
public:
    // The shape is fixed here: assign() refuses any other. Explicit, so that a
    // tensor never turns into a new variable silently (in an optimizer's list, say).
    explicit basic_variable(const basic_tensor<T>& initial, std::string name = {}, bool trainable = true);

    basic_variable(const basic_variable& other) : basic_tensor<T>(basic_tensor<T>::share_node, other.node_) {}
    basic_variable& operator=(const basic_variable& other)
    {
        this->node_ = other.node_;
        return *this;
    }
    ~basic_variable() = default;

    [[nodiscard]] const std::string& name() const { return this->node_->variable->name; }
    [[nodiscard]] bool trainable() const { return this->node_->variable->trainable; }

    // Each replaces the value in place; a value of another shape throws shape_error.
    void assign(const basic_tensor<T>& value,
                source_location site = source_location::current());
    /// Adds delta in place; a delta of another shape throws shape_error.
    void assign_add(const basic_tensor<T>& delta,
                    source_location site = source_location::current());
    /// Subtracts delta in place; a delta of another shape throws shape_error.
    void assign_sub(const basic_tensor<T>& delta,
                    source_location site = source_location::current());

};

using Variable = basic_variable<float>;
using Variable64 = basic_variable<double>;

}  // namespace gradtape
