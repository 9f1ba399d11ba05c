#include "core/diagnostics.hpp"

#include <array>
#include <cstdio>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include <gradtape/memory.hpp>

#include "core/tape_core.hpp"

namespace gradtape::detail {

namespace {

thread_local layer_path current_layer;

}  // namespace

const layer_path& layer_in_call() noexcept
{
    return current_layer;
}

std::atomic<int> layer_scopes_open{0};

layer_in_call_scope::layer_in_call_scope(const layer_path& path) : saved_(std::exchange(current_layer, path))
{
    layer_scopes_open.fetch_add(1, std::memory_order_relaxed);
}

layer_in_call_scope::~layer_in_call_scope()
{
    current_layer = std::move(saved_);
    layer_scopes_open.fetch_sub(1, std::memory_order_relaxed);
}

std::string layer_prefix()
{
    return current_layer ? *current_layer + ": " : std::string();
}

std::string format_shape(const shape_type& shape)
{
    std::string text = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        text += (i ? ", " : "") + std::to_string(shape[i]);
    }
    return text + (shape.size() == 1 ? ",)" : ")");
}

std::string printable(std::string_view text, std::size_t longest)
{
    std::string out;
    for (std::size_t i = 0; i < text.size() && i < longest; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte == 0x7f) {
            constexpr char digits[] = "0123456789abcdef";
            out += "\\x";
            out += digits[byte >> 4];
            out += digits[byte & 15];
        } else {
            out += char(byte);
        }
    }
    return text.size() > longest ? out + "..." : out;
}

source_location user_site(const source_location& site)
{
    const source_location* forward = backward_site();
    return forward ? *forward : site;
}

std::string format_site(const source_location& site)
{
    const source_location where = user_site(site);
    return std::string(where.file_name()) + ":" + std::to_string(where.line());
}

std::string with_thousands(std::uint64_t count)
{
    std::string digits = std::to_string(count);
    for (std::ptrdiff_t at = std::ptrdiff_t(digits.size()) - 3; at > 0; at -= 3) {
        digits.insert(std::size_t(at), ",");
    }
    return digits;
}

std::string format_bytes(std::size_t bytes)
{
    constexpr std::array<const char*, 5> units{"B", "KiB", "MiB", "GiB", "TiB"};
    double value = double(bytes);
    std::size_t unit = 0;
    while (value >= 1024 && unit + 1 < units.size()) {
        value /= 1024;
        ++unit;
    }
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return text.data();
}

void fail_out_of_memory(std::string_view op, const source_location& site, const shape_type& shape,
                        const char* dtype, std::size_t element_size)
{
    std::size_t bytes = element_size;
    for (std::size_t dim : shape) {
        bytes *= dim;
    }
    std::string refused = "memory";
    if (std::size_t& last = last_refused_bytes(); last != 0) {
        refused = "a block of " + format_bytes(last);
        last = 0;
    }
    std::ostringstream held;
    held << memory_info();
    fail<memory_error>(op, site,
                       "out of memory for a " + std::string(dtype) + " result of shape " + format_shape(shape) + " (" +
                           format_bytes(bytes) + "): the system refused " + refused +
                           " after the tensor cache was emptied; " + held.str());
}

bool allocatable(const shape_type& shape, std::size_t element_size)
{
    constexpr auto limit = static_cast<std::size_t>(std::numeric_limits<std::ptrdiff_t>::max());
    std::size_t bytes = element_size;
    for (std::size_t dim : shape) {
        if (dim != 0 && (__builtin_mul_overflow(bytes, dim, &bytes) || bytes > limit)) {
            return false;
        }
    }
    return true;
}

void check_allocatable(std::string_view op, const source_location& site, const shape_type& shape,
                       std::size_t element_size)
{
    if (!allocatable(shape, element_size)) {
        fail<shape_error>(op, site,
                          "an array of shape " + format_shape(shape) + " would hold more bytes than memory can address");
    }
}

std::optional<shape_type> broadcast_of(const shape_type& a, const shape_type& b)
{
    shape_type result(std::max(a.size(), b.size()));
    for (std::size_t i = 1; i <= result.size(); ++i) {
        const std::size_t da = i <= a.size() ? a[a.size() - i] : 1;
        const std::size_t db = i <= b.size() ? b[b.size() - i] : 1;
        if (da != db && da != 1 && db != 1) {
            return std::nullopt;
        }
        result[result.size() - i] = da == 1 ? db : da;
    }
    return result;
}

shape_type broadcast_shape(std::string_view op, const source_location& site, const shape_type& a,
                           const shape_type& b, std::size_t element_size)
{
    // The common case: operands of one shape, whose arrays exist already.
    if (a == b) {
        return a;
    }
    std::optional<shape_type> broadcast = broadcast_of(a, b);
    if (!broadcast) {
        fail<shape_error>(op, site, "shapes " + format_shape(a) + " and " + format_shape(b) + " do not broadcast");
    }
    if (!allocatable(*broadcast, element_size)) {
        fail<shape_error>(op, site,
                          "shapes " + format_shape(a) + " and " + format_shape(b) + " broadcast to " +
                              format_shape(*broadcast) + ", which would hold more bytes than memory can address");
    }
    return *std::move(broadcast);
}

void throw_undefined_tensor()
{
    throw argument_error("use of an undefined (default-constructed) tensor");
}

void throw_rebind_variable(const variable_info& variable)
{
    throw argument_error("variable '" + variable.name +
                         "' cannot be rebound through a Tensor reference; use assign() to change its value");
}

void throw_not_one_element(const shape_type& shape)
{
    throw shape_error("item: the tensor has shape " + format_shape(shape) + ", not exactly one element");
}

}  // namespace gradtape::detail
