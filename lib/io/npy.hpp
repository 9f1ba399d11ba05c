// NumPy's .npy format (numpy.lib.format): an array written with its header,
// and a header parsed as strictly as NumPy reads it; the values converted to
// the type asked for only where each is a value of it (conversions.hpp).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>

#include <gradtape/source_location.hpp>
#include <gradtape/tensor.hpp>

#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "io/conversions.hpp"

#include <xtensor/xarray.hpp>
#include <xtensor/xmanipulation.hpp>
#include <xtensor/xnoalias.hpp>

namespace gradtape::detail {

static_assert(std::endian::native == std::endian::little, "the .npy writer assumes a little-endian machine");

// Keys of a .npz entry: the array's name and ".npy", at most a ZIP name's 65,535 bytes.
constexpr std::size_t longest_entry_name = std::numeric_limits<std::uint16_t>::max();

// The element types a .npy may hold here, by NumPy's descr: the library's
// dtypes, and the integers of labels, ids and generator states.
template <class T>
constexpr std::string_view npy_descr()
{
    if constexpr (std::is_same_v<T, float>) {
        return "<f4";
    } else if constexpr (std::is_same_v<T, double>) {
        return "<f8";
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
        return "<i4";
    } else if constexpr (std::is_same_v<T, std::int64_t>) {
        return "<i8";
    } else if constexpr (std::is_same_v<T, std::uint8_t>) {
        return "|u1";
    } else {
        static_assert(std::is_same_v<T, std::uint64_t>, "no .npy element type of this library");
        return "<u8";
    }
}

// Calls f with a value of the element type `descr` names; false when it names none of them.
template <class F>
bool with_element_type(std::string_view descr, F&& f)
{
    const auto visit = [&]<class E>() {
        if (descr == npy_descr<E>()) {
            f(E{});
            return true;
        }
        return false;
    };
    return visit.template operator()<float>() || visit.template operator()<double>() ||
           visit.template operator()<std::int32_t>() || visit.template operator()<std::int64_t>() ||
           visit.template operator()<std::uint8_t>() || visit.template operator()<std::uint64_t>();
}

template <class T>
std::string npy(const xt::xarray<T>& values)
{
    std::string shape = "(";
    for (std::size_t dim : values.shape()) {
        shape += std::to_string(dim) + ", ";
    }
    if (values.dimension() > 1) {
        shape.resize(shape.size() - 2);
    } else if (values.dimension() == 1) {
        shape.pop_back();
    }
    shape += ")";
    std::string header = "{'descr': '" + std::string(npy_descr<T>()) + "', 'fortran_order': False, 'shape': " + shape +
                         ", }";
    // Version 1.0 counts the header in 16 bits; 2.0 in 32 bits, as numpy
    // switches for very high-rank arrays.
    const bool wide = header.size() + 11 + 64 > std::numeric_limits<std::uint16_t>::max();
    const std::size_t prefix = wide ? 12 : 10;
    // Padded with spaces so that the data starts at a multiple of 64, ending in '\n'.
    header.append(63 - (prefix + header.size()) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += char(wide ? 2 : 1);
    out += char(0);
    for (std::size_t i = 0; i < (wide ? 4U : 2U); ++i) {
        out += char((header.size() >> (8 * i)) & 0xFF);
    }
    out += header;
    out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return out;
}

struct npy_array {
    std::string descr;
    bool fortran_order = false;
    shape_type shape;
    std::string_view data;
};

// The array in `bytes`, named `name` for errors: its header checked, its
// data the size its shape needs; else an argument_error naming op and name.
npy_array parse_npy(std::string_view op, std::string_view bytes, const std::string& name,
                    const source_location& site);

template <class T, class Stored>
void copy_into(const npy_array& array, xt::xarray<T>& target)
{
    std::size_t count = 1;
    for (std::size_t dim : array.shape) {
        count *= dim;
    }
    std::vector<Stored> stored(count);
    std::memcpy(stored.data(), array.data.data(), count * sizeof(Stored));
    if (!array.fortran_order) {
        std::copy(stored.begin(), stored.end(), target.data());
        return;
    }
    // Column-major data is the row-major array of the reversed shape, transposed.
    shape_type reversed(array.shape.rbegin(), array.shape.rend());
    auto columns = xt::xarray<T>::from_shape(reversed);
    std::copy(stored.begin(), stored.end(), columns.data());
    xt::noalias(target) = xt::transpose(columns);
}

// The array converted to T, whatever element type it holds.
template <class T>
void convert_into(const npy_array& array, xt::xarray<T>& target)
{
    with_element_type(array.descr, [&]<class Stored>(Stored) { copy_into<T, Stored>(array, target); });
}

// Why the array's values are not all values of T (conversions.hpp): its
// first misfit, or nothing.
template <class T>
std::optional<std::string> misfit(const npy_array& array)
{
    std::optional<std::string> found;
    with_element_type(array.descr, [&]<class Stored>(Stored) {
        const std::size_t count = array.data.size() / sizeof(Stored);
        for (std::size_t i = 0; i < count; ++i) {
            Stored value;
            std::memcpy(&value, array.data.data() + i * sizeof(Stored), sizeof(Stored));
            if (!fits<T>(value)) {
                std::ostringstream text;
                text << +value;
                found = "element " + std::to_string(i) + " (" + text.str() + ") is not a value of " +
                        dtype_name<T>();
                return;
            }
        }
    });
    return found;
}

// The array as T; a value that is not one is refused, naming the array.
template <class T>
xt::xarray<T> converted(const npy_array& array, std::string_view op, const std::string& name,
                        const source_location& site)
{
    if (const auto why = misfit<T>(array)) {
        fail<argument_error>(op, site, "array '" + printable(name) + "': " + *why);
    }
    auto values = xt::xarray<T>::from_shape(array.shape);
    convert_into(array, values);
    return values;
}

}  // namespace gradtape::detail
