#include <gradtape/tensor.hpp>

#include <atomic>
#include <new>
#include <ostream>

#include <xtensor/xadapt.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xio.hpp>

#include "core/bookkeeping.hpp"
#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/static_tls.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {
namespace detail {

// Ids are never reused, so that a tape can keep the id of a tensor that has
// died. Each thread takes a block of 2^32 at a time: no atomic per tensor.
tensor_id new_tensor_id() noexcept
{
    static std::atomic<std::uint64_t> next_block{1};
    thread_local std::uint64_t next GRADTAPE_STATIC_TLS = 0;
    thread_local std::uint64_t block_end GRADTAPE_STATIC_TLS = 0;
    if (next == block_end) {
        next = next_block.fetch_add(1, std::memory_order_relaxed) << 32;
        block_end = next + (std::uint64_t{1} << 32);
    }
    return next++;
}

template <class T>
std::shared_ptr<tensor_node<T>> make_node(xt::xarray<T>&& value)
{
    return make_bookkept<tensor_node<T>>(std::move(value), new_tensor_id(), nullptr, false);
}

template <class T>
std::shared_ptr<tensor_node<T>> make_node_of_shape(const shape_type& shape)
{
    auto node = make_bookkept<tensor_node<T>>();
    node->id = new_tensor_id();
    node->value.resize(shape);
    return node;
}

template <class T>
std::shared_ptr<tensor_node<T>> read_variable(const tensor_node<T>& storage)
{
    std::shared_ptr<tensor_node<T>> current;
    {
        const std::lock_guard lock(storage.variable->mutex);
        current = storage.current;
    }
    if (captures_recording.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        note_variable_read(storage, current);
    }
    return current;
}

}  // namespace detail

template <dtype T>
std::ostream& operator<<(std::ostream& out, const basic_tensor<T>& tensor)
{
    if (!tensor.defined()) {
        return out << "<undefined tensor>";
    }
    const auto& value = tensor.value();
    const auto& node = *detail::tensor_access::node(tensor);
    out << '<' << detail::dtype_name<T>();
    if (node.variable) {
        out << " variable '" << node.variable->name << "'";
    } else {
        out << " tensor";
    }
    out << ", shape " << detail::format_shape(tensor.shape());
    if (tensor.size() > 1000) {
        out << ", " << tensor.size() << " elements";
    }
    return out << ">\n" << value;
}

template <printable_element T>
std::ostream& operator<<(std::ostream& out, const xt::xarray<T>& value)
{
    // An adaptor is not an xt::xarray, so xio's operator prints it.
    return out << xt::adapt(value.data(), value.size(), xt::no_ownership(), value.shape());
}
#define GRADTAPE_INSTANTIATE_PRINTER(T) template std::ostream& operator<<(std::ostream&, const xt::xarray<T>&);
GRADTAPE_FOR_EACH_PRINTABLE(GRADTAPE_INSTANTIATE_PRINTER)
#undef GRADTAPE_INSTANTIATE_PRINTER

template <dtype T>
basic_tensor<T> fill(const shape_type& shape, T value, source_location site)
{
    detail::check_allocatable("fill", site, shape, sizeof(T));
    try {
        auto filled = xt::xarray<T>::from_shape(shape);
        filled.fill(value);
        return filled;
    } catch (const std::bad_alloc&) {
        detail::fail_out_of_memory("fill", site, shape, detail::dtype_name<T>(), sizeof(T));
    }
}

template <dtype T>
basic_tensor<T> zeros(const shape_type& shape, source_location site)
{
    return fill<T>(shape, T(0), site);
}

template <dtype T>
basic_tensor<T> ones(const shape_type& shape, source_location site)
{
    return fill<T>(shape, T(1), site);
}

template <dtype T>
basic_tensor<T> linspace(T start, T stop, std::size_t n, source_location site)
{
    if (n == 0) {
        detail::fail<argument_error>("linspace", site, "needs at least one point (n = 0)");
    }
    return xt::linspace<T>(start, stop, n);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template std::shared_ptr<detail::tensor_node<T>> detail::make_node(xt::xarray<T>&&);                            \
    template std::shared_ptr<detail::tensor_node<T>> detail::make_node_of_shape(const shape_type&);                 \
    template std::shared_ptr<detail::tensor_node<T>> detail::read_variable(const detail::tensor_node<T>&);          \
    template std::ostream& operator<<(std::ostream&, const basic_tensor<T>&);                                       \
    template basic_tensor<T> fill(const shape_type&, T, source_location);                                      \
    template basic_tensor<T> zeros(const shape_type&, source_location);                                        \
    template basic_tensor<T> ones(const shape_type&, source_location);                                         \
    template basic_tensor<T> linspace(T, T, std::size_t, source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape

std::ostream& xt::operator<<(std::ostream& out, const gradtape::shape_type& shape)
{
    return out << gradtape::detail::format_shape(shape);
}
