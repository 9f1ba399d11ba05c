// Forward mode: this thread's ForwardAccumulators, the tangents they hold, and
// what is built on them (jvp, hvp, hessian). Ops reach it through
// observe_op() once recorded; their tangent rules are in ops/op.hpp (Note
// [Tangent rules]).
#include <gradtape/forward.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <gradtape/ops.hpp>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/forward_core.hpp"
#include "core/static_tls.hpp"
#include "core/tensor_access.hpp"
#include "debug/debug_hooks.hpp"

namespace gradtape {
namespace detail {

std::atomic<int> forward_observers{0};

namespace {

tensor_id id_of(const any_tensor& tensor)
{
    return std::visit(
        [](const auto& t) -> tensor_id {
            if constexpr (std::is_same_v<std::decay_t<decltype(t)>, std::monostate>) {
                return 0;
            } else {
                return t.id();
            }
        },
        tensor);
}

std::weak_ptr<const void> node_of(const any_tensor& tensor)
{
    return std::visit(
        [](const auto& t) -> std::weak_ptr<const void> {
            if constexpr (std::is_same_v<std::decay_t<decltype(t)>, std::monostate>) {
                return {};
            } else {
                return tensor_access::node(t);
            }
        },
        tensor);
}

}  // namespace

// An accumulator's tangents by the id of their value. Each holds its value
// weakly: entries whose value is gone are swept whenever the map has doubled
// since the last sweep, so that it stays within twice what is alive.
struct accumulator_state {
    struct held {
        std::weak_ptr<const void> value;
        any_tensor tangent;
    };
    std::unordered_map<tensor_id, held> tangents;
    std::size_t sweep_at = 64;
    std::thread::id owner = std::this_thread::get_id();
    // Set when the accumulator is destroyed on another thread than its
    // owner: the owner's thread then drops it (as an orphaned tape).
    std::atomic<bool> orphaned{false};

    const any_tensor* find(tensor_id id) const
    {
        const auto found = tangents.find(id);
        return found == tangents.end() ? nullptr : &found->second.tangent;
    }

    void store(const any_tensor& value, any_tensor tangent)
    {
        tangents.insert_or_assign(id_of(value), held{node_of(value), std::move(tangent)});
        if (tangents.size() >= sweep_at) {
            std::erase_if(tangents, [](const auto& entry) { return entry.second.value.expired(); });
            sweep_at = std::max<std::size_t>(64, 2 * tangents.size());
        }
    }
};

namespace {

thread_local bool accumulators_gone GRADTAPE_STATIC_TLS = false;

struct thread_accumulators {
    // In the order made: while the k-th computes a tangent, only those before
    // it observe the ops of its rule, so that an outer accumulator
    // differentiates an inner one's tangents and not the reverse.
    std::vector<std::shared_ptr<accumulator_state>> open;
    std::size_t observing = SIZE_MAX;
    std::vector<any_tensor>* variable_reads = nullptr;

