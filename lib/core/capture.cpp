// Captures and replays (include/gradtape/capture.hpp, Note [Reads while
// capturing]): a recording per signature, made by a session that ops, reads
// and updates report to, and replayed step by step on the buffers it keeps.
#include <gradtape/capture.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <typeinfo>
#include <unordered_map>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/static_tls.hpp"
#include "core/tape_core.hpp"
#include "core/tensor_access.hpp"
#include "debug/debug_hooks.hpp"

namespace gradtape {
namespace detail {

std::atomic<int> captures_recording{0};

namespace {

bool env_run_eagerly()
{
    const char* value = std::getenv("GRADTAPE_RUN_EAGERLY");
    return value && std::string(value) != "0" && std::string(value) != "";
}

std::atomic<bool> run_eagerly_everywhere{env_run_eagerly()};

enum class slot_kind : std::uint8_t { argument, computed, variable_read, constant };

struct slot_info {
    slot_kind kind;
    const char* dtype;
    shape_type shape;
    std::size_t element_size;
    // For a computed slot: a new node of its shape, when the caller still
    // holds the one a replay would overwrite.
    replay_slot (*fresh)(const shape_type&);
    // What an error says the slot holds: the op that computed it and where,
    // or the variable it was read from.
    std::string_view made_by;
    source_location origin;
    std::string variable;
};

std::size_t bytes_of(const slot_info& info)
{
    std::size_t count = 1;
    for (std::size_t dim : info.shape) {
        count *= dim;
    }
    return count * info.element_size;
}

template <dtype T>
replay_slot fresh_node(const shape_type& shape)
{
    return make_node_of_shape<T>(shape);
}

template <dtype T>
void renew_id(const replay_slot& slot)
{
    static_cast<tensor_node<T>*>(slot.get())->id = new_tensor_id();
}

// A variable's value, read where the capturing call read it.
template <dtype T>
struct read_variable_step final : replay_step {
    const tensor_node<T>* storage;
    slot_index slot;

    read_variable_step(const tensor_node<T>& from, slot_index into) : storage(&from), slot(into)
    {
        name = "read";
        writes.push_back(into);
    }
    void run(std::span<replay_slot> slots) override { slots[slot] = read_variable(*storage); }
};

}  // namespace

// One signature's recording.
struct recording {
    std::vector<std::uint64_t> key;
    std::string signature;
    std::vector<replay_slot> slots;
    std::vector<slot_info> info;
    std::vector<std::unique_ptr<replay_step>> steps;
    // The argument and variable slots whose last reader is each step.
    std::vector<std::vector<slot_index>> released_after;
    std::vector<slot_index> arguments;
    // The integer array arguments' values, filled at each call; ops read them
    // through share_indices.
    std::vector<std::shared_ptr<xt::xarray<std::int64_t>>> indices;
    std::vector<slot_index> outputs;
    std::vector<void (*)(const replay_slot&)> output_renewals;
    std::vector<slot_index> computed;
    // The argument and variable slots, but those returned: emptied after each call.
    std::vector<slot_index> unbound;
    std::uint64_t replays = 0;
};

class capture_state {
public:
    capture_state(capture_options opts, const source_location& where) : options(opts), site(where) {}

    capture_options options;
    source_location site;
    std::mutex calling;
    std::atomic<std::thread::id> caller;
    std::vector<std::unique_ptr<recording>> recordings;
    bool warned = false;
    bool told_eager_under_tape = false;

