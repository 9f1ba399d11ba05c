// The exceptions gradtape throws for bad input and misuse.
//
// Every message names the op, the shapes or values involved and the caller's
// file:line, so that a failing line is found without a debugger:
//
//   try { auto y = gradtape::matmul(x, w); }
//   catch (const gradtape::shape_error& e) { std::cerr << e.what() << '\n'; }
//   // matmul: inner dimensions differ: (50, 2) x (3, 1) [at fit.cpp:17]
#pragma once

#include <stdexcept>

namespace gradtape {

/// Base of every exception gradtape throws on purpose.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Operand shapes that the op cannot combine (matmul, broadcasting, assign).
class shape_error : public error {
public:
    using error::error;
};

/// An argument out of its domain: an axis out of range, a negative size, an undefined tensor.
class argument_error : public error {
public:
    using error::error;
};

/// The tape used in a way it does not support: a second gradient on a
/// non-persistent tape, a source it does not watch, a tape of another thread.
class tape_error : public error {
public:
    using error::error;
};

/// A NaN or an infinity where check_numerics watches for one (debug.hpp).
class numeric_error : public error {
public:
    using error::error;
};

/// Memory the system refused for an op, even after every block the tensor
/// cache kept was handed back (memory.hpp). The op's inputs, the tape and the
/// variables are as they were before the call.
class memory_error : public error {
public:
    using error::error;
};

/// A captured function (capture.hpp) asked to do what a replay could not
/// repeat (read a value it computed, write a variable other than by an
/// optimizer or assign*), or called in a way it does not support. Nothing is
/// recorded.
class capture_error : public error {
public:
    using error::error;
};

}  // namespace gradtape
