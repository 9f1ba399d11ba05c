// The tape: a thread-local stack of recording tapes, their entries, and the
// reverse pass. Entries hold ids and backward rules; values live only in the
// captures of the rules that need them.
#include <gradtape/tape.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <exception>
#include <ostream>
#include <memory>
#include <memory_resource>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "debug/debug_hooks.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/guard_count.hpp"
#include "core/id_set.hpp"
#include "core/static_tls.hpp"
#include "core/tape_core.hpp"

namespace gradtape {
namespace detail {

struct tape_entry {
    // Shared by every tape that recorded the op; released by a non-persistent
    // tape as soon as its backward pass has used it.
    std::shared_ptr<op_record> record;
    std::uint64_t watched_inputs;
};

struct tape_state {
    tape_options options;
    std::thread::id owner = std::this_thread::get_id();
    id_set watched;
    // The trainable variables watched because an op read them, by id and name.
    std::vector<std::pair<tensor_id, std::string>> accessed_variables;
    std::vector<tape_entry> entries;
    bool computing_gradient = false;
    bool answered = false;
    // Set when the GradientTape is destroyed on another thread than its owner.
    std::atomic<bool> orphaned{false};
    // Why a non-persistent tape's backward pass stopped half way, having
    // released part of what it recorded.
    std::string broken_by;

    bool records() const { return !computing_gradient && !answered; }

    bool watches(const tape_input& input)
    {
        if (watched.contains(input.id)) {
            return true;
        }
        if (input.variable && input.variable->trainable && options.watch_accessed_variables) {
            watched.insert(input.id);
            accessed_variables.emplace_back(input.id, input.variable->name);
            return true;
        }
        return false;
    }
};

namespace {

// Set when this thread's tape stack has been destroyed (at thread exit, or at
// program exit for the main thread): a GradientTape of static storage duration
// is destroyed after it and must not touch it. A plain bool, so that it
// outlives every destructor.
thread_local bool tapes_gone GRADTAPE_STATIC_TLS = false;

struct thread_tapes {
    // Shared with the GradientTape, so that a tape destroyed on another
    // thread only marks itself orphaned and this thread drops it safely.
    std::vector<std::shared_ptr<tape_state>> active;
    std::shared_ptr<guard_count> pauses;
    const source_location* backward_site = nullptr;
    std::string_view backward_op;
    bool in_tangent = false;