    thread_accumulators() = default;
    thread_accumulators(const thread_accumulators&) = delete;
    thread_accumulators& operator=(const thread_accumulators&) = delete;
    ~thread_accumulators() { accumulators_gone = true; }
};

thread_local thread_accumulators forward_thread GRADTAPE_STATIC_TLS;

std::size_t observing_count()
{
    if (accumulators_gone || recording_paused()) {
        return 0;
    }
    return std::min(forward_thread.open.size(), forward_thread.observing);
}

}  // namespace

bool accumulating()
{
    return forward_observers.load(std::memory_order_relaxed) != 0 && observing_count() != 0;
}

variable_search::variable_search(std::vector<any_tensor>& reads) : saved_(forward_thread.variable_reads)
{
    forward_thread.variable_reads = &reads;
    forward_observers.fetch_add(1, std::memory_order_relaxed);
}

variable_search::~variable_search()
{
    forward_thread.variable_reads = saved_;
    forward_observers.fetch_sub(1, std::memory_order_relaxed);
}

namespace {

void note_variable_reads(std::span<const any_tensor> inputs, std::vector<any_tensor>& reads)
{
    for (const any_tensor& input : inputs) {
        const bool of_variable = std::visit(
            [](const auto& t) {
                if constexpr (std::is_same_v<std::decay_t<decltype(t)>, std::monostate>) {
                    return false;
                } else {
                    return tensor_access::node(t)->variable != nullptr;
                }
            },
            input);
        const tensor_id id = id_of(input);
        if (of_variable && std::ranges::none_of(reads, [id](const any_tensor& read) { return id_of(read) == id; })) {
            reads.push_back(input);
        }
    }
}

}  // namespace

void observe_op(std::string_view op, const source_location& site, std::span<const any_tensor> inputs,
                const any_tensor& output, const tangent_rule& rule)
{
    if (forward_thread.variable_reads && !accumulators_gone) {
        note_variable_reads(inputs, *forward_thread.variable_reads);
    }
    if (!rule || observing_count() == 0) {
        return;
    }
    if (forward_thread.observing == SIZE_MAX) {
        std::erase_if(forward_thread.open, [](const auto& open) { return open->orphaned.load(); });
    }
    const std::size_t count = observing_count();
    std::vector<any_tensor> tangents;
    for (std::size_t k = 0; k < count; ++k) {
        // Shared, so that a rule that makes or drops an accumulator cannot free it.
        const std::shared_ptr<accumulator_state> accumulator = forward_thread.open[k];
        if (accumulator->orphaned.load()) {
            continue;
        }
        tangents.assign(inputs.size(), any_tensor{});
        bool any = false;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            if (const any_tensor* tangent = accumulator->find(id_of(inputs[i]))) {
                tangents[i] = *tangent;
                any = true;
            }
        }
        if (!any) {
            continue;
        }
        if (active_capture()) {
            fail<capture_error>(op, site,
                                "a ForwardAccumulator computes its tangent, which a replay would not update: "
                                "compute tangents outside the captured function");
        }
        const std::size_t saved = forward_thread.observing;
        struct restore {
            std::size_t value;
            ~restore() { forward_thread.observing = value; }
        } restore_observing{saved};
        forward_thread.observing = k;
        // An op inside a rule has the library's site: the user's is the enclosing rule's.
        const source_location attributed = user_site(site);
        const backward_attribution in_tangent(op, &attributed, true);
        any_tensor tangent = rule(tangents);
        if (!std::holds_alternative<std::monostate>(tangent)) {
            accumulator->store(output, std::move(tangent));
        }
    }
}

}  // namespace detail

template <dtype T>
basic_forward_accumulator<T>::basic_forward_accumulator(const std::vector<basic_tensor<T>>& primals,
                                                        const std::vector<basic_tensor<T>>& tangents,
                                                        source_location site)
    : state_(std::make_shared<detail::accumulator_state>())
{
    using detail::fail;
    using detail::format_shape;
    constexpr std::string_view op = "ForwardAccumulator";
    if (primals.size() != tangents.size()) {
        fail<argument_error>(op, site,
                             "got " + std::to_string(primals.size()) + " primals and " +
                                 std::to_string(tangents.size()) + " tangents: give one tangent per primal");
    }
    for (std::size_t i = 0; i < primals.size(); ++i) {
        const std::string which = "primal " + std::to_string(i + 1);
        if (!primals[i].defined() || !tangents[i].defined()) {
            fail<argument_error>(op, site, which + " or its tangent is undefined");
        }
        if (primals[i].shape() != tangents[i].shape()) {
            fail<shape_error>(op, site,
                              which + " has shape " + format_shape(primals[i].shape()) + " but its tangent has " +
                                  format_shape(tangents[i].shape()));
        }
        if (state_->find(primals[i].id())) {
            fail<argument_error>(op, site, which + " was given before: give each primal once");
        }
        state_->store(primals[i], tangents[i]);
    }
    if (detail::accumulators_gone) {
        state_->orphaned = true;
        return;
    }
    detail::forward_thread.open.push_back(state_);
    detail::forward_observers.fetch_add(1, std::memory_order_relaxed);
}

