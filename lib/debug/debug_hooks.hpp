// Where ops and the backward pass call into tracing and numeric checks.
#pragma once

#include <atomic>
#include <span>
#include <string>
#include <string_view>

#include <gradtape/source_location.hpp>

#include "core/tape_core.hpp"

namespace gradtape::detail {

// True while a trace or a numeric check is on anywhere: the only test an op
// pays when debugging is off.
extern std::atomic<bool> debugging;
inline bool debugging_on()
{
    return debugging.load(std::memory_order_relaxed);
}

// How an op's trace line ends: whether a tape recorded it, or a capture's
// replay ran it.
enum class run_by { tape, no_tape, replay };

// Traces the op and checks its value, when either is on for this thread.
template <dtype T>
void inspect_forward(std::string_view op, const source_location& site, std::span<const tape_input> inputs,
                     const basic_tensor<T>& result, run_by how);

// Writes "gradtape: <line>" to stderr when tracing is on.
void trace_note(const std::string& line);

// Checks the gradients a backward rule of `op` returned, when numeric checks are on for this thread.
void inspect_backward(std::string_view op, const source_location& site, std::span<const any_tensor> gradients);

}  // namespace gradtape::detail
