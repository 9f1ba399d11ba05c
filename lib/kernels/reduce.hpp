// The sum kernel of reductions (ops/reduce.cpp): a walk over x's runs
// (strided.hpp) that adds each into the output. A run along kept axes adds
// whole rows at the kernels' width (a bias's gradient summed over the batch);
// a run along a reduced axis is summed in eight interleaved partial sums (a
// softmax's row, a norm's features).
#pragma once

#include <array>
#include <cstddef>
#include <numeric>

#include "kernels/arithmetic.hpp"
#include "kernels/strided.hpp"

namespace gradtape::detail {

template <class T>
T sum_of(const T* x, std::size_t n)
{
    std::array<T, 8> partial{};
    std::size_t i = 0;
    for (; i + partial.size() <= n; i += partial.size()) {
        for (std::size_t k = 0; k < partial.size(); ++k) {
            partial[k] += x[i + k];
        }
    }
    T total = std::accumulate(partial.begin(), partial.end(), T(0));
    for (; i < n; ++i) {
        total += x[i];
    }
    return total;
}

// x summed into `out` over the axes where `kept` (x's shape, reduced axes
// as 1) is 1.
template <class T>
void sum_into(xt::xarray<T>& out, const xt::xarray<T>& x, const shape_type& kept)
{
    out.fill(T(0));
    T* to = out.data();
    const T* from = x.data();
    for_each_run(x.shape(), std::array{broadcast_strides(kept, x.shape())},
                         [&](std::size_t at, std::array<std::size_t, 1> into, std::size_t length,
                             std::array<std::size_t, 1> step) {
                             if (step[0] == 0) {
                                 to[into[0]] += sum_of(from + at, length);
                             } else {
                                 arithmetic_same(arithmetic::add, to + into[0], from + at,
                                                         to + into[0], length);
                             }
                         });
}

}  // namespace gradtape::detail