    thread_tapes() = default;
    thread_tapes(const thread_tapes&) = delete;
    thread_tapes& operator=(const thread_tapes&) = delete;
    ~thread_tapes() { tapes_gone = true; }
};

thread_local thread_tapes this_thread GRADTAPE_STATIC_TLS;

// Whether an array of shape `from` is one of shape `to` broadcast: each of
// to's dimensions, aligned from the end, equals from's or is 1.
bool broadcasts_to(const shape_type& to, const shape_type& from)
{
    if (to.size() > from.size()) {
        return false;
    }
    const std::size_t added = from.size() - to.size();
    for (std::size_t i = 0; i < to.size(); ++i) {
        if (to[i] != from[added + i] && to[i] != 1) {
            return false;
        }
    }
    return true;
}

// Every backward rule's gradient passes here: one of its input's dtype, and
// of its input's shape once summed over what broadcasting added, so that no
// rule reduces broadcast dimensions itself and no wrong rule goes unnoticed.
void conform(const op_record& record, std::size_t input, any_tensor& gradient)
{
    std::visit(
        [&](auto& grad) {
            using gradient_type = std::decay_t<decltype(grad)>;
            if constexpr (!std::is_same_v<gradient_type, std::monostate>) {
                const tensor_description& expected = record.inputs()[input];
                const auto wrong = [&](const std::string& got) {
                    fail<shape_error>(record.op, record.site,
                                      "the backward rule returned " + got + " for input " + std::to_string(input + 1) +
                                          ", a " + expected.dtype + " tensor of shape " +
                                          format_shape(expected.shape));
                };
                constexpr const char* dtype = dtype_name<typename gradient_type::value_type>();
                if (std::string_view(dtype) != expected.dtype) {
                    wrong(std::string("a ") + dtype + " gradient");
                }
                if (grad.shape() == expected.shape) {
                    return;
                }
                if (!broadcasts_to(expected.shape, grad.shape())) {
                    wrong("a gradient of shape " + format_shape(grad.shape()));
                }
                grad = sum_to_shape(grad, expected.shape);
            }
        },
        gradient);
}

}  // namespace

void check_owner(const tape_state& tape, std::string_view op, const source_location& site)
{
    if (tape.owner != std::this_thread::get_id()) {
        fail<tape_error>(op, site, "a GradientTape can only be used on the thread that created it");
    }
}

std::vector<any_tensor> backward_pass(tape_state& tape, tensor_id target, any_tensor seed,
                                      std::span<const tensor_id> sources, bool release)
{
    // The pass's bookkeeping lives in one arena, on the stack for small tapes.
    std::array<std::byte, 4096> first_block;
    std::pmr::monotonic_buffer_resource arena(first_block.data(), first_block.size());
    std::pmr::unordered_map<tensor_id, any_tensor> gradients(&arena);
    gradients.emplace(target, std::move(seed));
    id_set kept;
    for (tensor_id source : sources) {
        kept.insert(source);
    }
    // The gradients that hooks have seen in this pass: a source computed by
    // an entry is seen there, not again when returned.
    id_set hooked;

    struct restore {
        tape_state& tape;
        bool previous = tape.computing_gradient;
        ~restore() { tape.computing_gradient = previous; }
    } restore_recording{tape};
    tape.computing_gradient = true;

    // A non-persistent pass frees each entry as it goes, so an exception half
    // way (a numeric check, a custom backward) leaves an incomplete tape: it
    // must refuse further questions rather than answer them wrongly.
    struct mark_broken_on_failure {
        tape_state& tape;
        bool release;
        int exceptions = std::uncaught_exceptions();
        ~mark_broken_on_failure()
        {
            if (release && std::uncaught_exceptions() > exceptions) {
                tape.answered = true;
                tape.broken_by = "an exception in its backward pass";
            }
        }
    } guard{tape, release};

    for (auto entry = tape.entries.rbegin(); entry != tape.entries.rend(); ++entry) {
        const op_record& record = *entry->record;
        auto found = gradients.find(record.output.id);
        if (found == gradients.end()) {
            continue;
        }
        any_tensor output_gradient = kept.contains(record.output.id) ? found->second : std::move(found->second);
        if (!kept.contains(record.output.id)) {
            gradients.erase(found);
        }
        if (gradient_hooks.load(std::memory_order_relaxed) != 0) [[unlikely]] {
            output_gradient = run_gradient_hooks(record.output.id, std::move(output_gradient));
            hooked.insert(record.output.id);
            if (kept.contains(record.output.id)) {
                gradients[record.output.id] = output_gradient;
            }
        }
        // Most ops have one or two inputs: no allocation for their gradients' slots.
        std::array<any_tensor, 4> few;
        std::vector<any_tensor> many(record.inputs().size() > few.size() ? record.inputs().size() : 0);
        const std::span<any_tensor> input_gradients =
            many.empty() ? std::span(few).first(record.inputs().size()) : std::span(many);
        {
            backward_attribution scope(record.op, &record.site);
            // An entry recorded outside layers leaves the layer in call as it is.
            std::optional<layer_in_call_scope> in_layer;
            if (record.layer) {
                in_layer.emplace(record.layer);
            }
            record.backward(output_gradient, input_mask(entry->watched_inputs), input_gradients);
            const input_mask needed(entry->watched_inputs);
            for (std::size_t i = 0; i < input_gradients.size(); ++i) {
                if (needed[i]) {
                    conform(record, i, input_gradients[i]);
                }
            }
            if (debugging_on()) {
                inspect_backward(record.op, record.site, input_gradients);
            }
        }
        const input_mask needed(entry->watched_inputs);
        for (std::size_t i = 0; i < record.inputs().size(); ++i) {
            if (needed[i] && !std::holds_alternative<std::monostate>(input_gradients[i])) {
                accumulate(gradients[record.inputs()[i].id], std::move(input_gradients[i]));
            }
        }
        if (release) {
            entry->record.reset();
        }
    }

    std::vector<any_tensor> result;
    result.reserve(sources.size());
    for (tensor_id source : sources) {
        auto found = gradients.find(source);
        if (found == gradients.end()) {
            result.emplace_back();
            continue;
        }
        if (gradient_hooks.load(std::memory_order_relaxed) != 0 && !hooked.contains(source)) [[unlikely]] {
            found->second = run_gradient_hooks(source, std::move(found->second));
            hooked.insert(source);
        }
        result.push_back(found->second);
    }
    return result;
}

recorder::recorder(std::span<const tape_input> inputs)
{
    if (tapes_gone) {
        return;
    }
    // One read of the thread-local: each is a call to its initialization guard.
    thread_tapes& here = this_thread;
    if (here.active.empty() || raised(here.pauses)) {
        return;
    }
    std::erase_if(here.active, [](const auto& tape) { return tape->orphaned.load(); });
    for (const auto& pointer : here.active) {
        tape_state* tape = pointer.get();
        if (!tape->records()) {
            continue;
        }
        std::uint64_t mask = 0;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            if (tape->watches(inputs[i])) {
                mask |= std::uint64_t{1} << std::min<std::size_t>(i, 63);
            }
        }
        if (mask != 0) {
            tapes_.push_back({tape, mask});
        }
    }
}

namespace {

tensor_description description_of(const tape_input& in)
{
    return {in.id, *in.shape, in.dtype};
}

}  // namespace

void op_record::set_inputs(std::span<const tape_input> inputs)
{
    input_count = inputs.size();
    if (inputs.size() <= inline_inputs.size()) {
        std::transform(inputs.begin(), inputs.end(), inline_inputs.begin(), description_of);
    } else {
        spilled_inputs.resize(inputs.size());
        std::transform(inputs.begin(), inputs.end(), spilled_inputs.begin(), description_of);
    }
}

void recorder::record(std::shared_ptr<op_record> entry, std::string_view op, const source_location& site,
                      std::span<const tape_input> inputs, const tape_input& output)
{
    entry->op = op;
    entry->site = user_site(site);
    if (layer_scopes_open.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        entry->layer = layer_in_call();
    }
    entry->set_inputs(inputs);
    entry->output = description_of(output);
    for (auto& [tape, mask] : tapes_) {
        tape->entries.push_back({entry, mask});
        tape->watched.insert(output.id);
    }
}

const source_location* backward_site()
{
    return this_thread.backward_site;
}

std::string_view backward_op()
{
    return this_thread.backward_op;
}

bool in_tangent_rule()
{
    return this_thread.in_tangent;
}

backward_attribution::backward_attribution(std::string_view op, const source_location* site, bool tangent)
{
    thread_tapes& here = this_thread;
    saved_site_ = here.backward_site;
    saved_op_ = here.backward_op;
    saved_tangent_ = here.in_tangent;
    here.backward_site = site;
    here.backward_op = op;
    here.in_tangent = tangent;
}

backward_attribution::~backward_attribution()
{
    thread_tapes& here = this_thread;
    here.backward_site = saved_site_;
    here.backward_op = saved_op_;
    here.in_tangent = saved_tangent_;
}

bool tapes_active()
{
    return !tapes_gone && !this_thread.active.empty();
}

bool tape_recording()
{
    return tapes_active() && !raised(this_thread.pauses);
}

bool recording_paused()
{
    return !tapes_gone && raised(this_thread.pauses);
}

}  // namespace detail

