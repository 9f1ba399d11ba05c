#include <gradtape/random.hpp>

#include <random>

#include "diagnostics.hpp"
#include "dtypes.hpp"

namespace gradtape {

namespace {

// xtensor's xt::random uses one global engine, which threads would race on.
constexpr std::uint64_t default_seed = 5489;
thread_local std::mt19937_64 generator{default_seed};

template <dtype T, class Distribution>
basic_tensor<T> draw(const shape_type& shape, Distribution distribution)
{
    auto values = xt::xarray<T>::from_shape(shape);
    for (T& value : values) {
        value = distribution(generator);
    }
    return values;
}

}  // namespace

void set_seed(std::uint64_t seed)
{
    generator.seed(seed);
}

template <dtype T>
basic_tensor<T> random_normal(const shape_type& shape, T mean, T stddev, std::source_location site)
{
    if (!(stddev >= 0) || !std::isfinite(stddev) || !std::isfinite(mean)) {
        detail::fail<argument_error>("random_normal", site,
                                     "needs a finite mean and a finite stddev >= 0, got mean " + std::to_string(mean) +
                                         ", stddev " + std::to_string(stddev));
    }
    if (stddev == 0) {
        return fill<T>(shape, mean);
    }
    return draw<T>(shape, std::normal_distribution<T>(mean, stddev));
}

template <dtype T>
basic_tensor<T> random_uniform(const shape_type& shape, T low, T high, std::source_location site)
{
    if (!(low < high) || !std::isfinite(high - low)) {
        detail::fail<argument_error>("random_uniform", site,
                                     "needs finite bounds with low < high, got [" + std::to_string(low) + ", " +
                                         std::to_string(high) + ")");
    }
    return draw<T>(shape, std::uniform_real_distribution<T>(low, high));
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> random_normal(const shape_type&, T, T, std::source_location);                          \
    template basic_tensor<T> random_uniform(const shape_type&, T, T, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