    // The call in progress: its signature and its tensor arguments.
    std::vector<std::uint64_t> key;
    std::vector<replay_slot> arguments;
    std::vector<const xt::xarray<std::int64_t>*> indices;
    recording* replaying = nullptr;
    std::unique_ptr<recording> pending;
    std::unique_ptr<capture_session> session;
};

namespace {

thread_local capture_session* active GRADTAPE_STATIC_TLS = nullptr;

std::string capture_site(const capture_state& state)
{
    return std::string(state.site.file_name()) + ":" + std::to_string(state.site.line());
}

}  // namespace

class capture_session {
public:
    capture_session(capture_state& owner, recording& into, bool later)
        : state(owner), rec(into), later_signature(later), previous(active)
    {
        active = this;
        captures_recording.fetch_add(1, std::memory_order_relaxed);
    }
    ~capture_session()
    {
        active = previous;
        captures_recording.fetch_sub(1, std::memory_order_relaxed);
    }
    capture_session(const capture_session&) = delete;
    capture_session& operator=(const capture_session&) = delete;

    // A new slot for `node`; `found` says whether later lookups of the node find it.
    template <dtype T>
    slot_index new_slot(const std::shared_ptr<tensor_node<T>>& node, slot_kind kind, bool found = true)
    {
        const auto index = slot_index(rec.slots.size());
        rec.slots.push_back(node);
        rec.info.push_back({kind, dtype_name<T>(), node->value.shape(), sizeof(T), fresh_node<T>, {}, {}, {}});
        if (found) {
            slots_of[node.get()] = index;
        }
        return index;
    }

    struct variable_read {
        replay_slot held;
        std::unique_ptr<replay_step> (*step)(const void* storage, slot_index slot);
        const void* storage;
        std::string name;
    };
    struct random_draw {
        replay_slot held;
        std::string_view op;
        source_location site;
    };

