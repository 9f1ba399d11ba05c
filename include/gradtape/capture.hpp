// capture: a training step recorded once and replayed, as tf.function and
// CUDA graphs do, with eager mode's results bit for bit.
//
//   auto train_step = gt::capture([&] {
//       return optimizer.minimize([&] { return gt::l2_loss(gt::matmul(input, w) - target); }, {w});
//   });
//   for (int step = 0; step < 50; ++step) {
//       gt::Tensor loss = train_step();   // 1st call: eager and recorded; then replayed
//   }
//   std::cout << train_step;             // each recording's steps: shapes, bytes, file:line
//
// The first call with a given signature (each tensor argument's dtype and
// shape, each arithmetic argument's value) runs the function eagerly and
// records every op it runs, forward and backward, and every optimizer
// update. Later calls with that signature replay the recording: the same
// kernels on the same buffers, no tape, no allocation. What the function
// reads besides its arguments is bound at capture: variables by identity
// (read and updated in place at every replay), other tensors as constants;
// pass what changes as an argument.
//
// A replay cannot repeat what the function does besides ops and updates: a
// read of a value it computed (item(), value(), printing), a random draw an
// op reads, a write to a variable other than an optimizer's. While capturing,
// those throw capture_error naming the line, and nothing is recorded: move
// them out of the function, or run it eagerly (run_functions_eagerly).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iosfwd>
#include <memory>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "source_location.hpp"
#include "tensor.hpp"

namespace gradtape {

/// How gt::capture records.
struct capture_options {
    /// Signatures recorded at most; calls with a new one past that run
    /// eagerly, after one warning on stderr.
    std::size_t max_signatures = 8;
};

/// With true, every captured function runs eagerly at every call, so that a
/// debugger steps through it and its side effects happen each time (as
/// tf.config.run_functions_eagerly). GRADTAPE_RUN_EAGERLY=1 sets it at start.
void run_functions_eagerly(bool eagerly);
/// Whether captured functions run eagerly (run_functions_eagerly).
[[nodiscard]] bool functions_run_eagerly();

namespace detail {

class capture_state;

// One call of a captured function: its signature, then what it does.
class capture_call {
public:
    explicit capture_call(const std::shared_ptr<capture_state>& state);
    ~capture_call();
    capture_call(const capture_call&) = delete;
    capture_call& operator=(const capture_call&) = delete;

    template <dtype T>
    void argument(const basic_tensor<T>& tensor);
    void argument(const xt::xarray<std::int64_t>& indices);
    void argument(const char* type, std::uint64_t bits);
    // What the function is given for an integer array argument: while
    // capturing, the recording's own copy, which every replay fills anew.
    [[nodiscard]] const xt::xarray<std::int64_t>& indices_argument(const xt::xarray<std::int64_t>* given) const;

