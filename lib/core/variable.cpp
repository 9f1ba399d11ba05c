#include <gradtape/variable.hpp>

#include <xtensor/xnoalias.hpp>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {

namespace {

template <dtype T>
void check_same_shape(std::string_view op, const std::source_location& site, const basic_variable<T>& variable,
                      const basic_tensor<T>& value)
{
    if (value.shape() != variable.shape()) {
        detail::fail<shape_error>(op, site,
                                  "variable '" + variable.name() + "' has shape " +
                                      detail::format_shape(variable.shape()) + ", the value has shape " +
                                      detail::format_shape(value.shape()));
    }
}

}  // namespace

template <dtype T>
basic_variable<T>::basic_variable(const basic_tensor<T>& initial, std::string name, bool trainable)
    : basic_tensor<T>(basic_tensor<T>::share_node, detail::make_node(xt::xarray<T>()))
{
    auto info = std::make_shared<detail::variable_info>();
    info->name = name.empty() ? "Variable" : std::move(name);
    info->trainable = trainable;
    info->shape = initial.shape();
    if (detail::captures_recording.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        detail::note_variable_made(*info);
    }
    detail::tensor_node<T>& storage = *this->node_;
    storage.variable = std::move(info);
    storage.is_variable_storage = true;
    storage.current =
        detail::make_bookkept<detail::tensor_node<T>>(xt::xarray<T>(detail::tensor_access::value(initial)), storage.id, storage.variable, false);
}

template <dtype T>
void basic_variable<T>::assign(const basic_tensor<T>& value, std::source_location site)
{
    check_same_shape("assign", site, *this, value);
    detail::write_variable(*this, site, [&](xt::xarray<T>& current) { xt::noalias(current) = value.value(); });
}

template <dtype T>
void basic_variable<T>::assign_add(const basic_tensor<T>& delta, std::source_location site)
{
    check_same_shape("assign_add", site, *this, delta);
    detail::write_variable(*this, site, [&](xt::xarray<T>& current) { xt::noalias(current) += delta.value(); });
}

template <dtype T>
void basic_variable<T>::assign_sub(const basic_tensor<T>& delta, std::source_location site)
{
    check_same_shape("assign_sub", site, *this, delta);
    detail::write_variable(*this, site, [&](xt::xarray<T>& current) { xt::noalias(current) -= delta.value(); });
}

#define GRADTAPE_INSTANTIATE(T) template class basic_variable<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
