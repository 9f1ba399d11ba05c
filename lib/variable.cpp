#include <gradtape/variable.hpp>

#include <xtensor/xnoalias.hpp>

#include "diagnostics.hpp"

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
    : basic_tensor<T>(basic_tensor<T>::share_node, detail::make_node(xt::xarray<T>(initial.value())))
{
    this->node_->variable =
        std::make_shared<const detail::variable_info>(detail::variable_info{name.empty() ? "Variable" : name, trainable});
    this->node_->is_variable_storage = true;
}

template <dtype T>
void basic_variable<T>::assign(const basic_tensor<T>& value, std::source_location site)
{
    check_same_shape("assign", site, *this, value);
    xt::noalias(storage()) = value.value();
}

template <dtype T>
void basic_variable<T>::assign_add(const basic_tensor<T>& delta, std::source_location site)
{
    check_same_shape("assign_add", site, *this, delta);
    xt::noalias(storage()) += delta.value();
}

template <dtype T>
void basic_variable<T>::assign_sub(const basic_tensor<T>& delta, std::source_location site)
{
    check_same_shape("assign_sub", site, *this, delta);
    xt::noalias(storage()) -= delta.value();
}

template class basic_variable<float>;
template class basic_variable<double>;

}  // namespace gradtape