GradientTape::GradientTape(tape_options options) : state_(std::make_shared<detail::tape_state>())
{
    state_->options = options;
    if (!detail::tapes_gone) {
        detail::this_thread.active.push_back(state_);
    }
}

GradientTape::~GradientTape()
{
    if (state_->owner != std::this_thread::get_id()) {
        state_->orphaned = true;
        return;
    }
    if (detail::tapes_gone) {
        return;
    }
    auto& active = detail::this_thread.active;
    active.erase(std::remove(active.begin(), active.end(), state_), active.end());
}

template <dtype T>
void GradientTape::watch(const basic_tensor<T>& tensor, source_location site)
{
    detail::check_owner(*state_, "watch", site);
    state_->watched.insert(tensor.id());
}

void GradientTape::reset(source_location site)
{
    detail::check_owner(*state_, "reset", site);
    detail::check_not_computing(*state_, "reset", site);
    state_->entries.clear();
    state_->watched.clear();
    state_->accessed_variables.clear();
    state_->answered = false;
    state_->broken_by.clear();
}

namespace {

std::string describe(const detail::tensor_description& tensor)
{
    return detail::format_shape(tensor.shape) + " " + tensor.dtype;
}

}  // namespace

std::ostream& operator<<(std::ostream& out, const GradientTape& tape)
{
    const detail::tape_state& state = *tape.state_;
    if (state.owner != std::this_thread::get_id()) {
        throw tape_error("operator<<: a GradientTape can only be printed on the thread that created it");
    }
    // What the entries' backward rules keep alive, each array counted once
    // however many entries share it.
    std::vector<std::vector<std::pair<const void*, std::size_t>>> held(state.entries.size());
    std::unordered_set<const void*> counted;
    std::size_t held_bytes = 0;
    for (std::size_t i = 0; i < state.entries.size(); ++i) {
        if (const auto& record = state.entries[i].record) {
            record->held_arrays(held[i]);
            for (const auto& [data, bytes] : held[i]) {
                if (counted.insert(data).second) {
                    held_bytes += bytes;
                }
            }
        }
    }
    out << "GradientTape (" << (state.options.persistent ? "persistent" : "non-persistent") << ", "
        << state.entries.size() << (state.entries.size() == 1 ? " entry" : " entries") << ", "
        << state.watched.size() << " tensors tracked, " << detail::format_bytes(held_bytes) << " held"
        << (state.answered ? ", answered" : "") << ")";
    for (std::size_t i = 0; i < state.entries.size(); ++i) {
        const auto& record = state.entries[i].record;
        out << "\n  #" << i << ' ';
        if (!record) {
            out << "(released)";
            continue;
        }
        out << (record->layer ? *record->layer + ": " : "") << record->op << ' ';
        for (std::size_t j = 0; j < record->inputs().size(); ++j) {
            out << (j ? ", " : "") << describe(record->inputs()[j]);
        }
        std::size_t entry_bytes = 0;
        for (const auto& array : held[i]) {
            entry_bytes += array.second;
        }
        out << " -> " << describe(record->output) << "  " << detail::format_site(record->site) << "  holds "
            << detail::format_bytes(entry_bytes);
    }
    return out << '\n';
}

