// basic_tensor: a cheap-to-copy handle to an immutable value that has already
// been computed, and the functions that create one.
//
//   gradtape::Tensor x = gradtape::linspace<float>(-2, 4, 50);
//   gradtape::Tensor y = 2.0f * x + 1.0f;     // runs now; recorded if a tape watches x
//   std::cout << y << '\n';                    // float32, shape (50,), values
//
// Arithmetic operators live here beside the class; every other op is in ops.hpp.
#pragma once

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>

#include <gradtape/memory.hpp>
#include <gradtape/source_location.hpp>

#include <xtensor/xarray.hpp>

namespace gradtape {

/// A tensor's dimensions: xt::xarray's own shape type.
using shape_type = xt::dynamic_shape<std::size_t>;
/// A tensor's identity on tapes (basic_tensor::id).
using tensor_id = std::uint64_t;

template <class T>
concept dtype = std::same_as<T, float> || std::same_as<T, double>;

template <dtype T>
class basic_tensor;

using Tensor = basic_tensor<float>;     ///< A float32 tensor.
using Tensor64 = basic_tensor<double>;  ///< A float64 tensor.

namespace detail {

// Carried by a variable's storage and by every value read from it, so that a
// tape can watch the variable and an error can name it. The mutex orders the
// variable's reads and writes (see tensor_node::current).
struct variable_info {
    std::string name;
    bool trainable = true;
    // Fixed when the variable is made: reading it needs no lock.
    shape_type shape;
    mutable std::mutex mutex;
};

template <class T>
struct tensor_node {
    xt::xarray<T> value;
    tensor_id id;
    std::shared_ptr<const variable_info> variable;
    // A variable's own storage holds no value: `current` is the node of its
    // present value, which every read of the variable shares without a copy.
    // A write goes into it in place when nothing else holds it, and into a
    // fresh copy when a read (a recorded op, a tensor) still does, so that a
    // read keeps the value of its moment.
    bool is_variable_storage = false;
    std::shared_ptr<tensor_node> current;
    // The call site of the op that computed the value, for errors about it.
    source_location origin;
};

template <class T>
std::shared_ptr<tensor_node<T>> make_node(xt::xarray<T>&& value);

// A read of a variable's storage: the node of its current value, shared.
template <class T>
std::shared_ptr<tensor_node<T>> read_variable(const tensor_node<T>& storage);

// A read of a variable, or the node itself.
template <class T>
std::shared_ptr<tensor_node<T>> read(const std::shared_ptr<tensor_node<T>>& node)
{
    return node && node->is_variable_storage ? read_variable(*node) : node;
}

struct tensor_access;

[[noreturn]] void throw_undefined_tensor();
[[noreturn]] void throw_rebind_variable(const variable_info& variable);
[[noreturn]] void throw_not_one_element(const shape_type& shape);

// How many captures (capture.hpp) are recording anywhere: while none is, a
// read of a value costs this one load.
extern std::atomic<int> captures_recording;
// Refuses, while this thread records a capture, a read of a value that the
// capture's replays would change: an argument, a variable, or a value
// computed from them.
void check_capture_read(const void* node, const variable_info* variable_storage, const source_location& site);

}  // namespace detail

/// An operand together with the line of the caller's code that applies an
/// operator to it: operators cannot take a defaulted source_location, but a
/// converting constructor can.
template <dtype T>
struct located_tensor {
    /// Takes the operand and the line of the expression that uses it.
    located_tensor(const basic_tensor<T>& operand,
                   source_location where = source_location::current())
        : tensor(operand), site(where)
    {
    }
    const basic_tensor<T>& tensor;  ///< The operand.
    source_location site;           ///< The caller's line.
};

/// The elementwise functions of two tensors, which broadcast as NumPy does,
/// each beside its gradients for a and for b, with y the result (the core sums
/// a gradient over the dimensions broadcasting added). The operators below
/// call the first four. The second operand converts: add(x, 1.0),
/// multiply(x, w) with a variable w.
#define GRADTAPE_BINARY_OPS(X)                                                                       \
    X(add)      /* grad; grad                                                                 */ \
    X(subtract) /* grad; -grad                                                                */ \
    X(multiply) /* grad * b; grad * a                                                         */ \
    X(divide)   /* grad / b; -grad * y / b                                                    */ \
    X(maximum)  /* grad where a >= b or a is NaN (a tie goes to a, as in TensorFlow); the rest */ \
    X(minimum)  /* grad where a <= b or a is NaN (a tie goes to a); the rest                  */ \
    X(pow)      /* grad * b * a^(b - 1); grad * y * log(a), taken as 0 where a <= 0           */

#define GRADTAPE_DECLARE_BINARY(name)                                                                       \
    template <dtype T>                                                                                      \
    [[nodiscard]] basic_tensor<T> name(const basic_tensor<T>& a, const std::type_identity_t<basic_tensor<T>>& b, \
                                       source_location site = source_location::current());
/// @name Elementwise functions of two tensors
/// @{

/// y = f(a, b) at every element of a and b broadcast together, as NumPy's
/// function of that name; each gradient is in the table of GRADTAPE_BINARY_OPS.
GRADTAPE_BINARY_OPS(GRADTAPE_DECLARE_BINARY)
/// @}
#undef GRADTAPE_DECLARE_BINARY

/// -x: gradient -grad.
template <dtype T>
[[nodiscard]] basic_tensor<T> negative(const basic_tensor<T>& x,
                                       source_location site = source_location::current());

/// An immutable value of dtype T (float for gradtape::Tensor, double for
/// gradtape::Tensor64), computed when the op that makes it returns, and
/// recorded on every tape of the calling thread that watches one of the op's
/// inputs. Cheap to copy: copies share the value.
template <dtype T>
class basic_tensor {
public:
    using value_type = T;  ///< The element type, float or double.