template <dtype T>
basic_forward_accumulator<T>::~basic_forward_accumulator()
{
    if (state_->owner != std::this_thread::get_id()) {
        if (!state_->orphaned.exchange(true)) {
            detail::forward_observers.fetch_sub(1, std::memory_order_relaxed);
        }
        return;
    }
    if (detail::accumulators_gone) {
        return;
    }
    auto& open = detail::forward_thread.open;
    if (const auto found = std::find(open.begin(), open.end(), state_); found != open.end()) {
        open.erase(found);
        detail::forward_observers.fetch_sub(1, std::memory_order_relaxed);
    }
}

template <dtype T>
basic_tensor<T> basic_forward_accumulator<T>::jvp(const basic_tensor<T>& value, unconnected_gradients unconnected,
                                                  source_location site) const
{
    if (state_->owner != std::this_thread::get_id()) {
        detail::fail<tape_error>("jvp", site,
                                 "a ForwardAccumulator can only be used on the thread that created it");
    }
    if (!value.defined()) {
        detail::fail<argument_error>("jvp", site, "the value is undefined");
    }
    if (const detail::any_tensor* tangent = state_->find(value.id())) {
        if (const auto* typed = std::get_if<basic_tensor<T>>(tangent)) {
            return *typed;
        }
    }
    return unconnected == unconnected_gradients::zero ? zeros<T>(value.shape()) : basic_tensor<T>{};
}

namespace {

template <dtype T>
void check_scalar(std::string_view op, const basic_tensor<T>& y, const source_location& site)
{
    if (!y.defined()) {
        detail::fail<argument_error>(op, site, "the function returned an undefined tensor");
    }
    if (y.size() != 1) {
        detail::fail<shape_error>(op, site,
                                  "needs a function with a scalar value, got one of shape " +
                                      detail::format_shape(y.shape()));
    }
}

template <dtype T>
void check_direction(std::string_view op, const basic_tensor<T>& x, const basic_tensor<T>& v, std::size_t position,
                     const source_location& site)
{
    if (!v.defined() || v.shape() != x.shape()) {
        detail::fail<shape_error>(op, site,
                                  "vector " + std::to_string(position + 1) + " has shape " +
                                      (v.defined() ? detail::format_shape(v.shape()) : std::string("undefined")) +
                                      ", its point has " + detail::format_shape(x.shape()));
    }
}

// H v for each point of a scalar `value()` of them, in the order `mode` names.
template <dtype T>
std::vector<basic_tensor<T>> hessian_vector_products(const std::function<basic_tensor<T>()>& value,
                                                     const std::vector<basic_tensor<T>>& points,
                                                     const std::vector<basic_tensor<T>>& vectors, hvp_mode mode,
                                                     const source_location& site)
{
    constexpr std::string_view op = "hvp";
    if (points.size() != vectors.size()) {
        detail::fail<argument_error>(op, site,
                                     "got " + std::to_string(points.size()) + " points and " +
                                         std::to_string(vectors.size()) + " vectors: give one vector per point");
    }
    for (std::size_t i = 0; i < points.size(); ++i) {
        check_direction(op, points[i], vectors[i], i, site);
    }
    const auto zero = unconnected_gradients::zero;
    std::vector<basic_tensor<T>> products;
    switch (mode) {
    case hvp_mode::forward_over_reverse: {
        basic_forward_accumulator<T> accumulator(points, vectors, site);
        GradientTape tape;
        for (const auto& point : points) {
            tape.watch(point);
        }
        const basic_tensor<T> y = value();
        check_scalar(op, y, site);
        for (const auto& gradient : tape.gradient(y, points, {}, zero, site)) {
            products.push_back(accumulator.jvp(gradient, zero, site));
        }
        break;
    }
    case hvp_mode::reverse_over_forward: {
        GradientTape tape;
        for (const auto& point : points) {
            tape.watch(point);
        }
        basic_tensor<T> slope;
        {
            basic_forward_accumulator<T> accumulator(points, vectors, site);
            const basic_tensor<T> y = value();
            check_scalar(op, y, site);
            slope = accumulator.jvp(y, zero, site);
        }
        products = tape.gradient(slope, points, {}, zero, site);
        break;
    }
    case hvp_mode::reverse_over_reverse: {
        GradientTape outer;
        for (const auto& point : points) {
            outer.watch(point);
        }
        basic_tensor<T> pairing = zeros<T>({});
        {
            GradientTape inner;
            for (const auto& point : points) {
                inner.watch(point);
            }
            const basic_tensor<T> y = value();
            check_scalar(op, y, site);
            const auto gradients = inner.gradient(y, points, {}, zero, site);
            for (std::size_t i = 0; i < gradients.size(); ++i) {
                pairing = pairing + reduce_sum(gradients[i] * vectors[i]);
            }
        }
        products = outer.gradient(pairing, points, {}, zero, site);
        break;
    }
    }
    return products;
}

}  // namespace

