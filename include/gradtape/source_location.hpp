// source_location: the call site an op, an error message and a tape entry
// name. Every function of the library that can fail takes one as its last,
// defaulted argument, so that a message points at the user's own line:
//
//   gradtape::Tensor y = gradtape::matmul(x, w);   // an error says [at train.cpp:40]
//
// A helper of one's own passes its caller's site on by taking one too:
//
//   gt::Tensor affine(const gt::Tensor& x, gt::source_location site = gt::source_location::current())
//   {
//       return gt::add(gt::matmul(x, w, {}, site), b, site);
//   }
#pragma once

#include <cstdint>
#include <version>

#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace gradtape {

/// A call site: file, function, line and column, as std::source_location
/// gives them. The library's own type rather than std::source_location itself:
/// Clang before 15 has no std::source_location with libstdc++, and a program
/// built by such a compiler must link against a library built by g++, so the
/// type in the library's signatures cannot depend on which compiler built the
/// caller. Where std::source_location exists, `current()` reads it; elsewhere
/// it reads the builtins every supported compiler has, which name the same
/// call site.
class source_location {
public:
#if defined(__cpp_lib_source_location)
    /// The site of the call whose default argument this is.
    static constexpr source_location current(std::source_location site = std::source_location::current()) noexcept
    {
        return source_location(site);
    }

    /// A std::source_location of one's own, passed on to the library.
    constexpr source_location(const std::source_location& site) noexcept  // NOLINT(google-explicit-constructor)
        : file_(site.file_name()), function_(site.function_name()), line_(site.line()), column_(site.column())
    {
    }
#else
    /// Clang before 15 with libstdc++: its builtins name the same site.
    /// The site of the call whose default argument this is.
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             const char* function = __builtin_FUNCTION(),
                                             std::uint_least32_t line = __builtin_LINE(),
                                             std::uint_least32_t column = __builtin_COLUMN()) noexcept
    {
        source_location site;
        site.file_ = file;
        site.function_ = function;
        site.line_ = line;
        site.column_ = column;
        return site;
    }
#endif

    /// An unknown site: empty file and function names, line 0.
    constexpr source_location() noexcept = default;

    /// The source file's name as the compiler was given it.
    [[nodiscard]] constexpr const char* file_name() const noexcept { return file_; }
    /// The enclosing function's name (its full signature with g++).
    [[nodiscard]] constexpr const char* function_name() const noexcept { return function_; }
    /// The line, counted from 1; 0 for an unknown site.
    [[nodiscard]] constexpr std::uint_least32_t line() const noexcept { return line_; }
    /// The column, counted from 1; 0 where the compiler does not say.
    [[nodiscard]] constexpr std::uint_least32_t column() const noexcept { return column_; }

private:
    const char* file_ = "";
    const char* function_ = "";
    std::uint_least32_t line_ = 0;
    std::uint_least32_t column_ = 0;
};

}  // namespace gradtape
