#include <gradtape/debug.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

#include "debug/debug_hooks.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/guard_count.hpp"
#include "kernels/arithmetic.hpp"
#include "kernels/isa.hpp"
#include "core/static_tls.hpp"
#include "core/tensor_access.hpp"

#include <xtensor/xmath.hpp>

namespace gradtape {
namespace detail {

namespace {

bool env_trace()
{
    const char* value = std::getenv("GRADTAPE_TRACE");
    return value && std::string(value) != "0" && std::string(value) != "";
}

std::atomic<bool> numerics_everywhere{false};
std::atomic<bool> trace_everywhere{env_trace()};
std::atomic<int> numeric_guards{0};
thread_local std::shared_ptr<guard_count> numeric_guards_here GRADTAPE_STATIC_TLS;

void update_debugging()
{
    debugging.store(numerics_everywhere || trace_everywhere || numeric_guards > 0, std::memory_order_relaxed);
}

bool numerics_checked()
{
    return numerics_everywhere.load(std::memory_order_relaxed) || raised(numeric_guards_here);
}

template <dtype T>
std::size_t count_non_finite(const xt::xarray<T>& values)
{
    if (all_finite(values.data(), values.size())) {
        return 0;
    }
    std::size_t bad = 0;
    for (T value : values) {
        bad += !std::isfinite(value);
    }
    return bad;
}

std::string describe(const tape_input& tensor)
{
    return format_shape(*tensor.shape) + " " + tensor.dtype;
}

}  // namespace

std::atomic<bool> debugging{trace_everywhere.load()};

template <dtype T>
void inspect_forward(std::string_view op, const source_location& site, std::span<const tape_input> inputs,
                     const basic_tensor<T>& result, run_by how)
{
    if (trace_everywhere.load(std::memory_order_relaxed)) {
        std::string line = "gradtape: " + layer_prefix() + std::string(op) + " ";
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            line += (i ? ", " : "") + describe(inputs[i]);
        }
        line += " -> " + describe(tape_input_of(result)) + " (" + format_bytes(result.size() * sizeof(T)) + ") at " +
                format_site(site);
        if (!backward_op().empty()) {
            line += (in_tangent_rule() ? " (tangent of " : " (in the backward pass of ") +
                    std::string(backward_op()) + ")";
        }
        line += how == run_by::tape ? " [recorded]\n" : how == run_by::no_tape ? " [not recorded]\n" : " [replayed]\n";
        std::cerr << line;
    }
    if (numerics_checked()) {
        if (const std::size_t bad = count_non_finite(tensor_access::value(result))) {
            const std::string counted = std::to_string(bad) + " of " + std::to_string(result.size()) +
                                        " elements NaN or Inf (shape " + format_shape(result.shape()) + ")";
            if (const std::string_view forward = backward_op(); !forward.empty()) {
                fail<numeric_error>(forward, site,
                                    std::string(in_tangent_rule() ? "computing its tangent, " : "computing its gradient, ") +
                                        std::string(op) + " gave a value with " + counted);
            }
            fail<numeric_error>(op, site, "the result has " + counted);
        }
    }
}

void trace_note(const std::string& line)
{
    if (trace_everywhere.load(std::memory_order_relaxed)) {
        std::cerr << "gradtape: " + line + "\n";
    }
}

void inspect_backward(std::string_view op, const source_location& site, std::span<const any_tensor> gradients)
{
    if (!numerics_checked()) {
        return;
    }
    for (std::size_t i = 0; i < gradients.size(); ++i) {
        std::visit(
            [&](const auto& gradient) {
                if constexpr (!std::is_same_v<std::decay_t<decltype(gradient)>, std::monostate>) {
                    if (const std::size_t bad = count_non_finite(tensor_access::value(gradient))) {
                        fail<numeric_error>(op, site,
                                            "its backward rule gave input " + std::to_string(i) +
                                                " a gradient with " + std::to_string(bad) + " of " +
                                                std::to_string(gradient.size()) + " elements NaN or Inf");
                    }
                }
            },
            gradients[i]);
    }
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void inspect_forward(std::string_view, const source_location&, std::span<const tape_input>,       \
                                  const basic_tensor<T>&, run_by);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace detail

void set_check_numerics(bool enabled)
{
    detail::numerics_everywhere = enabled;
    detail::update_debugging();
}

check_numerics::check_numerics() : count_(detail::raise(detail::numeric_guards_here))
{
    ++detail::numeric_guards;
    detail::update_debugging();
}

check_numerics::~check_numerics()
{
    detail::lower(count_);
    --detail::numeric_guards;
    detail::update_debugging();
}

void set_trace(bool enabled)
{
    detail::trace_everywhere = enabled;
    detail::update_debugging();
}

std::string_view simd_instruction_set()
{
    return detail::isa_name(detail::chosen_isa());
}

}  // namespace gradtape
