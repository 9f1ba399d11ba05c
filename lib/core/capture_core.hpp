// What a capture (include/gradtape/capture.hpp) needs from the rest of the
// library: ops, variable reads and optimizer updates tell the capture this
// thread records what they did, as steps a replay runs again.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include <gradtape/source_location.hpp>
#include <gradtape/tensor.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"

namespace gradtape::detail {

// Note [Reads while capturing]
// A capture runs its function once, eagerly, and keeps what every op did as
// a step: the op object, the slots of its inputs and of its output. A replay
// runs the steps' kernels again on the same buffers. That is only right if
// every value the function's result depends on is made by a step; a value
// made any other way would keep its capture-time contents at every replay.
// So, while a capture records:
// - a read of a value a replay would change (an argument, a variable, or
//   anything computed from them) through value() or item() throws
//   capture_error: code that reads a value to compute another outside the
//   op contract (a backward rule making a mask with xtensor) is refused, not
//   silently replayed stale. The library's own reads that a replay repeats
//   (a kernel's, an update's) go through tensor_access::value;
// - a random draw is refused where a step reads it (a replay would repeat
//   the capturing call's draws), but may still initialize a variable;
// - a variable is written only by an optimizer's update or assign*, which
//   record a step that does the write again at every replay; and the ops
//   that draw (dropout's mask) draw when their kernel runs.
// Tensors from outside the function, and those it makes from no value a
// replay changes (zeros, a literal), are constants: kept as they were.

// A value a step reads or writes: the node of a tensor, shared. A step's
// output keeps its node (its buffer) across replays; an argument's slot is
// bound at each call; a variable's is taken by a step at its place among the
// others, so that it sees the writes before it.
using replay_slot = std::shared_ptr<void>;
using slot_index = std::uint32_t;

template <dtype T>
xt::xarray<T>& slot_value(const replay_slot& slot)
{
    return static_cast<tensor_node<T>*>(slot.get())->value;
}

// One thing a replay does, in the order the capturing call did it.
struct replay_step {
    std::string_view name;
    source_location site;
    // The forward op whose backward rule ran this one, or empty.
    std::string_view backward_of;
    source_location backward_site;
    // Note [The layer in call]
    layer_path layer;
    std::vector<slot_index> reads;
    std::vector<slot_index> writes;

    replay_step() = default;
    replay_step(const replay_step&) = delete;
    replay_step& operator=(const replay_step&) = delete;
    virtual ~replay_step() = default;
    virtual void run(std::span<replay_slot> slots) = 0;
    // Traces the step and checks its value, as eager mode does each op, when
    // either is on (debug.hpp).
    virtual void inspect(std::span<replay_slot>) const {}
};

class capture_session;

// The integer indices an op keeps (gather's, one_hot's): while a capture
// records, the buffer of the captured function's argument they are, which
// each replay fills anew; otherwise a copy.
using index_array = std::shared_ptr<const xt::xarray<std::int64_t>>;
index_array share_indices(const xt::xarray<std::int64_t>& indices);

// The capture this thread records, or null.
capture_session* active_capture() noexcept;

// The slot of a tensor a step reads: a value an earlier step computed, an
// argument, a variable read (taken again at each replay by a step added here;
// `read_from_variable` when the step read the node from a variable, which
// may also be what an argument holds) or a constant. Throws capture_error for
// a random draw (Note [Reads while capturing]), naming `op` and `site`.
template <dtype T>
slot_index input_slot(capture_session& session, const std::shared_ptr<tensor_node<T>>& node, std::string_view op,
                      const source_location& site, bool read_from_variable);
// The slot of a tensor a step computes.
template <dtype T>
slot_index output_slot(capture_session& session, const std::shared_ptr<tensor_node<T>>& node);
// Appends a step, naming the backward rule it runs in, if any.
void add_step(capture_session& session, std::unique_ptr<replay_step> step);

// For read_variable: `current`, the value just read from `storage`, is that variable's.
template <dtype T>
void note_variable_read(const tensor_node<T>& storage, const std::shared_ptr<tensor_node<T>>& current);
// For the random draws: `node` holds one (Note [Reads while capturing]).
template <dtype T>
void note_random_draw(const std::shared_ptr<tensor_node<T>>& node, std::string_view op,
                      const source_location& site);
// For the variables' constructor: refuses a variable made while a later
// signature is captured (a replay would reuse the one made then).
void note_variable_made(const variable_info& variable);

// While it lives, this thread's writes to variables are the ones a step
// just recorded (an update's, an assign's), and its reads of values are that
// step's own (Note [Reads while capturing]).
class recorded_write {
public:
    explicit recorded_write(capture_session* session);
    ~recorded_write();
    recorded_write(const recorded_write&) = delete;
    recorded_write& operator=(const recorded_write&) = delete;

private:
    capture_session* session_;
};

}  // namespace gradtape::detail
