// Gradient hooks: a registry by tensor id, which the reverse pass consults
// (tape.cpp) only while a hook is registered somewhere, and the gradient
// monitor built on it.
#include <gradtape/hooks.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <gradtape/layers.hpp>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tape_core.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {
namespace detail {

std::atomic<int> gradient_hooks{0};

struct hook_entry {
    tensor_id id = 0;
    std::uint64_t order = 0;
    source_location site;
    std::function<any_tensor(const any_tensor&)> call;
    bool registered = true;
};

namespace {

struct hook_registry {
    std::mutex mutex;
    std::unordered_multimap<tensor_id, std::shared_ptr<hook_entry>> hooks;
    // The next registration's place: hooks on one tensor run in that order.
    std::uint64_t next = 0;
};

hook_registry& registry()
{
    static hook_registry instance;
    return instance;
}

void unregister(hook_entry& entry)
{
    hook_registry& hooks = registry();
    const std::lock_guard lock(hooks.mutex);
    if (!entry.registered) {
        return;
    }
    entry.registered = false;
    const auto [first, last] = hooks.hooks.equal_range(entry.id);
    for (auto it = first; it != last; ++it) {
        if (it->second.get() == &entry) {
            hooks.hooks.erase(it);
            break;
        }
    }
    gradient_hooks.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace

any_tensor run_gradient_hooks(tensor_id id, any_tensor gradient)
{
    std::vector<std::shared_ptr<hook_entry>> found;
    {
        hook_registry& hooks = registry();
        const std::lock_guard lock(hooks.mutex);
        const auto [first, last] = hooks.hooks.equal_range(id);
        for (auto it = first; it != last; ++it) {
            found.push_back(it->second);
        }
    }
    std::ranges::sort(found, {}, &hook_entry::order);
    if (!found.empty() && active_capture()) {
        fail<capture_error>("register_hook", found.front()->site,
                            "a gradient hook registered here runs in the backward pass, which a replay repeats "
                            "without its hooks: remove the hook, or run the captured function eagerly");
    }
    for (const auto& hook : found) {
        gradient = hook->call(gradient);
    }
    return gradient;
}

}  // namespace detail

hook_handle& hook_handle::operator=(hook_handle&& other) noexcept
{
    if (this != &other) {
        remove();
        entry_ = std::move(other.entry_);
    }
    return *this;
}

hook_handle::~hook_handle()
{
    remove();
}

void hook_handle::remove()
{
    if (entry_) {
        detail::unregister(*entry_);
        entry_.reset();
    }
}

template <dtype T>
hook_handle register_hook(const basic_tensor<T>& tensor, const std::type_identity_t<gradient_hook<T>>& hook,
                          source_location site)
{
    if (!tensor.defined()) {
        detail::fail<argument_error>("register_hook", site, "the tensor is undefined");
    }
    if (!hook) {
        detail::fail<argument_error>("register_hook", site, "the hook is empty");
    }
    const source_location computed = detail::tensor_access::node(tensor)->origin;
    auto entry = std::make_shared<detail::hook_entry>();
    entry->id = tensor.id();
    entry->site = site;
    entry->call = [hook, site, computed](const detail::any_tensor& given) -> detail::any_tensor {
        const auto& gradient = std::get<basic_tensor<T>>(given);
        basic_tensor<T> replaced = hook(gradient);
        if (!replaced.defined()) {
            return given;
        }
        if (replaced.shape() != gradient.shape()) {
            const std::string where = computed.line() == 0 ? "" : " (computed at " + detail::format_site(computed) + ")";
            detail::fail<shape_error>("register_hook", site,
                                      "the hook returned a gradient of shape " + detail::format_shape(replaced.shape()) +
                                          " for a tensor of shape " + detail::format_shape(gradient.shape()) + where);
        }
        return replaced;
    };
    detail::hook_registry& hooks = detail::registry();
    {
        const std::lock_guard lock(hooks.mutex);
        entry->order = hooks.next++;
        hooks.hooks.emplace(entry->id, entry);
    }
    detail::gradient_hooks.fetch_add(1, std::memory_order_relaxed);
    return hook_handle(std::move(entry));
}

template <dtype T>
struct basic_gradient_monitor<T>::state {
    std::mutex mutex;
    std::ofstream csv;
    std::vector<std::string> names;
    std::vector<std::vector<double>> norms;
};

namespace {

template <dtype T>
std::vector<basic_variable<T>> trainable_of(const std::vector<basic_variable<T>>& variables)
{
    std::vector<basic_variable<T>> trainable;
    std::ranges::copy_if(variables, std::back_inserter(trainable), [](const auto& v) { return v.trainable(); });
    return trainable;
}

}  // namespace

template <dtype T>
basic_gradient_monitor<T>::basic_gradient_monitor(const basic_layer<T>& model, const std::filesystem::path& csv,
                                                  source_location site)
    : basic_gradient_monitor(model.trainable_variables(), csv, site)
{
}

template <dtype T>
basic_gradient_monitor<T>::basic_gradient_monitor(const std::vector<basic_variable<T>>& variables,
                                                  const std::filesystem::path& csv, source_location site)
    : state_(std::make_shared<state>())
{
    const std::vector<basic_variable<T>> watched = trainable_of(variables);
    if (watched.empty()) {
        detail::fail<argument_error>("gradient_monitor", site, "has no trainable variable to watch");
    }
    state_->csv.open(csv, std::ios::trunc);
    if (!state_->csv) {
        detail::fail<argument_error>("gradient_monitor", site, "cannot open '" + csv.string() + "' for writing");
    }
    state_->csv << "step,variable,gradient_norm\n";
    state_->norms.resize(watched.size());
    for (std::size_t i = 0; i < watched.size(); ++i) {
        state_->names.push_back(watched[i].name());
        const std::weak_ptr<state> weak = state_;
        hooks_.push_back(register_hook<T>(
            watched[i],
            [weak, i](const basic_tensor<T>& gradient) {
                if (const auto shared = weak.lock()) {
                    const xt::xarray<T>& values = detail::tensor_access::value(gradient);
                    double sum = 0;
                    for (T value : values) {
                        sum += double(value) * double(value);
                    }
                    const std::lock_guard lock(shared->mutex);
                    auto& series = shared->norms[i];
                    series.push_back(std::sqrt(sum));
                    shared->csv << series.size() - 1 << ',' << shared->names[i] << ',' << series.back() << '\n';
                    shared->csv.flush();
                }
                return basic_tensor<T>{};
            },
            site));
    }
}

template <dtype T>
void basic_gradient_monitor<T>::plot(const std::filesystem::path& png, source_location site) const
{
    if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
        detail::fail<argument_error>("gradient_monitor::plot", site,
                                     "needs gnuplot (Debian's gnuplot-nox) to draw '" + png.string() + "'");
    }
    std::filesystem::path data = png;
    data.replace_extension(".dat");
    std::filesystem::path script = png;
    script.replace_extension(".gnuplot");
    {
        const std::lock_guard lock(state_->mutex);
        std::ofstream out(data);
        for (std::size_t i = 0; i < state_->names.size(); ++i) {
            out << "# " << state_->names[i] << '\n';
            for (std::size_t step = 0; step < state_->norms[i].size(); ++step) {
                out << step << ' ' << state_->norms[i][step] << '\n';
            }
            out << "\n\n";
        }
        std::ofstream commands(script);
        commands << "set terminal pngcairo size 900,500\nset output '" << png.string()
                 << "'\nset logscale y\nset xlabel 'step'\nset ylabel 'gradient L2 norm'\nset key outside\nplot ";
        for (std::size_t i = 0; i < state_->names.size(); ++i) {
            commands << (i ? ", " : "") << "'" << data.string() << "' index " << i << " using 1:2 with lines title '"
                     << state_->names[i] << "'";
        }
        commands << '\n';
    }
    if (std::system(("gnuplot '" + script.string() + "'").c_str()) != 0) {
        detail::fail<argument_error>("gradient_monitor::plot", site, "gnuplot failed on '" + script.string() + "'");
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template hook_handle register_hook(const basic_tensor<T>&, const gradient_hook<T>&, source_location);            \
    template class basic_gradient_monitor<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