    enum class action { replay, capture, run_eagerly };
    // After the arguments: replay (done when this returns), capture (run the
    // function, then give its outputs and call finish) or run eagerly.
    [[nodiscard]] action begin();
    template <dtype T>
    void output(const basic_tensor<T>& tensor);
    void finish();
    // A replay's outputs, in the order the capture gave them.
    [[nodiscard]] std::size_t output_count() const;
    template <dtype T>
    [[nodiscard]] basic_tensor<T> replayed(std::size_t index) const;

private:
    capture_state& state_;
    bool finished_ = false;
};

// What a captured function takes: tensors (a variable is read at the call),
// integer arrays (labels, ids: their shape is in the signature, their values
// are read at every call) and arithmetic values (in the signature). `stored`
// is what a call keeps of the argument, `passed` what the function is given.
template <class A>
struct capture_parameter {
    static_assert(std::is_arithmetic_v<A>,
                  "gradtape::capture: a captured function's parameters are tensors, xt::xarray<std::int64_t> "
                  "index arrays and arithmetic values (bool, int, float...); bind anything else in the function's "
                  "closure");
    using stored = A;
    using passed = A;
    static stored keep(const A& value) { return value; }
    static void sign(capture_call& call, const A& value)
    {
        std::uint64_t bits = 0;
        std::memcpy(&bits, &value, sizeof(A));
        call.argument(typeid(A).name(), bits);
    }
    static const A& give(const capture_call&, const A& value) { return value; }
};
template <class A>
    requires requires { typename A::value_type; } && std::derived_from<A, basic_tensor<typename A::value_type>>
struct capture_parameter<A> {
    using stored = basic_tensor<typename A::value_type>;
    using passed = stored;
    static stored keep(const A& tensor) { return stored(tensor); }
    static void sign(capture_call& call, const stored& tensor) { call.argument(tensor); }
    static const stored& give(const capture_call&, const stored& tensor) { return tensor; }
};
template <>
struct capture_parameter<xt::xarray<std::int64_t>> {
    using stored = const xt::xarray<std::int64_t>*;
    using passed = xt::xarray<std::int64_t>;
    static stored keep(const xt::xarray<std::int64_t>& indices) { return &indices; }
    static void sign(capture_call& call, stored indices) { call.argument(*indices); }
    static const xt::xarray<std::int64_t>& give(const capture_call& call, stored indices)
    {
        return call.indices_argument(indices);
    }
};

// How a captured function's result goes into a recording and comes out of a
// replay: nothing, a tensor, a tuple or pair of tensors, or a vector of them.
template <class R>
struct capture_result {
    static_assert(sizeof(R) == 0,
                  "gradtape::capture: a captured function returns void, a tensor, a std::tuple or std::pair of "
                  "tensors, or a std::vector of tensors");
};
template <>
struct capture_result<void> {
    static void give(capture_call&) {}
    static void take(const capture_call&) {}
};
template <dtype T>
struct capture_result<basic_tensor<T>> {
    static void give(capture_call& call, const basic_tensor<T>& result) { call.output(result); }
    static basic_tensor<T> take(const capture_call& call) { return call.replayed<T>(0); }
};
template <dtype T>
struct capture_result<std::vector<basic_tensor<T>>> {
    static void give(capture_call& call, const std::vector<basic_tensor<T>>& result)
    {
        for (const auto& tensor : result) {
            call.output(tensor);
        }
    }
    static std::vector<basic_tensor<T>> take(const capture_call& call)
    {
        std::vector<basic_tensor<T>> result;
        result.reserve(call.output_count());
        for (std::size_t i = 0; i < call.output_count(); ++i) {
            result.push_back(call.replayed<T>(i));
        }
        return result;
    }
};
template <class Tuple, dtype... T>
struct capture_tuple_result {
    static void give(capture_call& call, const Tuple& result)
    {
        std::apply([&](const auto&... tensors) { (call.output(tensors), ...); }, result);
    }
    static Tuple take(const capture_call& call)
    {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return Tuple(call.replayed<T>(I)...);
        }(std::index_sequence_for<T...>{});
    }
};
template <dtype... T>
struct capture_result<std::tuple<basic_tensor<T>...>>
    : capture_tuple_result<std::tuple<basic_tensor<T>...>, T...> {};
template <dtype A, dtype B>
struct capture_result<std::pair<basic_tensor<A>, basic_tensor<B>>>
    : capture_tuple_result<std::pair<basic_tensor<A>, basic_tensor<B>>, A, B> {};

std::shared_ptr<capture_state> make_capture_state(capture_options options, const source_location& site);
std::size_t signature_count(const capture_state& state);
void print_captures(std::ostream& out, const capture_state& state);

}  // namespace detail

/// A function and its recordings: call it as the function.
template <class F>
class captured_function {
public:
    /// Made by gt::capture, which names the site in warnings and errors.
    captured_function(F function, capture_options options, const source_location& site)
        : function_(std::move(function)), state_(detail::make_capture_state(options, site))
    {
    }

    /// Calls the function: the first call with a signature runs it eagerly
    /// and records it, later calls with that signature replay the recording.
    template <class... Args>
    decltype(auto) operator()(const Args&... args)
    {
        using result_type = std::invoke_result_t<F&, const typename detail::capture_parameter<Args>::passed&...>;
        const std::tuple<typename detail::capture_parameter<Args>::stored...> kept{
            detail::capture_parameter<Args>::keep(args)...};
        detail::capture_call call(state_);
        const auto run = [&] {
            return std::apply(
                [&](const auto&... each) {
                    return function_(detail::capture_parameter<Args>::give(call, each)...);
                },
                kept);
        };
        std::apply([&](const auto&... each) { (detail::capture_parameter<Args>::sign(call, each), ...); }, kept);
        switch (call.begin()) {
        case detail::capture_call::action::replay:
            return detail::capture_result<result_type>::take(call);
        case detail::capture_call::action::capture:
            if constexpr (std::is_void_v<result_type>) {
                run();
                call.finish();
                return;
            } else {
                result_type result = run();
                detail::capture_result<result_type>::give(call, result);
                call.finish();
                return result;
            }
        case detail::capture_call::action::run_eagerly:
            break;
        }
        return static_cast<result_type>(run());
    }

    /// How many signatures have been recorded.
    [[nodiscard]] std::size_t signatures() const { return detail::signature_count(*state_); }

    /// Each signature's steps: op, shapes, bytes and line.
    friend std::ostream& operator<<(std::ostream& out, const captured_function& captured)
    {
        detail::print_captures(out, *captured.state_);
        return out;
    }

private:
    F function_;
    std::shared_ptr<detail::capture_state> state_;
};

/// `function` captured: its first call with each signature records the ops
/// it runs, later calls replay them without dispatch, shape rules or a tape
/// (README, "Capture and replay").
template <class F>
[[nodiscard]] captured_function<std::decay_t<F>> capture(F&& function, capture_options options = {},
                                                         source_location site = source_location::current())
{
    return captured_function<std::decay_t<F>>(std::forward<F>(function), options, site);
}

}  // namespace gradtape
