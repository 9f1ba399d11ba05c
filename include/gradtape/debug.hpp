// Switches for finding where a training loop goes wrong. All are off by
// default, and then an op pays one relaxed atomic load for them.
//
//   {
//       gradtape::check_numerics guard;      // this thread, while guard lives
//       auto loss = train_step();            // the first NaN or Inf throws gradtape::numeric_error
//   }
//   gradtape::set_trace(true);               // or GRADTAPE_TRACE=1: one line per op on stderr
//
// Tapes print their entries (std::cout << tape) and draw them
// (tape.to_dot(), for Graphviz); tensors print with operator<<.
#pragma once

#include <memory>
#include <string_view>

namespace gradtape {

namespace detail {
struct guard_count;
}

/// Makes the first op whose value, or whose backward rule's gradient, holds a
/// NaN or an infinity throw numeric_error naming the op, its call site and the
/// count of bad elements; on every thread.
void set_check_numerics(bool enabled);

/// The same on the calling thread, while the guard lives. A guard released on
/// another thread ends the checks of the thread that made it.
class [[nodiscard]] check_numerics {
public:
    check_numerics();
    ~check_numerics();
    check_numerics(const check_numerics&) = delete;
    check_numerics& operator=(const check_numerics&) = delete;

private:
    std::shared_ptr<detail::guard_count> count_;
};

/// Prints one line per executed op to stderr: op, shapes, call site, and
/// whether a tape recorded it. The environment variable GRADTAPE_TRACE=1
/// turns it on at startup.
void set_trace(bool enabled);

/// The instruction set the arithmetic kernels run with on this machine:
/// "avx512", "avx2" or "sse2" on x86-64. The environment variable
/// GRADTAPE_MAX_CPU_ISA=sse2|avx2|avx512 caps it, read at the first op; the
/// results are the same on every path.
[[nodiscard]] std::string_view simd_instruction_set();

}  // namespace gradtape