    /// An undefined tensor: it holds no value, and every access but defined() throws.
    basic_tensor() = default;
    /// A tensor holding `value`, moved in.
    basic_tensor(xt::xarray<T> value) : node_(detail::make_node(std::move(value))) {}
    /// A tensor holding an xtensor expression of the same element type, evaluated now.
    template <class E>
        requires(xt::is_xexpression<E>::value && !std::same_as<E, xt::xarray<T>> &&
                 std::same_as<typename E::value_type, T>)
    basic_tensor(const E& expression) : basic_tensor(xt::xarray<T>(expression))
    {
    }
    /// A tensor of shape () holding `scalar`.
    basic_tensor(T scalar) : basic_tensor(xt::xarray<T>(scalar)) {}

    /// Copying a variable into a tensor reads it: the copy keeps the value of
    /// that moment, whatever assign() does later.
    basic_tensor(const basic_tensor& other) : node_(detail::read(other.node_)) {}
    /// Takes other's value; other is left undefined (a moved variable is read instead).
    basic_tensor(basic_tensor&& other) : node_(take(other)) {}
    /// Shares other's value (reading it, if other is a variable); a variable refuses to be rebound.
    basic_tensor& operator=(const basic_tensor& other)
    {
        refuse_rebinding_variable();
        node_ = detail::read(other.node_);
        return *this;
    }
    /// Takes other's value; a variable refuses to be rebound.
    basic_tensor& operator=(basic_tensor&& other)
    {
        refuse_rebinding_variable();
        node_ = take(other);
        return *this;
    }
    ~basic_tensor() = default;

    /// Whether the tensor holds a value.
    [[nodiscard]] bool defined() const noexcept { return node_ != nullptr; }
    /// Of a variable, the value as it is now, until its next write: on a
    /// thread other than the writer's, read the variable into a tensor first
    /// (`Tensor now = w;`, which takes the variable's lock).
    [[nodiscard]] const xt::xarray<T>& value(source_location site = source_location::current()) const
    {
        const detail::tensor_node<T>& node = checked_node();
        if (detail::captures_recording.load(std::memory_order_relaxed) != 0) [[unlikely]] {
            detail::check_capture_read(&node, node.is_variable_storage ? node.variable.get() : nullptr, site);
        }
        return (node.is_variable_storage ? *node.current : node).value;
    }
    /// The dimensions, outermost first; () for a scalar.
    [[nodiscard]] const shape_type& shape() const
    {
        const detail::tensor_node<T>& node = checked_node();
        return node.is_variable_storage ? node.variable->shape : node.value.shape();
    }
    /// The number of elements: the product of the dimensions.
    [[nodiscard]] std::size_t size() const
    {
        std::size_t count = 1;
        for (std::size_t dim : shape()) {
            count *= dim;
        }
        return count;
    }
    /// The number of dimensions (the rank).
    [[nodiscard]] std::size_t dimension() const { return shape().size(); }
    /// The value of a tensor that holds exactly one element, whatever its shape.
    [[nodiscard]] T item(source_location site = source_location::current()) const
    {
        const auto& v = value(site);
        if (v.size() != 1) {
            detail::throw_not_one_element(v.shape());
        }
        return *v.data();
    }
    /// Identity as the tape sees it: a variable and every read of it share one id.
    [[nodiscard]] tensor_id id() const { return checked_node().id; }

