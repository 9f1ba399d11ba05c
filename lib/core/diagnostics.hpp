// What every op's shape rule shares: messages that give shapes and call
// sites in one format, and the arithmetic of shapes.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <gradtape/error.hpp>
#include <gradtape/source_location.hpp>
#include <gradtape/tensor.hpp>

namespace gradtape::detail {

// "(50, 2)"; a tensor of shape () prints as "()".
std::string format_shape(const shape_type& shape);

// Text from a file as a message may quote it: control bytes (a NUL would end
// the message for what()) as \xNN, and at most `longest` bytes.
std::string printable(std::string_view text, std::size_t longest = 80);

// "file:line" of the user's code: inside a backward rule, the forward op's call site.
std::string format_site(const source_location& site);

// The call site errors and tape entries should carry for an op called at `site`.
source_location user_site(const source_location& site);

// Note [The layer in call]
// The path of the layer whose call() runs on this thread ("cnn/conv2d_1"):
// set by each layer call (lib/layers), and in a backward pass or a replay by
// the entry or step that runs, which keep it from when they were recorded.
// Error messages, trace lines, tape printouts and capture printouts name it.
using layer_path = std::shared_ptr<const std::string>;
const layer_path& layer_in_call() noexcept;
// How many scopes naming a layer are open, on all threads: while none is,
// recording an op skips the thread-local read (an op outside layers pays one
// relaxed load).
extern std::atomic<int> layer_scopes_open;

class layer_in_call_scope {
public:
    explicit layer_in_call_scope(const layer_path& path);
    ~layer_in_call_scope();
    layer_in_call_scope(const layer_in_call_scope&) = delete;
    layer_in_call_scope& operator=(const layer_in_call_scope&) = delete;

private:
    layer_path saved_;
};

// "cnn/conv2d_1: " inside a layer's call, else "".
std::string layer_prefix();

// Throws E with "op: what [at file:line]", after the layer in call's path.
template <class E>
[[noreturn]] void fail(std::string_view op, const source_location& site, const std::string& what)
{
    throw E(layer_prefix() + std::string(op) + ": " + what + " [at " + format_site(site) + "]");
}

// Throws shape_error, naming op, the shape and the call site, unless an array
// of `shape` with elements of `element_size` bytes can exist: its byte count
// must fit in a std::ptrdiff_t (dimensions of zero aside, so that no stride
// overflows either). Every op calls it on the shape it is about to allocate.
void check_allocatable(std::string_view op, const source_location& site, const shape_type& shape,
                       std::size_t element_size);
// The test behind check_allocatable, for an op that words its own message.
bool allocatable(const shape_type& shape, std::size_t element_size);

// 1234567 -> "1,234,567", as Keras prints counts.
std::string with_thousands(std::uint64_t count);

// "512 B", "38.0 MiB": a byte count as messages and printouts give it.
std::string format_bytes(std::size_t bytes);

// The size of the last block the system refused this thread (the allocator
// sets it before throwing std::bad_alloc).
std::size_t& last_refused_bytes();

// Throws memory_error for an op whose result, of `shape` and `dtype`, or
// whose work space the system refused.
[[noreturn]] void fail_out_of_memory(std::string_view op, const source_location& site, const shape_type& shape,
                                     const char* dtype, std::size_t element_size);

// A shape as reshape() takes it.
inline std::vector<std::ptrdiff_t> signed_shape(const shape_type& shape)
{
    return {shape.begin(), shape.end()};
}

// The shape a and b broadcast to, as in NumPy, or nothing where they do not.
std::optional<shape_type> broadcast_of(const shape_type& a, const shape_type& b);

// The shape a and b broadcast to, as in NumPy; throws shape_error when they
// do not, or when the result could not be allocated (check_allocatable).
shape_type broadcast_shape(std::string_view op, const source_location& site, const shape_type& a,
                           const shape_type& b, std::size_t element_size);

}  // namespace gradtape::detail
