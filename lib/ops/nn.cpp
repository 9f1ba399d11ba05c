// Losses and other neural-network ops.
#include <gradtape/nn.hpp>

#include <xtensor/xmath.hpp>
#include <xtensor/xreducer.hpp>

#include "op.hpp"

namespace gradtape {

template <dtype T>
basic_tensor<T> l2_loss(const basic_tensor<T>& x, std::source_location site)
{
    xt::xarray<T> half_sum_of_squares(xt::sum(xt::square(x.value()))() / T(2));
    return detail::record_op<T>(
        "l2_loss", site, std::move(half_sum_of_squares), [x](const basic_tensor<T>& grad) { return grad * x; }, x);
}

#define GRADTAPE_INSTANTIATE(T) template basic_tensor<T> l2_loss(const basic_tensor<T>&, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