template <dtype T>
std::pair<basic_tensor<T>, basic_tensor<T>> jvp(const std::type_identity_t<tensor_function<T>>& f,
                                                const basic_tensor<T>& x, const basic_tensor<T>& v, source_location site)
{
    check_direction("jvp", x, v, 0, site);
    basic_forward_accumulator<T> accumulator({x}, {v}, site);
    basic_tensor<T> y = f(x);
    if (!y.defined()) {
        detail::fail<argument_error>("jvp", site, "the function returned an undefined tensor");
    }
    basic_tensor<T> tangent = accumulator.jvp(y, unconnected_gradients::zero, site);
    return {std::move(y), std::move(tangent)};
}

template <dtype T>
basic_tensor<T> hvp(const std::type_identity_t<tensor_function<T>>& f, const basic_tensor<T>& x,
                    const basic_tensor<T>& v, hvp_mode mode, source_location site)
{
    return hessian_vector_products<T>([&] { return f(x); }, {x}, {v}, mode, site).front();
}

template <dtype T>
std::vector<basic_tensor<T>> hvp(const std::type_identity_t<loss_function<T>>& loss_fn,
                                 const std::vector<basic_variable<T>>& variables,
                                 const std::vector<basic_tensor<T>>& vectors, hvp_mode mode, source_location site)
{
    return hessian_vector_products<T>(loss_fn, std::vector<basic_tensor<T>>(variables.begin(), variables.end()),
                                      vectors, mode, site);
}

template <dtype T>
basic_tensor<T> hessian(const std::type_identity_t<tensor_function<T>>& f, const basic_tensor<T>& x,
                        source_location site)
{
    std::vector<basic_tensor<T>> rows;
    rows.reserve(x.size());
    xt::xarray<T> basis = xt::zeros<T>(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) {
        basis.flat(i) = T(1);
        rows.push_back(hvp<T>(f, x, basic_tensor<T>(basis), hvp_mode::forward_over_reverse, site));
        basis.flat(i) = T(0);
    }
    shape_type shape = x.shape();
    shape.insert(shape.end(), x.shape().begin(), x.shape().end());
    std::vector<std::ptrdiff_t> dims(shape.begin(), shape.end());
    return reshape(stack(rows, 0, site), dims, site);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template class basic_forward_accumulator<T>;                                                                       \
    template std::pair<basic_tensor<T>, basic_tensor<T>> jvp(const tensor_function<T>&, const basic_tensor<T>&,        \
                                                             const basic_tensor<T>&, source_location);                 \
    template basic_tensor<T> hvp(const tensor_function<T>&, const basic_tensor<T>&, const basic_tensor<T>&, hvp_mode,  \
                                 source_location);                                                                     \
    template std::vector<basic_tensor<T>> hvp(const loss_function<T>&, const std::vector<basic_variable<T>>&,          \
                                              const std::vector<basic_tensor<T>>&, hvp_mode, source_location);         \
    template basic_tensor<T> hessian(const tensor_function<T>&, const basic_tensor<T>&, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