    // Each records its op with the line of the expression; a scalar operand
    // is a tensor of shape (), and operands broadcast as NumPy's do.
    /// a + b: add(a, b).
    friend basic_tensor operator+(located_tensor<T> a, const basic_tensor& b) { return add(a.tensor, b, a.site); }
    /// a - b: subtract(a, b).
    friend basic_tensor operator-(located_tensor<T> a, const basic_tensor& b) { return subtract(a.tensor, b, a.site); }
    /// a * b: multiply(a, b).
    friend basic_tensor operator*(located_tensor<T> a, const basic_tensor& b) { return multiply(a.tensor, b, a.site); }
    /// a / b: divide(a, b).
    friend basic_tensor operator/(located_tensor<T> a, const basic_tensor& b) { return divide(a.tensor, b, a.site); }
    /// a + b (a scalar): add(a, b).
    friend basic_tensor operator+(located_tensor<T> a, T b) { return add(a.tensor, basic_tensor(b), a.site); }
    /// a - b (a scalar): subtract(a, b).
    friend basic_tensor operator-(located_tensor<T> a, T b) { return subtract(a.tensor, basic_tensor(b), a.site); }
    /// a * b (a scalar): multiply(a, b).
    friend basic_tensor operator*(located_tensor<T> a, T b) { return multiply(a.tensor, basic_tensor(b), a.site); }
    /// a / b (a scalar): divide(a, b).
    friend basic_tensor operator/(located_tensor<T> a, T b) { return divide(a.tensor, basic_tensor(b), a.site); }
    /// a (a scalar) + b: add(a, b).
    friend basic_tensor operator+(T a, located_tensor<T> b) { return add(basic_tensor(a), b.tensor, b.site); }
    /// a (a scalar) - b: subtract(a, b).
    friend basic_tensor operator-(T a, located_tensor<T> b) { return subtract(basic_tensor(a), b.tensor, b.site); }
    /// a (a scalar) * b: multiply(a, b).
    friend basic_tensor operator*(T a, located_tensor<T> b) { return multiply(basic_tensor(a), b.tensor, b.site); }
    /// a (a scalar) / b: divide(a, b).
    friend basic_tensor operator/(T a, located_tensor<T> b) { return divide(basic_tensor(a), b.tensor, b.site); }
    /// -x: negative(x).
    friend basic_tensor operator-(located_tensor<T> x) { return negative(x.tensor, x.site); }

    /// @cond INTERNAL
protected:
    friend struct detail::tensor_access;
    struct share_node_t {};
    static constexpr share_node_t share_node{};
    basic_tensor(share_node_t, std::shared_ptr<detail::tensor_node<T>> node) : node_(std::move(node)) {}

