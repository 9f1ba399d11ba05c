// The tape: a thread-local stack of recording tapes, their entries, and the
// reverse pass. Entries hold ids and backward rules; values live only in the
// captures of the rules that need them.
#include <gradtape/tape.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "diagnostics.hpp"
#include "tape_core.hpp"

namespace gradtape {
namespace detail {

struct op_record {
    std::string_view op;
    std::source_location site;
    std::vector<tensor_id> inputs;
    tensor_id output;
    backward_function backward;
};

struct tape_entry {
    // Shared by every tape that recorded the op; released by a non-persistent
    // tape as soon as its backward pass has used it.
    std::shared_ptr<op_record> record;
    std::uint64_t watched_inputs;
};

struct tape_state {
    tape_options options;
    std::thread::id owner = std::this_thread::get_id();
    std::unordered_set<tensor_id> watched;
    std::vector<tape_entry> entries;
    bool computing_gradient = false;
    bool answered = false;

    bool records() const { return !computing_gradient && !answered; }

    bool watches(const tape_input& input)
    {
        if (watched.contains(input.id)) {
            return true;
        }
        if (input.variable && input.variable->trainable && options.watch_accessed_variables) {
            watched.insert(input.id);
            return true;
        }
        return false;
    }
};

namespace {

struct thread_tapes {
    std::vector<tape_state*> active;
    int pauses = 0;
    const std::source_location* backward_site = nullptr;
};

thread_local thread_tapes this_thread;

class backward_site_scope {
public:
    explicit backward_site_scope(const std::source_location* site) : saved_(this_thread.backward_site)
    {
        this_thread.backward_site = site;
    }
    ~backward_site_scope() { this_thread.backward_site = saved_; }
    backward_site_scope(const backward_site_scope&) = delete;
    backward_site_scope& operator=(const backward_site_scope&) = delete;

private:
    const std::source_location* saved_;
};

}  // namespace

void check_owner(const tape_state& tape, std::string_view op, const std::source_location& site)
{
    if (tape.owner != std::this_thread::get_id()) {
        fail<tape_error>(op, site, "a GradientTape can only be used on the thread that created it");
    }
}

std::vector<any_tensor> backward_pass(tape_state& tape, tensor_id target, any_tensor seed,
                                      std::span<const tensor_id> sources, bool release)
{
    std::unordered_map<tensor_id, any_tensor> gradients;
    gradients.emplace(target, std::move(seed));
    const std::unordered_set<tensor_id> kept(sources.begin(), sources.end());

    tape.computing_gradient = true;
    struct restore {
        tape_state& tape;
        ~restore() { tape.computing_gradient = false; }
    } restore_recording{tape};

    for (auto entry = tape.entries.rbegin(); entry != tape.entries.rend(); ++entry) {
        const op_record& record = *entry->record;
        auto found = gradients.find(record.output);
        if (found == gradients.end()) {
            continue;
        }
        any_tensor output_gradient = kept.contains(record.output) ? found->second : std::move(found->second);
        if (!kept.contains(record.output)) {
            gradients.erase(found);
        }
        std::vector<any_tensor> input_gradients(record.inputs.size());
        {
            backward_site_scope scope(&record.site);
            record.backward(output_gradient, input_mask(entry->watched_inputs), input_gradients);
        }
        const input_mask needed(entry->watched_inputs);
        for (std::size_t i = 0; i < record.inputs.size(); ++i) {
            if (needed[i] && !std::holds_alternative<std::monostate>(input_gradients[i])) {
                accumulate(gradients[record.inputs[i]], std::move(input_gradients[i]));
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
        result.push_back(found == gradients.end() ? any_tensor{} : found->second);
    }
    return result;
}

recorder::recorder(std::span<const tape_input> inputs)
{
    if (this_thread.active.empty() || this_thread.pauses > 0) {
        return;
    }
    for (tape_state* tape : this_thread.active) {
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

void recorder::record(std::string_view op, const std::source_location& site, std::span<const tape_input> inputs,
                      tensor_id output, backward_function backward)
{
    std::vector<tensor_id> input_ids(inputs.size());
    std::transform(inputs.begin(), inputs.end(), input_ids.begin(), [](const tape_input& in) { return in.id; });
    auto shared = std::make_shared<op_record>(
        op_record{op, user_site(site), std::move(input_ids), output, std::move(backward)});
    for (auto& [tape, mask] : tapes_) {
        tape->entries.push_back({shared, mask});
        tape->watched.insert(output);
    }
}

const std::source_location* backward_site()
{
    return this_thread.backward_site;
}

}  // namespace detail

GradientTape::GradientTape(tape_options options) : state_(std::make_unique<detail::tape_state>())
{
    state_->options = options;
    detail::this_thread.active.push_back(state_.get());
}

GradientTape::~GradientTape()
{
    auto& active = detail::this_thread.active;
    active.erase(std::remove(active.begin(), active.end(), state_.get()), active.end());
}

template <dtype T>
void GradientTape::watch(const basic_tensor<T>& tensor, std::source_location site)
{
    detail::check_owner(*state_, "watch", site);
    state_->watched.insert(tensor.id());
}

void GradientTape::reset()
{
    state_->entries.clear();
    state_->watched.clear();
    state_->answered = false;
}

std::size_t GradientTape::size() const
{
    return state_->entries.size();
}

namespace detail {

void check_answerable(const tape_state& tape, const std::source_location& site)
{
    check_owner(tape, "gradient", site);
    if (tape.answered) {
        fail<tape_error>("gradient", site,
                         "this non-persistent GradientTape has already computed a gradient; construct it with "
                         "{.persistent = true} to ask more than once");
    }
}

tensor_id watched_source(tape_state& tape, const tape_input& input, const shape_type& shape, std::size_t position,
                         const std::source_location& site)
{
    if (!tape.watches(input)) {
        const std::string what = input.variable ? "variable '" + input.variable->name + "'"
                                                : "source " + std::to_string(position) + " (shape " +
                                                      format_shape(shape) + ")";
        fail<tape_error>("gradient", site,
                         what + " is not watched by this tape; call tape.watch() on it before using it" +
                             (input.variable ? " (or keep watch_accessed_variables on)" : ""));
    }
    return input.id;
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
                                                       std::source_location site)
{
    using detail::fail;
    using detail::format_shape;
    detail::tape_state& tape = *state_;
    detail::check_answerable(tape, site);
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
            detail::watched_source(tape, detail::tape_input_of(*sources[i]), sources[i]->shape(), i, site));
    }

    basic_tensor<T> seed = output_gradient.defined() ? output_gradient : ones<T>(target.shape());
    std::vector<detail::any_tensor> gradients =
        detail::backward_pass(tape, target.id(), std::move(seed), source_ids, !tape.options.persistent);
    detail::finish_answer(tape);

    std::vector<basic_tensor<S>> result;
    result.reserve(sources.size());
    for (std::size_t i = 0; i < sources.size(); ++i) {
        result.push_back(detail::gradient_or_zeros<S>(gradients[i], sources[i]->shape()));
    }
    return result;
}

recording_pause::recording_pause()
{
    ++detail::this_thread.pauses;
}

recording_pause::~recording_pause()
{
    --detail::this_thread.pauses;
}

recording_pause stop_recording()
{
    return {};
}

template void GradientTape::watch(const basic_tensor<float>&, std::source_location);
template void GradientTape::watch(const basic_tensor<double>&, std::source_location);
template std::vector<basic_tensor<float>> GradientTape::gradient_of(const basic_tensor<float>&,
                                                                    std::span<const basic_tensor<float>* const>,
                                                                    const basic_tensor<float>&, std::source_location);
template std::vector<basic_tensor<double>> GradientTape::gradient_of(const basic_tensor<float>&,
                                                                     std::span<const basic_tensor<double>* const>,
                                                                     const basic_tensor<float>&, std::source_location);
template std::vector<basic_tensor<float>> GradientTape::gradient_of(const basic_tensor<double>&,
                                                                    std::span<const basic_tensor<float>* const>,
                                                                    const basic_tensor<double>&, std::source_location);
template std::vector<basic_tensor<double>> GradientTape::gradient_of(const basic_tensor<double>&,
                                                                     std::span<const basic_tensor<double>* const>,
                                                                     const basic_tensor<double>&,
                                                                     std::source_location);

}  // namespace gradtape