std::string GradientTape::to_dot(source_location site) const
{
    detail::check_owner(*state_, "to_dot", site);
    // Tensors are ellipses named by id, ops are boxes; an edge per use.
    std::ostringstream dot;
    dot << "digraph gradient_tape {\n  rankdir=LR;\n  node [fontname=\"monospace\", fontsize=10];\n";
    std::unordered_set<tensor_id> drawn;
    const auto tensor_node = [&](const detail::tensor_description& tensor) {
        if (drawn.insert(tensor.id).second) {
            dot << "  t" << tensor.id << " [shape=ellipse, label=\"" << describe(tensor) << "\"";
            if (state_->watched.contains(tensor.id)) {
                dot << ", style=filled, fillcolor=\"#dde8f6\"";
            }
            dot << "];\n";
        }
        return "t" + std::to_string(tensor.id);
    };
    for (std::size_t i = 0; i < state_->entries.size(); ++i) {
        const auto& record = state_->entries[i].record;
        if (!record) {
            continue;
        }
        const std::string op_node = "op" + std::to_string(i);
        const std::string file = record->site.file_name();
        dot << "  " << op_node << " [shape=box, label=\"" << record->op << "\\n"
            << file.substr(file.find_last_of('/') + 1) << ":" << record->site.line() << "\"];\n";
        for (const auto& input : record->inputs()) {
            dot << "  " << tensor_node(input) << " -> " << op_node << ";\n";
        }
        dot << "  " << op_node << " -> " << tensor_node(record->output) << ";\n";
    }
    dot << "}\n";
    return dot.str();
}

std::size_t GradientTape::size(source_location site) const
{
    detail::check_owner(*state_, "size", site);
    return state_->entries.size();
}

std::vector<std::pair<tensor_id, std::string>> GradientTape::accessed_variables(source_location site) const
{
    detail::check_owner(*state_, "accessed_variables", site);
    return state_->accessed_variables;
}