    std::shared_ptr<detail::tensor_node<T>> node_;
    /// @endcond

private:
    static std::shared_ptr<detail::tensor_node<T>> take(basic_tensor& other)
    {
        if (other.node_ && other.node_->is_variable_storage) {
            return detail::read_variable(*other.node_);
        }
        return std::move(other.node_);
    }
    const detail::tensor_node<T>& checked_node() const
    {
        if (!node_) {
            detail::throw_undefined_tensor();
        }
        return *node_;
    }
    void refuse_rebinding_variable() const
    {
        if (node_ && node_->is_variable_storage) {
            detail::throw_rebind_variable(*node_->variable);
        }
    }
};

/// NumPy-like text: dtype, shape and values, summarised when large; a value
/// read from a variable also shows the variable's name.
template <dtype T>
std::ostream& operator<<(std::ostream& out, const basic_tensor<T>& tensor);

/// @cond INTERNAL
// The element types xt::xarray values print with: the numbers and bool.
#define GRADTAPE_FOR_EACH_PRINTABLE(X)                                                                \
    X(bool) X(signed char) X(unsigned char) X(short) X(unsigned short) X(int) X(unsigned int) X(long) \
    X(unsigned long) X(long long) X(unsigned long long) X(float) X(double)
#define GRADTAPE_IS_PRINTABLE(type) || std::same_as<T, type>
template <class T>
concept printable_element = false GRADTAPE_FOR_EACH_PRINTABLE(GRADTAPE_IS_PRINTABLE);
#undef GRADTAPE_IS_PRINTABLE
/// @endcond

/// An xt::xarray prints as xtensor's <xtensor/xio.hpp> prints it, without
/// that header's compile time: `std::cout << t.value()` just works. Found by
/// argument-dependent lookup through gradtape's allocator, which is
/// xt::xarray's in every program that uses gradtape, and preferred to xio's
/// operator for every expression when that header is included too.
template <printable_element T>
std::ostream& operator<<(std::ostream& out, const xt::xarray<T>& value);

namespace detail {
// False, but only once instantiated: the condition of a static_assert that
// explains why an overload chosen for a mistake cannot compile.
template <class...>
inline constexpr bool dependent_false = false;
}  // namespace detail

/// @cond INTERNAL
// An op on a float32 and a float64 tensor: without these overloads the
// compiler lists every candidate that did not match (some 50 lines).
#define GRADTAPE_MIXED_DTYPES                                                                         \
    "gradtape: float32 and float64 tensors do not mix in one op: cast one, "                         \
    "gt::cast<double>(x) or gt::cast<float>(x)"
#define GRADTAPE_REFUSE_MIXED_DTYPES(name)                                                            \
    template <dtype T, dtype U, class... Rest>                                                        \
        requires(!std::same_as<T, U>)                                                                 \
    basic_tensor<T> name(const basic_tensor<T>&, const basic_tensor<U>&, const Rest&...)             \
    {                                                                                                 \
        static_assert(detail::dependent_false<T, U>, GRADTAPE_MIXED_DTYPES);                          \
        return {};                                                                                    \
    }
GRADTAPE_BINARY_OPS(GRADTAPE_REFUSE_MIXED_DTYPES)
#define GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR(symbol)                                                 \
    template <dtype T, dtype U>                                                                       \
        requires(!std::same_as<T, U>)                                                                 \
    basic_tensor<T> operator symbol(const basic_tensor<T>&, const basic_tensor<U>&)                  \
    {                                                                                                 \
        static_assert(detail::dependent_false<T, U>, GRADTAPE_MIXED_DTYPES);                          \
        return {};                                                                                    \
    }
GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR(+)
GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR(-)
GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR(*)
GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR(/)
#undef GRADTAPE_REFUSE_MIXED_DTYPES_OPERATOR
/// @endcond

/// A tensor holding `value`, as tf.constant.
template <dtype T>
[[nodiscard]] basic_tensor<T> constant(xt::xarray<T> value)
{
    return basic_tensor<T>(std::move(value));
}
/// A shape whose array could not be allocated throws shape_error.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> fill(const shape_type& shape, T value,
                                   source_location site = source_location::current());
/// A tensor of `shape` filled with 0.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> zeros(const shape_type& shape,
                                    source_location site = source_location::current());
/// A tensor of `shape` filled with 1.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> ones(const shape_type& shape,
                                   source_location site = source_location::current());
/// n evenly spaced values from start to stop, both included, as numpy.linspace.
template <dtype T = float>
[[nodiscard]] basic_tensor<T> linspace(T start, T stop, std::size_t n,
                                       source_location site = source_location::current());

}  // namespace gradtape

// Shapes print as NumPy writes them: "(2, 3)", "(4,)", "()". The operator
// lives in xtensor's namespace, the shape type's own, so that argument-dependent
// lookup finds it from any code that writes `out << t.shape()`.
namespace xt {
std::ostream& operator<<(std::ostream& out, const gradtape::shape_type& shape);
}  // namespace xt
