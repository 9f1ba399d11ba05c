#include <gradtape/random.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <random>
#include <sstream>

#include "core/capture_core.hpp"
#include "core/diagnostics.hpp"
#include "core/dtypes.hpp"
#include "core/random_draws.hpp"
#include "core/tensor_access.hpp"

namespace gradtape {

namespace {

// xtensor's xt::random uses one global engine, which threads would race on.
constexpr std::uint64_t default_seed = 5489;
thread_local std::mt19937_64 generator{default_seed};

template <class T, class Distribution>
void draw_into(T* out, std::size_t count, Distribution& distribution)
{
    auto& engine = generator;
    for (std::size_t i = 0; i < count; ++i) {
        out[i] = distribution(engine);
    }
}

// A capture must know which values were drawn (Note [Reads while capturing]).
template <dtype T>
basic_tensor<T> drawn_tensor(xt::xarray<T>&& values, std::string_view op, const source_location& site)
{
    basic_tensor<T> drawn(std::move(values));
    if (detail::captures_recording.load(std::memory_order_relaxed) != 0) [[unlikely]] {
        detail::note_random_draw(detail::tensor_access::node(drawn), op, site);
    }
    return drawn;
}

template <dtype T, class Distribution>
basic_tensor<T> draw(std::string_view op, const source_location& site, const shape_type& shape,
                     Distribution distribution)
{
    detail::check_allocatable(op, site, shape, sizeof(T));
    auto values = xt::xarray<T>::from_shape(shape);
    draw_into(values.data(), values.size(), distribution);
    return drawn_tensor(std::move(values), op, site);
}

}  // namespace

template <dtype T>
void detail::draw_uniform(T* out, std::size_t count, T low, T high)
{
    std::uniform_real_distribution<T> distribution(low, high);
    draw_into(out, count, distribution);
}

void set_seed(std::uint64_t seed)
{
    generator.seed(seed);
}

// The engine's own text form, as numbers: its words and position.
std::vector<std::uint64_t> random_state()
{
    std::stringstream text;
    text << generator;
    std::vector<std::uint64_t> state;
    for (std::uint64_t word = 0; text >> word;) {
        state.push_back(word);
    }
    return state;
}

bool is_random_state(const std::vector<std::uint64_t>& state)
{
    // The engine's words, then its position among them, at most their count.
    // Words whose only bits are the lowest 31 of the first (which the
    // recurrence never reads) would draw zeros for ever: no seed gives them.
    constexpr std::size_t words = std::mt19937_64::state_size;
    if (state.size() != words + 1 || state.back() > words) {
        return false;
    }
    return (state[0] >> std::mt19937_64::mask_bits) != 0 ||
           std::any_of(state.begin() + 1, state.end() - 1, [](std::uint64_t word) { return word != 0; });
}

void set_random_state(const std::vector<std::uint64_t>& state, source_location site)
{
    const std::size_t expected = random_state().size();
    const bool valid = is_random_state(state);
    std::stringstream text;
    for (std::uint64_t word : state) {
        text << word << ' ';
    }
    std::mt19937_64 restored;
    text >> restored;
    if (!valid || text.fail()) {
        detail::fail<argument_error>("set_random_state", site,
                                     "needs the " + std::to_string(expected) +
                                         " numbers random_state() gives, got " + std::to_string(state.size()) +
                                         (state.size() == expected ? " that no generator state has" : ""));
    }
    generator = restored;
}

template <dtype T>
basic_tensor<T> random_normal(const shape_type& shape, T mean, T stddev, source_location site)
{
    if (!(stddev >= 0) || !std::isfinite(stddev) || !std::isfinite(mean)) {
        detail::fail<argument_error>("random_normal", site,
                                     "needs a finite mean and a finite stddev >= 0, got mean " + std::to_string(mean) +
                                         ", stddev " + std::to_string(stddev));
    }
    if (stddev == 0) {
        return fill<T>(shape, mean, site);
    }
    return draw<T>("random_normal", site, shape, std::normal_distribution<T>(mean, stddev));
}

template <dtype T>
basic_tensor<T> random_uniform(const shape_type& shape, T low, T high, source_location site)
{
    if (!(low < high) || !std::isfinite(high - low)) {
        detail::fail<argument_error>("random_uniform", site,
                                     "needs finite bounds with low < high, got [" + std::to_string(low) + ", " +
                                         std::to_string(high) + ")");
    }
    return draw<T>("random_uniform", site, shape, std::uniform_real_distribution<T>(low, high));
}

namespace {

struct fans {
    double in;
    double out;
};

fans fans_of(const shape_type& shape)
{
    if (shape.empty()) {
        return {1, 1};
    }
    if (shape.size() == 1) {
        return {double(shape[0]), double(shape[0])};
    }
    double receptive_field = 1;
    for (std::size_t i = 0; i + 2 < shape.size(); ++i) {
        receptive_field *= double(shape[i]);
    }
    return {double(shape[shape.size() - 2]) * receptive_field, double(shape.back()) * receptive_field};
}

template <dtype T>
basic_tensor<T> symmetric_uniform(std::string_view op, const source_location& site, const shape_type& shape,
                                  double limit)
{
    return draw<T>(op, site, shape, std::uniform_real_distribution<T>(T(-limit), T(limit)));
}

// Keras's truncated normal: draws beyond two standard deviations are drawn
// again, and the scale makes the result's stddev the one asked for.
template <dtype T>
basic_tensor<T> truncated_normal(std::string_view op, const source_location& site, const shape_type& shape,
                                 double stddev)
{
    constexpr double truncation_correction = 0.87962566103423978;
    std::normal_distribution<T> normal(T(0), T(stddev / truncation_correction));
    const T bound = T(2 * stddev / truncation_correction);
    return draw<T>(op, site, shape, [&](std::mt19937_64& engine) {
        T value;
        do {
            value = normal(engine);
        } while (std::abs(value) > bound);
        return value;
    });
}

}  // namespace

template <dtype T>
basic_tensor<T> glorot_uniform(const shape_type& shape, source_location site)
{
    const fans f = fans_of(shape);
    return symmetric_uniform<T>("glorot_uniform", site, shape, std::sqrt(6 / (f.in + f.out)));
}

template <dtype T>
basic_tensor<T> glorot_normal(const shape_type& shape, source_location site)
{
    const fans f = fans_of(shape);
    return truncated_normal<T>("glorot_normal", site, shape, std::sqrt(2 / (f.in + f.out)));
}

template <dtype T>
basic_tensor<T> he_uniform(const shape_type& shape, source_location site)
{
    return symmetric_uniform<T>("he_uniform", site, shape, std::sqrt(6 / fans_of(shape).in));
}

template <dtype T>
basic_tensor<T> he_normal(const shape_type& shape, source_location site)
{
    return truncated_normal<T>("he_normal", site, shape, std::sqrt(2 / fans_of(shape).in));
}

// Modified Gram-Schmidt, twice over (once leaves float64 rounding of the
// order of the condition number), of the columns of a tall normal matrix:
// the Q of its QR factors with R's diagonal positive, as LAPACK's with the sign fixed.
template <dtype T>
basic_tensor<T> orthogonal(const shape_type& shape, source_location site)
{
    if (shape.size() < 2) {
        detail::fail<argument_error>("orthogonal", site,
                                     "needs a shape of rank 2 or more, got " + detail::format_shape(shape));
    }
    detail::check_allocatable("orthogonal", site, shape, sizeof(T));
    const std::size_t cols = shape.back();
    const std::size_t rows =
        std::accumulate(shape.begin(), shape.end() - 1, std::size_t(1), std::multiplies<std::size_t>());
    const std::size_t tall = std::max(rows, cols);
    const std::size_t wide = std::min(rows, cols);
    std::vector<double> q(tall * wide);
    std::normal_distribution<double> normal(0, 1);
    draw_into(q.data(), q.size(), normal);
    // q is column-major [tall, wide]: column j at q[j * tall].
    for (int pass = 0; pass < 2; ++pass) {
        for (std::size_t j = 0; j < wide; ++j) {
            double* column = q.data() + j * tall;
            for (std::size_t k = 0; k < j; ++k) {
                const double* earlier = q.data() + k * tall;
                double dot = 0;
                for (std::size_t i = 0; i < tall; ++i) {
                    dot += earlier[i] * column[i];
                }
                for (std::size_t i = 0; i < tall; ++i) {
                    column[i] -= dot * earlier[i];
                }
            }
            double norm = 0;
            for (std::size_t i = 0; i < tall; ++i) {
                norm += column[i] * column[i];
            }
            norm = std::sqrt(norm);
            for (std::size_t i = 0; i < tall; ++i) {
                column[i] /= norm;
            }
        }
    }
    auto values = xt::xarray<T>::from_shape(shape);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            values.data()[r * cols + c] = T(rows >= cols ? q[c * tall + r] : q[r * tall + c]);
        }
    }
    return drawn_tensor(std::move(values), "orthogonal", site);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> random_normal(const shape_type&, T, T, source_location);                          \
    template basic_tensor<T> random_uniform(const shape_type&, T, T, source_location);                         \
    template basic_tensor<T> glorot_uniform(const shape_type&, source_location);                                                     \
    template basic_tensor<T> glorot_normal(const shape_type&, source_location);                                                      \
    template basic_tensor<T> he_uniform(const shape_type&, source_location);                                                         \
    template basic_tensor<T> he_normal(const shape_type&, source_location);                                   \
    template basic_tensor<T> orthogonal(const shape_type&, source_location);                                  \
    template void detail::draw_uniform(T*, std::size_t, T, T);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
