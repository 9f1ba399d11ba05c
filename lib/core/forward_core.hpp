// Forward mode as ops see it: after an op is recorded, the ForwardAccumulators
// of its thread (forward.cpp) ask for the tangent of its output, through the
// op's tangent rule (Note [Tangent rules] in ops/op.hpp). Like the tape core,
// it knows no op.
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include <gradtape/source_location.hpp>

#include "core/tape_core.hpp"

namespace gradtape::detail {

// How many forward observers (ForwardAccumulators, recompute_grad's search for
// the variables a function reads) are open on all threads: while none is, an
// op pays this one load.
extern std::atomic<int> forward_observers;

// The tangent of an op's output from its inputs' tangents (monostate where an
// input has none); monostate for none.
using tangent_rule = std::function<any_tensor(std::span<const any_tensor> tangents)>;

// Shows an op that has run and been recorded to this thread's forward
// observers: each accumulator that holds a tangent for one of its inputs gets
// the output's tangent from `rule`.
void observe_op(std::string_view op, const source_location& site, std::span<const any_tensor> inputs,
                const any_tensor& output, const tangent_rule& rule);

// While it lives, the inputs of every op this thread runs that are reads of a
// variable are appended to `reads` (once each), even while stop_recording()
// pauses the tapes: how recompute_grad finds the variables a function reads.
class variable_search {
public:
    explicit variable_search(std::vector<any_tensor>& reads);
    ~variable_search();
    variable_search(const variable_search&) = delete;
    variable_search& operator=(const variable_search&) = delete;

private:
    std::vector<any_tensor>* saved_;
};

// Whether an accumulator of this thread computes tangents now: then a backward
// rule must run in ops, as it does when a tape records (ops/recurrent.cpp).
bool accumulating();

}  // namespace gradtape::detail
