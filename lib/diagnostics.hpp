// Message building shared by every op: shapes and call sites in one format.
#pragma once

#include <source_location>
#include <string>
#include <string_view>

#include <gradtape/error.hpp>
#include <gradtape/tensor.hpp>

namespace gradtape::detail {

// "(50, 2)"; a tensor of shape () prints as "()".
std::string format_shape(const shape_type& shape);

// "file:line" of the user's code: inside a backward rule, the forward op's call site.
std::string format_site(const std::source_location& site);

// The call site errors and tape entries should carry for an op called at `site`.
std::source_location user_site(const std::source_location& site);

// Throws E with "op: what [at file:line]".
template <class E>
[[noreturn]] void fail(std::string_view op, const std::source_location& site, const std::string& what)
{
    throw E(std::string(op) + ": " + what + " [at " + format_site(site) + "]");
}

// Throws shape_error unless a and b broadcast against each other as in NumPy.
void check_broadcastable(std::string_view op, const std::source_location& site, const shape_type& a,
                         const shape_type& b);

}  // namespace gradtape::detail
