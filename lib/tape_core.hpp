// The tape core as ops see it: should this op be recorded, record it, and the
// backward pass. It knows tensors only by id and gradients only as values;
// no op appears here.
#pragma once

#include <cstdint>
#include <functional>
#include <source_location>
#include <span>
#include <string_view>
#include <utility>
#include <variant>

#include <xtensor/xstorage.hpp>

#include <gradtape/tensor.hpp>

namespace gradtape::detail {

using any_tensor = std::variant<std::monostate, basic_tensor<float>, basic_tensor<double>>;

// An op's input as a tape sees it: its id, and the variable it was read from.
struct tape_input {
    tensor_id id;
    const variable_info* variable;
};

// Which inputs of an op lead to something the tape watches; the backward rule
// need not compute the gradient of the others. Inputs past the 64th always count.
class input_mask {
public:
    explicit input_mask(std::uint64_t bits) : bits_(bits) {}
    [[nodiscard]] bool operator[](std::size_t input) const { return input >= 64 || ((bits_ >> input) & 1U); }
    [[nodiscard]] std::uint64_t bits() const { return bits_; }

private:
    std::uint64_t bits_;
};

// Writes the gradient of each needed input into input_gradients (left
// monostate where an input gets none), from the gradient of the op's output.
using backward_function =
    std::function<void(const any_tensor& output_gradient, input_mask needed, std::span<any_tensor> input_gradients)>;

struct tape_state;

// The tapes of this thread that record an op, decided from its inputs; empty
// (and false) when none does, so that an op not recorded costs one check.
class recorder {
public:
    explicit recorder(std::span<const tape_input> inputs);
    explicit operator bool() const { return !tapes_.empty(); }
    void record(std::string_view op, const std::source_location& site, std::span<const tape_input> inputs,
                tensor_id output, backward_function backward);

private:
    xt::svector<std::pair<tape_state*, std::uint64_t>, 4> tapes_;
};

// The call site of the forward op whose backward rule is running on this thread, if any.
const std::source_location* backward_site();

// total += addend, with the ops (so that outer tapes record it); a monostate total takes addend.
void accumulate(any_tensor& total, any_tensor&& addend);

}  // namespace gradtape::detail