    capture_state& state;
    recording& rec;
    bool later_signature;
    bool writing = false;
    capture_session* previous;
    std::unordered_map<const void*, slot_index> slots_of;
    std::unordered_map<const void*, variable_read> variable_reads;
    std::unordered_map<const void*, random_draw> random_draws;
};

namespace {

template <dtype T>
std::unique_ptr<replay_step> make_read_step(const void* storage, slot_index slot)
{
    return std::make_unique<read_variable_step<T>>(*static_cast<const tensor_node<T>*>(storage), slot);
}

const char* how_to_go_on = "move the read out of the captured function (return the tensor instead), or run it "
                           "eagerly (gradtape::run_functions_eagerly(true) or GRADTAPE_RUN_EAGERLY=1)";

std::string describe_slot(const slot_info& info, std::size_t argument_number)
{
    switch (info.kind) {
    case slot_kind::argument:
        return "argument " + std::to_string(argument_number);
    case slot_kind::variable_read:
        return "variable '" + info.variable + "'";
    default:
        return "a tensor computed by " + std::string(info.made_by) + " at " + std::string(info.origin.file_name()) +
               ":" + std::to_string(info.origin.line());
    }
}

}  // namespace

capture_session* active_capture() noexcept
{
    return active;
}

template <dtype T>
slot_index input_slot(capture_session& session, const std::shared_ptr<tensor_node<T>>& node, std::string_view op,
                      const source_location& site, bool read_from_variable)
{
    const auto found = session.slots_of.find(node.get());
    const bool argument = found != session.slots_of.end() && session.rec.info[found->second].kind == slot_kind::argument;
    if (found != session.slots_of.end() && !(argument && read_from_variable)) {
        return found->second;
    }
    if (const auto read = session.variable_reads.find(node.get()); read != session.variable_reads.end()) {
        const slot_index slot = session.new_slot(node, slot_kind::variable_read, !argument);
        session.rec.info[slot].variable = read->second.name;
        session.rec.steps.push_back(read->second.step(read->second.storage, slot));
        return slot;
    }
    if (const auto draw = session.random_draws.find(node.get()); draw != session.random_draws.end()) {
        fail<capture_error>(op, site,
                            "reads a random draw (" + std::string(draw->second.op) + " at " +
                                std::string(draw->second.site.file_name()) + ":" +
                                std::to_string(draw->second.site.line()) +
                                ") made outside an op, which every replay would repeat as the capturing call drew "
                                "it: draw it outside the function captured at " +
                                capture_site(session.state) +
                                " and pass it as an argument, or run that function eagerly "
                                "(gradtape::run_functions_eagerly(true))");
    }
    return session.new_slot(node, slot_kind::constant);
}

template <dtype T>
slot_index output_slot(capture_session& session, const std::shared_ptr<tensor_node<T>>& node)
{
    const slot_index slot = session.new_slot(node, slot_kind::computed);
    session.rec.computed.push_back(slot);
    return slot;
}

void add_step(capture_session& session, std::unique_ptr<replay_step> step)
{
    step->backward_of = backward_op();
    step->layer = layer_in_call();
    if (const source_location* forward = backward_site()) {
        step->backward_site = *forward;
    }
    for (slot_index slot : step->writes) {
        slot_info& info = session.rec.info[slot];
        if (info.kind == slot_kind::computed) {
            info.made_by = step->name;
            info.origin = user_site(step->site);
        }
    }
    session.rec.steps.push_back(std::move(step));
}

template <dtype T>
void note_variable_read(const tensor_node<T>& storage, const std::shared_ptr<tensor_node<T>>& current)
{
    capture_session* session = active;
    if (!session) {
        return;
    }
    // A value passed as an argument stays the argument where it is used as
    // one; where a step reads it from the variable, input_slot is told.
    if (const auto found = session->slots_of.find(current.get());
        found != session->slots_of.end() && session->rec.info[found->second].kind != slot_kind::argument) {
        session->slots_of.erase(found);
    }
    // Held for the session, so that no other tensor takes the address while it records.
    session->variable_reads.insert_or_assign(
        current.get(), capture_session::variable_read{current, make_read_step<T>, &storage, storage.variable->name});
}

template <dtype T>
void note_random_draw(const std::shared_ptr<tensor_node<T>>& node, std::string_view op,
                      const source_location& site)
{
    if (capture_session* session = active) {
        session->random_draws.insert_or_assign(node.get(), capture_session::random_draw{node, op, site});
    }
}

void note_variable_made(const variable_info& variable)
{
    capture_session* session = active;
    if (session && session->later_signature) {
        throw capture_error("capture: makes variable '" + variable.name +
                            "' while recording a new signature of the function captured at " +
                            capture_site(session->state) +
                            "; replays of every signature must share the variables the first call made: make "
                            "them before the first call, or build the model once outside the function");
    }
}

void check_capture_read(const void* node, const variable_info* variable_storage, const source_location& site)
{
    const capture_session* session = active;
    if (!session || session->writing) {
        return;
    }
    std::string what;
    if (variable_storage) {
        what = "variable '" + variable_storage->name + "'";
    } else if (const auto found = session->slots_of.find(node); found != session->slots_of.end()) {
        const slot_info& info = session->rec.info[found->second];
        if (info.kind == slot_kind::constant) {
            return;
        }
        const auto argument = std::find(session->rec.arguments.begin(), session->rec.arguments.end(), found->second);
        what = describe_slot(info, std::size_t(argument - session->rec.arguments.begin()) + 1);
    } else if (const auto read = session->variable_reads.find(node); read != session->variable_reads.end()) {
        what = "variable '" + read->second.name + "'";
    } else if (const auto draw = session->random_draws.find(node); draw != session->random_draws.end()) {
        what = "a random draw (" + std::string(draw->second.op) + " at " + std::string(draw->second.site.file_name()) +
               ":" + std::to_string(draw->second.site.line()) + "), which every replay would repeat as it is now,";
    } else {
        return;
    }
    fail<capture_error>("capture", site,
                        "reads the value of " + what + " while recording the function captured at " +
                            capture_site(session->state) +
                            "; a replay would not read it again, and what was computed from it would stay as "
                            "it is now: " +
                            how_to_go_on);
}

void check_capture_write(const variable_info& variable, const source_location& site)
{
    const capture_session* session = active;
    if (!session || session->writing) {
        return;
    }
    fail<capture_error>("capture", site,
                        "writes variable '" + variable.name + "' while recording the function captured at " +
                            capture_site(session->state) +
                            "; a replay repeats only the ops and optimizers' updates: write it outside the "
                            "function, or run that function eagerly (gradtape::run_functions_eagerly(true))");
}

recorded_write::recorded_write(capture_session* session) : session_(session)
{
    if (session_) {
        session_->writing = true;
    }
}

recorded_write::~recorded_write()
{
    if (session_) {
        session_->writing = false;
    }
}

namespace {

std::string argument_type_name(const char* type, std::uint64_t bits)
{
    const auto as = [&](auto zero) {
        decltype(zero) value;
        std::memcpy(&value, &bits, sizeof(value));
        return value;
    };
    const std::string_view name = type;
    if (name == typeid(bool).name()) {
        return as(false) ? "true" : "false";
    }
    if (name == typeid(float).name()) {
        return std::to_string(as(0.0f));
    }
    if (name == typeid(double).name()) {
        return std::to_string(as(0.0));
    }
    if (name == typeid(int).name()) {
        return std::to_string(as(0));
    }
    if (name == typeid(long).name()) {
        return std::to_string(as(0L));
    }
    if (name == typeid(unsigned long).name()) {
        return std::to_string(as(0UL));
    }
    char text[19];
    std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(bits));
    return text;
}

// A signature's words: for each tensor argument its tag, dtype, the first
// argument it aliases (itself if none), rank and dimensions; for each
// integer array its tag, dtype, rank and dimensions; for each other argument
// its tag, type and bits.
constexpr std::uint64_t tensor_argument = 1;
constexpr std::uint64_t scalar_argument = 2;
constexpr std::uint64_t indices_argument_tag = 3;

std::string describe_signature(const std::vector<std::uint64_t>& key)
{
    std::string text = "(";
    for (std::size_t word = 0; word < key.size();) {
        text += word ? ", " : "";
        const auto* type = reinterpret_cast<const char*>(key[word + 1]);
        if (key[word] == tensor_argument || key[word] == indices_argument_tag) {
            const std::size_t skip = key[word] == tensor_argument ? 3 : 2;
            const std::size_t rank = key[word + skip];
            const auto dims = key.begin() + std::ptrdiff_t(word + skip + 1);
            text += std::string(type) + " " + format_shape(shape_type(dims, dims + std::ptrdiff_t(rank)));
            word += skip + 1 + rank;
        } else {
            text += argument_type_name(type, key[word + 2]);
            word += 3;
        }
    }
    return text + ")";
}

// Runs the recording on the call's arguments; any exception leaves the
// recording ready for the next call.
void replay(capture_state& state, recording& rec)
{
    for (std::size_t i = 0; i < rec.arguments.size(); ++i) {
        rec.slots[rec.arguments[i]] = state.arguments[i];
    }
    // Returned tensors never change: a buffer the caller still holds is
    // replaced, not overwritten.
    for (slot_index slot : rec.computed) {
        if (rec.slots[slot].use_count() > 1) {
            rec.slots[slot] = rec.info[slot].fresh(rec.info[slot].shape);
        }
    }
    struct unbind {
        recording& rec;
        ~unbind()
        {
            for (slot_index slot : rec.unbound) {
                rec.slots[slot].reset();
            }
        }
    } unbound_afterwards{rec};
    const std::span<replay_slot> slots(rec.slots);
    const bool inspecting = debugging_on();
    const auto run = [&](replay_step& step) {
        step.run(slots);
        if (inspecting) {
            step.inspect(slots);
        }
    };
    for (std::size_t i = 0; i < rec.steps.size(); ++i) {
        replay_step& step = *rec.steps[i];
        const auto attributed = [&] {
            if (step.backward_of.empty()) {
                run(step);
            } else {
                const backward_attribution in_backward(step.backward_of, &step.backward_site);
                run(step);
            }
        };
        if (step.layer) {
            const layer_in_call_scope in_layer(step.layer);
            attributed();
        } else {
            attributed();
        }
        for (slot_index done : rec.released_after[i]) {
            slots[done].reset();
        }
    }
    for (std::size_t i = 0; i < rec.outputs.size(); ++i) {
        if (rec.info[rec.outputs[i]].kind == slot_kind::computed) {
            rec.output_renewals[i](rec.slots[rec.outputs[i]]);
        }
    }
    ++rec.replays;
}

// Which slots each step is the last to read; outputs are kept.
void plan_releases(recording& rec)
{
    std::vector<std::ptrdiff_t> last_reader(rec.slots.size(), -1);
    for (std::size_t i = 0; i < rec.steps.size(); ++i) {
        for (slot_index slot : rec.steps[i]->reads) {
            last_reader[slot] = std::ptrdiff_t(i);
        }
    }
    rec.released_after.assign(rec.steps.size(), {});
    for (std::size_t slot = 0; slot < rec.slots.size(); ++slot) {
        const slot_kind kind = rec.info[slot].kind;
        const bool returned = std::find(rec.outputs.begin(), rec.outputs.end(), slot) != rec.outputs.end();
        if ((kind == slot_kind::argument || kind == slot_kind::variable_read) && !returned) {
            rec.unbound.push_back(slot_index(slot));
            if (last_reader[slot] >= 0) {
                rec.released_after[std::size_t(last_reader[slot])].push_back(slot_index(slot));
            }
        }
    }
}

}  // namespace

capture_call::capture_call(const std::shared_ptr<capture_state>& state) : state_(*state)
{
    if (state_.caller.load() == std::this_thread::get_id()) {
        throw capture_error("capture: the function captured at " + capture_site(state_) +
                            " was called from inside itself; call it again only after it returns");
    }
    if (!state_.calling.try_lock()) {
        throw capture_error("capture: the function captured at " + capture_site(state_) +
                            " was called from a second thread while a call runs; a captured function runs one "
                            "call at a time: capture it once per thread");
    }
    state_.caller.store(std::this_thread::get_id());
    state_.key.clear();
    state_.arguments.clear();
    state_.indices.clear();
}

capture_call::~capture_call()
{
    if (!finished_) {
        state_.session.reset();
        state_.pending.reset();
    }
    state_.arguments.clear();
    state_.indices.clear();
    state_.replaying = nullptr;
    state_.caller.store(std::thread::id());
    state_.calling.unlock();
}

template <dtype T>
void capture_call::argument(const basic_tensor<T>& tensor)
{
    const auto& node = tensor_access::node(tensor);
    std::uint64_t aliases = state_.arguments.size();
    for (std::size_t i = 0; i < state_.arguments.size(); ++i) {
        if (state_.arguments[i].get() == node.get()) {
            aliases = i;
            break;
        }
    }
    state_.key.push_back(tensor_argument);
    state_.key.push_back(reinterpret_cast<std::uintptr_t>(dtype_name<T>()));
    state_.key.push_back(aliases);
    state_.key.push_back(tensor.dimension());
    state_.key.insert(state_.key.end(), tensor.shape().begin(), tensor.shape().end());
    state_.arguments.push_back(node);
}

void capture_call::argument(const xt::xarray<std::int64_t>& indices)
{
    state_.key.push_back(indices_argument_tag);
    state_.key.push_back(reinterpret_cast<std::uintptr_t>(dtype_name<std::int64_t>()));
    state_.key.push_back(indices.dimension());
    state_.key.insert(state_.key.end(), indices.shape().begin(), indices.shape().end());
    state_.indices.push_back(&indices);
}

const xt::xarray<std::int64_t>& capture_call::indices_argument(const xt::xarray<std::int64_t>* given) const
{
    if (!state_.pending) {
        return *given;
    }
    const auto position = std::find(state_.indices.begin(), state_.indices.end(), given) - state_.indices.begin();
    return *state_.pending->indices[std::size_t(position)];
}

index_array share_indices(const xt::xarray<std::int64_t>& indices)
{
    if (const capture_session* session = active) {
        for (const auto& buffer : session->rec.indices) {
            if (buffer.get() == &indices) {
                return buffer;
            }
        }
    }
    return std::make_shared<const xt::xarray<std::int64_t>>(indices);
}

void capture_call::argument(const char* type, std::uint64_t bits)
{
    state_.key.push_back(scalar_argument);
    state_.key.push_back(reinterpret_cast<std::uintptr_t>(type));
    state_.key.push_back(bits);
}

capture_call::action capture_call::begin()
{
    if (functions_run_eagerly() || active) {
        return action::run_eagerly;
    }
    if (tapes_active()) {
        if (!state_.told_eager_under_tape) {
            state_.told_eager_under_tape = true;
            trace_note("the function captured at " + capture_site(state_) +
                       " runs eagerly while a GradientTape exists on this thread, so that the tape records it");
        }
        return action::run_eagerly;
    }
    for (const auto& rec : state_.recordings) {
        if (rec->key == state_.key) {
            for (std::size_t i = 0; i < state_.indices.size(); ++i) {
                std::copy_n(state_.indices[i]->data(), state_.indices[i]->size(), rec->indices[i]->data());
            }
            state_.replaying = rec.get();
            replay(state_, *rec);
            return action::replay;
        }
    }
    std::string signature = describe_signature(state_.key);
    if (state_.recordings.size() >= state_.options.max_signatures) {
        if (!state_.warned) {
            state_.warned = true;
            std::string seen;
            for (const auto& rec : state_.recordings) {
                seen += " " + rec->signature;
            }
            std::cerr << "gradtape: the function captured at " << capture_site(state_) << " has recorded "
                      << state_.recordings.size() << " signatures (capture_options::max_signatures), seen:" << seen
                      << "; calls with a new one, as " << signature << ", run eagerly\n";
        }
        return action::run_eagerly;
    }
    state_.pending = std::make_unique<recording>();
    state_.pending->key = state_.key;
    state_.pending->signature = std::move(signature);
    for (const xt::xarray<std::int64_t>* given : state_.indices) {
        state_.pending->indices.push_back(std::make_shared<xt::xarray<std::int64_t>>(*given));
    }
    state_.session = std::make_unique<capture_session>(state_, *state_.pending, !state_.recordings.empty());
    for (const replay_slot& node : state_.arguments) {
        const auto found = state_.session->slots_of.find(node.get());
        if (found != state_.session->slots_of.end()) {
            state_.pending->arguments.push_back(found->second);
            continue;
        }
        const auto index = slot_index(state_.pending->slots.size());
        state_.pending->slots.push_back(node);
        state_.pending->info.push_back({slot_kind::argument, "", {}, 0, nullptr, {}, {}, {}});
        state_.session->slots_of[node.get()] = index;
        state_.pending->arguments.push_back(index);
    }
    return action::capture;
}

template <dtype T>
void capture_call::output(const basic_tensor<T>& tensor)
{
    recording& rec = *state_.pending;
    const auto node = read(tensor_access::node(tensor));
    rec.outputs.push_back(input_slot(*state_.session, node, "capture", state_.site, false));
    rec.output_renewals.push_back(renew_id<T>);
}

void capture_call::finish()
{
    recording& rec = *state_.pending;
    plan_releases(rec);
    state_.session.reset();
    // Arguments and variable reads are bound at each replay; holding them
    // now would keep the caller's tensors alive and make updates copy.
    for (std::size_t slot = 0; slot < rec.slots.size(); ++slot) {
        if (rec.info[slot].kind == slot_kind::argument || rec.info[slot].kind == slot_kind::variable_read) {
            rec.slots[slot].reset();
        }
    }
    state_.recordings.push_back(std::move(state_.pending));
    finished_ = true;
}

std::size_t capture_call::output_count() const
{
    return state_.replaying->outputs.size();
}

template <dtype T>
basic_tensor<T> capture_call::replayed(std::size_t index) const
{
    const recording& rec = *state_.replaying;
    return tensor_access::adopt(std::static_pointer_cast<tensor_node<T>>(rec.slots[rec.outputs[index]]));
}

std::shared_ptr<capture_state> make_capture_state(capture_options options, const source_location& site)
{
    if (options.max_signatures == 0) {
        fail<argument_error>("capture", site, "max_signatures must be at least 1");
    }
    return std::make_shared<capture_state>(options, site);
}

std::size_t signature_count(const capture_state& state)
{
    return state.recordings.size();
}

void print_captures(std::ostream& out, const capture_state& state)
{
    out << "<captured function at " << capture_site(state) << ": " << state.recordings.size()
        << (state.recordings.size() == 1 ? " signature" : " signatures") << ">\n";
    for (const auto& rec : state.recordings) {
        std::size_t held = 0;
        for (slot_index slot : rec->computed) {
            held += bytes_of(rec->info[slot]);
        }
        out << "signature " << rec->signature << ": " << rec->steps.size() << " steps, " << format_bytes(held)
            << " of buffers, replayed " << with_thousands(rec->replays) << " times\n";
        for (std::size_t i = 0; i < rec->steps.size(); ++i) {
            const replay_step& step = *rec->steps[i];
            out << "  " << i + 1 << ". " << (step.layer ? *step.layer + ": " : "") << step.name;
            const auto describe = [&](slot_index slot) {
                const slot_info& info = rec->info[slot];
                if (info.kind == slot_kind::argument) {
                    const auto argument = std::find(rec->arguments.begin(), rec->arguments.end(), slot);
                    return "argument " + std::to_string(argument - rec->arguments.begin() + 1);
                }
                std::string text = format_shape(info.shape) + " " + info.dtype;
                if (info.kind == slot_kind::variable_read) {
                    text = "'" + info.variable + "' " + text;
                } else if (info.kind == slot_kind::constant) {
                    text = "constant " + text;
                }
                return text;
            };
            for (std::size_t r = 0; r < step.reads.size(); ++r) {
                out << (r ? ", " : " ") << describe(step.reads[r]);
            }
            for (slot_index slot : step.writes) {
                out << " -> " << describe(slot);
                if (rec->info[slot].kind == slot_kind::computed) {
                    out << " (" << format_bytes(bytes_of(rec->info[slot])) << ")";
                }
            }
            if (step.name != "read") {
                const source_location& site = step.backward_of.empty() ? step.site : step.backward_site;
                out << " at " << site.file_name() << ":" << site.line();
            }
            if (!step.backward_of.empty()) {
                out << " (backward of " << step.backward_of << ")";
            }
            out << '\n';
        }
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template slot_index input_slot(capture_session&, const std::shared_ptr<tensor_node<T>>&, std::string_view,      \
                                   const source_location&, bool);                                              \
    template slot_index output_slot(capture_session&, const std::shared_ptr<tensor_node<T>>&);                      \
    template void note_variable_read(const tensor_node<T>&, const std::shared_ptr<tensor_node<T>>&);                \
    template void note_random_draw(const std::shared_ptr<tensor_node<T>>&, std::string_view,                        \
                                   const source_location&);                                                    \
    template void capture_call::argument(const basic_tensor<T>&);                                                   \
    template void capture_call::output(const basic_tensor<T>&);                                                     \
    template basic_tensor<T> capture_call::replayed(std::size_t) const;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace detail

void run_functions_eagerly(bool eagerly)
{
    detail::run_eagerly_everywhere.store(eagerly);
}

bool functions_run_eagerly()
{
    return detail::run_eagerly_everywhere.load();
}

}  // namespace gradtape