namespace detail {

void check_not_computing(const tape_state& tape, std::string_view op, const source_location& site)
{
    if (tape.computing_gradient) {
        fail<tape_error>(op, site,
                         "this tape is computing a gradient: a backward rule it runs cannot ask it for another "
                         "gradient or reset it (use a tape of its own)");
    }
}

void check_answerable(const tape_state& tape, std::string_view op, const source_location& site)
{
    check_owner(tape, op, site);
    check_not_computing(tape, op, site);
    if (tape.answered && !tape.broken_by.empty()) {
        fail<tape_error>(op, site,
                         "this non-persistent GradientTape was stopped by " + tape.broken_by +
                             " and has released part of what it recorded; record the computation again");
    }
    if (tape.answered) {
        fail<tape_error>(op, site,
                         "this non-persistent GradientTape has already computed a gradient; construct it with "
                         "{.persistent = true} to ask more than once");
    }
}

tensor_id watched_source(tape_state& tape, std::string_view op, const tape_input& input, std::size_t position,
                         const source_location& site)
{
    if (!tape.watches(input)) {
        if (input.variable && !input.variable->trainable) {
            fail<tape_error>(op, site,
                             "variable '" + input.variable->name +
                                 "' is not trainable, so the tape does not watch it; call tape.watch() on it "
                                 "before using it, or make it trainable");
        }
        const std::string what = input.variable ? "variable '" + input.variable->name + "'"
                                                : "source " + std::to_string(position) + " (shape " +
                                                      format_shape(*input.shape) + ")";
        fail<tape_error>(op, site,
                         what + " is not watched by this tape; call tape.watch() on it before using it" +
                             (input.variable ? " (or keep watch_accessed_variables on)" : ""));
    }
    return input.id;
}

void check_recorded(const tape_state& tape, std::string_view op, const tape_input& target,
                    const source_location& origin, const source_location& site)
{
    if (tape.watched.contains(target.id)) {
        return;
    }
    const std::string where = origin.line() == 0 ? "" : ", computed at " + format_site(origin) + ",";
    fail<tape_error>(op, site,
                     "the target (shape " + format_shape(*target.shape) + ")" + where +
                         " was not recorded by this tape: it was computed before the tape existed, or from "
                         "nothing the tape watches");
}

// A non-persistent tape answers once: afterwards it holds nothing.
void finish_answer(tape_state& tape)
{
    if (!tape.options.persistent) {
        tape.entries.clear();
        tape.watched.clear();
        tape.answered = true;
    }
}

}  // namespace detail

template <dtype T, dtype S>
std::vector<basic_tensor<S>> GradientTape::gradient_of(const basic_tensor<T>& target,
                                                       std::span<const basic_tensor<S>* const> sources,
                                                       const basic_tensor<T>& output_gradient,
                                                       unconnected_gradients unconnected, source_location site)
{
    using detail::fail;
    using detail::format_shape;
    detail::tape_state& tape = *state_;
    detail::check_answerable(tape, "gradient", site);
    if (output_gradient.defined() && output_gradient.shape() != target.shape()) {
        fail<shape_error>("gradient", site,
                          "output_gradient has shape " + format_shape(output_gradient.shape()) +
                              " but the target has shape " + format_shape(target.shape()));
    }
    if (!output_gradient.defined() && target.size() != 1) {
        fail<argument_error>("gradient", site,
                             "the target has shape " + format_shape(target.shape()) +
                                 "; pass output_gradient to differentiate a target of more than one element");
    }
    std::vector<tensor_id> source_ids;
    source_ids.reserve(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
        source_ids.push_back(
            detail::watched_source(tape, "gradient", detail::tape_input_of(*sources[i]), i, site));
    }
    if (unconnected == unconnected_gradients::none) {
        detail::check_recorded(tape, "gradient", detail::tape_input_of(target), detail::tensor_access::node(target)->origin, site);
    }

    basic_tensor<T> seed = output_gradient.defined() ? output_gradient : ones<T>(target.shape());
    std::vector<detail::any_tensor> gradients =
        detail::backward_pass(tape, target.id(), std::move(seed), source_ids, !tape.options.persistent);
    detail::finish_answer(tape);

    std::vector<basic_tensor<S>> result;
    result.reserve(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
        if (unconnected == unconnected_gradients::none && std::holds_alternative<std::monostate>(gradients[i])) {
            result.emplace_back();
        } else {
            result.push_back(detail::gradient_or_zeros<S>(gradients[i], sources[i]->shape()));
        }
    }
    return result;
}

recording_pause::recording_pause()
{
    if (!detail::tapes_gone) {
        count_ = detail::raise(detail::this_thread.pauses);
    }
}

recording_pause::~recording_pause()
{
    if (count_) {
        detail::lower(count_);
    }
}

recording_pause stop_recording()
{
    return {};
}

#define GRADTAPE_INSTANTIATE_WATCH(T) template void GradientTape::watch(const basic_tensor<T>&, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE_WATCH)
#define GRADTAPE_INSTANTIATE_GRADIENT(T, S)                                                                            \
    template std::vector<basic_tensor<S>> GradientTape::gradient_of(                                                 \
        const basic_tensor<T>&, std::span<const basic_tensor<S>* const>, const basic_tensor<T>&,                     \
        unconnected_gradients, source_location);
GRADTAPE_INSTANTIATE_GRADIENT(float, float)
GRADTAPE_INSTANTIATE_GRADIENT(float, double)
GRADTAPE_INSTANTIATE_GRADIENT(double, float)
GRADTAPE_INSTANTIATE_GRADIENT(double, double)

}  // namespace gradtape
