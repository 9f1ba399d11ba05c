// The tutorial's data set, shared by both linear-regression samples and the
// test that checks them: 50 noisy points around a line.
#pragma once

#include <cstdint>

#include <gradtape/gradtape.hpp>

#include <xtensor/xview.hpp>

namespace tutorial {

struct data {
    gradtape::Tensor x;       // (50,)   linspace(-2, 4) + noise
    gradtape::Tensor y;       // (50,)   linspace(-6, 6) + noise
    gradtape::Tensor input;   // (50, 2) rows [1, x]: the first weight is the intercept
    gradtape::Tensor target;  // (50, 1) y as a column
};

inline data make_data(std::uint64_t seed)
{
    constexpr std::size_t examples = 50;
    gradtape::set_seed(seed);
    data d;
    d.x = gradtape::linspace<float>(-2, 4, examples) + gradtape::random_normal<float>({examples});
    d.y = gradtape::linspace<float>(-6, 6, examples) + gradtape::random_normal<float>({examples});
    xt::xarray<float> rows = xt::ones<float>({examples, std::size_t{2}});
    xt::view(rows, xt::all(), 1) = d.x.value();
    d.input = rows;
    d.target = gradtape::reshape(d.y, {-1, 1});
    return d;
}

// Initial weights as the tutorial draws them: normal, stddev 0.1, from the seeded generator.
inline gradtape::Variable make_weights()
{
    return gradtape::Variable(gradtape::random_normal<float>({2, 1}, 0.0f, 0.1f), "weights");
}

}  // namespace tutorial
