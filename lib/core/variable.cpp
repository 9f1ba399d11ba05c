#include <gradtape/variable.hpp>

#include <xtensor/xnoalias.hpp>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {

namespace {

template <dtype T>
void check_same_shape(std::string_view op, const source_location& site, const basic_variable<T>& variable,
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
        detail::make_bookkept<detail::tensor_node<T>>(xt::xarray<T>(detail::tensor_access::value(initial)),
                                                      storage.id, storage.variable, false);
}

namespace {

enum class write_kind { assign, add, subtract };

// assign, assign_add or assign_sub as a replay step: at every replay, the
// value its slot holds then goes into the variable.
template <dtype T>
struct recorded_assign final : detail::replay_step {
    basic_variable<T> variable;
    detail::slot_index value;
    write_kind kind;

    recorded_assign(const basic_variable<T>& into, write_kind how) : variable(into), value(0), kind(how) {}
    void run(std::span<detail::replay_slot> slots) override;
};

template <dtype T>
void write(const basic_variable<T>& variable, const xt::xarray<T>& value, write_kind kind,
           const source_location& site)
{
    detail::write_variable(variable, site, [&](xt::xarray<T>& current) {
        switch (kind) {
        case write_kind::assign:
            xt::noalias(current) = value;
            break;
        case write_kind::add:
            xt::noalias(current) += value;
            break;
        case write_kind::subtract:
            xt::noalias(current) -= value;
            break;
        }
    });
}

template <dtype T>
void recorded_assign<T>::run(std::span<detail::replay_slot> slots)
{
    write(variable, detail::slot_value<T>(slots[value]), kind, site);
}

template <dtype T>
void write_checked(const basic_variable<T>& variable, const basic_tensor<T>& value, write_kind kind,
                   std::string_view op, const source_location& site)
{
    check_same_shape(op, site, variable, value);
    detail::capture_session* session = detail::active_capture();
    if (session) [[unlikely]] {
        auto step = std::make_unique<recorded_assign<T>>(variable, kind);
        step->name = op;
        step->site = site;
        const auto& given = detail::tensor_access::node(value);
        step->value = detail::input_slot(*session, detail::read(given), op, site, given->is_variable_storage);
        step->reads.push_back(step->value);
        detail::add_step(*session, std::move(step));
    }
    const detail::recorded_write recorded(session);
    write(variable, detail::tensor_access::value(value), kind, site);
}

}  // namespace

template <dtype T>
void basic_variable<T>::assign(const basic_tensor<T>& value, source_location site)
{
    write_checked(*this, value, write_kind::assign, "assign", site);
}

template <dtype T>
void basic_variable<T>::assign_add(const basic_tensor<T>& delta, source_location site)
{
    write_checked(*this, delta, write_kind::add, "assign_add", site);
}

template <dtype T>
void basic_variable<T>::assign_sub(const basic_tensor<T>& delta, source_location site)
{
    write_checked(*this, delta, write_kind::subtract, "assign_sub", site);
}

#define GRADTAPE_INSTANTIATE(T) template class basic_variable<T>;
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
