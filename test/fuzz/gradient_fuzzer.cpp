// A seeded random-program fuzzer for gradients: it composes programs from the
// differentiable ops on random shapes that broadcast against each other, and
// checks the tape's gradient of each program (and, for every fourth, the
// second derivative) against central finite differences in float64.
//
//   gradient_fuzzer [programs] [seed]      (defaults: 2000 programs, seed 1)
//
// A failure prints the seed and the program, op by op with its shapes, so
// that `gradient_fuzzer 1 <seed>` replays it alone.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <gradtape/gradtape.hpp>

#include <xtensor/xsort.hpp>

namespace gt = gradtape;
using gt::Tensor64;

namespace {

using pool_type = std::vector<Tensor64>;
using step_type = std::function<Tensor64(const pool_type&)>;

std::string shape_text(const Tensor64& t)
{
    std::ostringstream out;
    out << '(';
    for (std::size_t i = 0; i < t.dimension(); ++i) {
        out << (i ? ", " : "") << t.shape()[i];
    }
    out << (t.dimension() == 1 ? ",)" : ")");
    return out.str();
}

// A program: its inputs, and steps that each append one value to the pool
// (which starts as the inputs). Its output weighs every value of the pool, so
// that every path through the program reaches the gradient.
struct program {
    std::vector<Tensor64> inputs;
    std::vector<step_type> steps;
    std::vector<std::string> listing;

    Tensor64 operator()(const std::vector<Tensor64>& at) const
    {
        pool_type pool = at;
        for (const auto& step : steps) {
            pool.push_back(step(pool));
        }
        Tensor64 total = 0.0;
        double weight = 0.5;
        for (const auto& value : pool) {
            xt::xarray<double> weights = weight + 0.37 * xt::arange<double>(double(value.size()));
            weights.reshape(value.shape());
            total = total + gt::reduce_sum(value * Tensor64(weights));
            weight += 0.25;
        }
        return total;
    }
};

class program_builder {
public:
    explicit program_builder(std::uint64_t seed) : random_(seed) { gt::set_seed(seed); }

    program build()
    {
        program p;
        const gt::shape_type base = random_shape();
        const std::size_t inputs = pick(1, 3);
        for (std::size_t i = 0; i < inputs; ++i) {
            p.inputs.push_back(gt::random_uniform<double>(broadcastable_from(base), -1.5, 1.5));
            p.listing.push_back("input " + std::to_string(i) + " " + shape_text(p.inputs.back()));
        }
        pool_ = p.inputs;
        const std::size_t length = pick(3, 8);
        for (int attempts = 0; p.steps.size() < length && attempts < 200; ++attempts) {
            auto [name, step] = candidate();
            if (!step) {
                continue;
            }
            Tensor64 value;
            try {
                value = step(pool_);
            } catch (const gt::error&) {
                continue;  // a combination of shapes the op refuses: try another
            }
            // Keep values where float64 finite differences are accurate.
            if (!xt::all(xt::isfinite(value.value())) || value.size() == 0 ||
                xt::amax(xt::abs(value.value()))() > 50) {
                continue;
            }
            p.listing.push_back("v" + std::to_string(pool_.size()) + " = " + name + " -> " + shape_text(value));
            p.steps.push_back(std::move(step));
            pool_.push_back(std::move(value));
        }
        return p;
    }

private:
    std::size_t pick(std::size_t low, std::size_t high)
    {
        return std::uniform_int_distribution<std::size_t>(low, high)(random_);
    }
    bool coin() { return pick(0, 1) == 1; }

    gt::shape_type random_shape()
    {
        gt::shape_type shape(pick(1, 3));
        for (auto& dim : shape) {
            dim = pick(2, 4);
        }
        return shape;
    }

    // A shape that broadcasts to `base`: leading dimensions dropped, others set to 1.
    gt::shape_type broadcastable_from(const gt::shape_type& base)
    {
        gt::shape_type shape(base.begin() + std::ptrdiff_t(pick(0, base.size())), base.end());
        for (auto& dim : shape) {
            dim = pick(0, 3) == 0 ? 1 : dim;
        }
        return shape;
    }

    std::size_t operand() { return pick(0, pool_.size() - 1); }

    // An axis of `t` (possibly negative), or -1 for "all axes" when allowed.
    std::ptrdiff_t axis_of(const Tensor64& t)
    {
        const auto rank = std::ptrdiff_t(t.dimension());
        const auto axis = std::ptrdiff_t(pick(0, std::size_t(rank - 1)));
        return coin() ? axis : axis - rank;
    }

    // The smallest distance from x's elements to `kink`: ops with a kink are
    // used only away from it, where finite differences hold.
    static double distance_to(const Tensor64& x, double kink) { return xt::amin(xt::abs(x.value() - kink))(); }

    std::pair<std::string, step_type> candidate()
    {
        const std::size_t a = operand();
        const std::size_t b = operand();
        const Tensor64& x = pool_[a];
        const Tensor64& y = pool_[b];
        const std::string va = "v" + std::to_string(a);
        const std::string vb = "v" + std::to_string(b);
        const double low = x.size() ? xt::amin(x.value())() : 0;
        switch (pick(0, 37)) {
        case 0: return {"negative(" + va + ")", [a](const pool_type& p) { return gt::negative(p[a]); }};
        case 1: return {"square(" + va + ")", [a](const pool_type& p) { return gt::square(p[a]); }};
        case 2: return {"tanh(" + va + ")", [a](const pool_type& p) { return gt::tanh(p[a]); }};
        case 3: return {"sigmoid(" + va + ")", [a](const pool_type& p) { return gt::sigmoid(p[a]); }};
        case 4: return {"sin(" + va + ")", [a](const pool_type& p) { return gt::sin(p[a]); }};
        case 5: return {"cos(" + va + ")", [a](const pool_type& p) { return gt::cos(p[a]); }};
        case 6: return {"exp(" + va + ")", [a](const pool_type& p) { return gt::exp(p[a]); }};
        case 7: return {"expm1(" + va + ")", [a](const pool_type& p) { return gt::expm1(p[a]); }};
        case 8: return {"softplus(" + va + ")", [a](const pool_type& p) { return gt::softplus(p[a]); }};
        case 9: return {"elu(" + va + ")", [a](const pool_type& p) { return gt::elu(p[a]); }};
        case 10:
            if (low <= 0.1) {
                return {};
            }
            switch (pick(0, 3)) {
            case 0: return {"log(" + va + ")", [a](const pool_type& p) { return gt::log(p[a]); }};
            case 1: return {"sqrt(" + va + ")", [a](const pool_type& p) { return gt::sqrt(p[a]); }};
            case 2: return {"rsqrt(" + va + ")", [a](const pool_type& p) { return gt::rsqrt(p[a]); }};
            default: return {"pow(" + va + ", 1.5)", [a](const pool_type& p) { return gt::pow(p[a], 1.5); }};
            }
        case 11:
            if (low <= -0.9) {
                return {};
            }
            return {"log1p(" + va + ")", [a](const pool_type& p) { return gt::log1p(p[a]); }};
        case 12: return {"pow(" + va + ", 3)", [a](const pool_type& p) { return gt::pow(p[a], 3.0); }};
        case 13:
            if (distance_to(x, 0) < 1e-3) {
                return {};
            }
            switch (pick(0, 2)) {
            case 0: return {"abs(" + va + ")", [a](const pool_type& p) { return gt::abs(p[a]); }};
            case 1: return {"relu(" + va + ")", [a](const pool_type& p) { return gt::relu(p[a]); }};
            default:
                return {"leaky_relu(" + va + ", 0.3)", [a](const pool_type& p) { return gt::leaky_relu(p[a], 0.3); }};
            }
        case 14:
            if (distance_to(x, -0.5) < 1e-3 || distance_to(x, 0.7) < 1e-3) {
                return {};
            }
            return {"clip_by_value(" + va + ", -0.5, 0.7)",
                    [a](const pool_type& p) { return gt::clip_by_value(p[a], -0.5, 0.7); }};
        case 15: return {"add(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return p[a] + p[b]; }};
        case 16: return {"subtract(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return p[a] - p[b]; }};
        case 17: return {"multiply(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return p[a] * p[b]; }};
        case 18:
            if (distance_to(y, 0) < 0.3) {
                return {};
            }
            return {"divide(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return p[a] / p[b]; }};
        case 19:
            if (low <= 0.1) {
                return {};
            }
            return {"pow(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return gt::pow(p[a], p[b]); }};
        case 20: {
            if (a == b) {
                return {};
            }
            // Away from ties, where maximum and minimum have a derivative.
            try {
                if (xt::amin(xt::abs(x.value() - y.value()))() < 1e-3) {
                    return {};
                }
            } catch (const std::exception&) {
                return {};
            }
            if (coin()) {
                return {"maximum(" + va + ", " + vb + ")",
                        [a, b](const pool_type& p) { return gt::maximum(p[a], p[b]); }};
            }
            return {"minimum(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return gt::minimum(p[a], p[b]); }};
        }
        case 21: {
            const std::size_t c = operand();
            if (distance_to(pool_[c], 0) < 1e-3) {
                return {};
            }
            return {"where(greater(v" + std::to_string(c) + ", 0), " + va + ", " + vb + ")",
                    [a, b, c](const pool_type& p) { return gt::where(gt::greater(p[c], 0.0), p[a], p[b]); }};
        }
        case 22:
        case 23: {
            if (x.dimension() == 0) {
                return {};
            }
            const gt::axes_type axes{axis_of(x)};
            const bool keepdims = coin();
            const std::string args = va + ", {" + std::to_string(axes[0]) + "}, " + (keepdims ? "true" : "false") + ")";
            switch (pick(0, 6)) {
            case 0: return {"reduce_sum(" + args, [=](const pool_type& p) { return gt::reduce_sum(p[a], axes, keepdims); }};
            case 1: return {"reduce_mean(" + args, [=](const pool_type& p) { return gt::reduce_mean(p[a], axes, keepdims); }};
            case 2: return {"reduce_max(" + args, [=](const pool_type& p) { return gt::reduce_max(p[a], axes, keepdims); }};
            case 3: return {"reduce_min(" + args, [=](const pool_type& p) { return gt::reduce_min(p[a], axes, keepdims); }};
            case 4: return {"reduce_prod(" + args, [=](const pool_type& p) { return gt::reduce_prod(p[a], axes, keepdims); }};
            case 5:
                return {"reduce_logsumexp(" + args,
                        [=](const pool_type& p) { return gt::reduce_logsumexp(p[a], axes, keepdims); }};
            default:
                return {"reduce_variance(" + args,
                        [=](const pool_type& p) { return gt::reduce_variance(p[a], axes, keepdims); }};
            }
        }
        case 24:
            switch (pick(0, 2)) {
            case 0: return {"reduce_sum(" + va + ")", [a](const pool_type& p) { return gt::reduce_sum(p[a]); }};
            case 1: return {"reduce_max(" + va + ")", [a](const pool_type& p) { return gt::reduce_max(p[a]); }};
            default: return {"l2_loss(" + va + ")", [a](const pool_type& p) { return gt::l2_loss(p[a]); }};
            }
        case 25: {
            gt::permutation_type perm(x.dimension());
            std::iota(perm.begin(), perm.end(), 0);
            std::shuffle(perm.begin(), perm.end(), random_);
            std::string text = "transpose(" + va + ", {";
            for (auto axis : perm) {
                text += std::to_string(axis) + ",";
            }
            return {text + "})", [a, perm](const pool_type& p) { return gt::transpose(p[a], perm); }};
        }
        case 26:
            if (coin()) {
                return {"reshape(" + va + ", {-1})", [a](const pool_type& p) { return gt::reshape(p[a], {-1}); }};
            }
            return {"reshape(" + va + ", {1, -1, 1})", [a](const pool_type& p) { return gt::reshape(p[a], {1, -1, 1}); }};
        case 27: {
            const auto axis = std::ptrdiff_t(pick(0, x.dimension()));
            return {"expand_dims(" + va + ", " + std::to_string(axis) + ")",
                    [a, axis](const pool_type& p) { return gt::expand_dims(p[a], axis); }};
        }
        case 28: return {"squeeze(" + va + ")", [a](const pool_type& p) { return gt::squeeze(p[a]); }};
        case 29: {
            if (x.dimension() == 0) {
                return {};
            }
            std::vector<std::size_t> begin;
            std::vector<std::ptrdiff_t> size;
            std::string text = "slice(" + va + ", begin/size";
            for (std::size_t dim : x.shape()) {
                begin.push_back(pick(0, dim - 1));
                size.push_back(coin() ? -1 : std::ptrdiff_t(pick(1, dim - begin.back())));
                text += " " + std::to_string(begin.back()) + "/" + std::to_string(size.back());
            }
            return {text + ")", [a, begin, size](const pool_type& p) { return gt::slice(p[a], begin, size); }};
        }
        case 30: {
            if (x.dimension() == 0) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(x);
            const std::string text = "(" + va + ", " + vb + ", axis " + std::to_string(axis) + ")";
            if (coin()) {
                return {"concat" + text, [a, b, axis](const pool_type& p) { return gt::concat({p[a], p[b]}, axis); }};
            }
            return {"stack" + text, [a, b, axis](const pool_type& p) { return gt::stack({p[a], p[b]}, axis); }};
        }
        case 31: {
            std::vector<std::size_t> multiples;
            std::string text = "tile(" + va + ",";
            for (std::size_t i = 0; i < x.dimension(); ++i) {
                multiples.push_back(pick(1, 2));
                text += " " + std::to_string(multiples.back());
            }
            return {text + ")", [a, multiples](const pool_type& p) { return gt::tile(p[a], multiples); }};
        }
        case 32: {
            gt::shape_type shape{pick(1, 3)};
            shape.insert(shape.end(), x.shape().begin(), x.shape().end());
            return {"broadcast_to(" + va + ", leading " + std::to_string(shape[0]) + ")",
                    [a, shape](const pool_type& p) { return gt::broadcast_to(p[a], shape); }};
        }
        case 33: {
            if (x.dimension() == 0) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(x);
            const std::size_t dim = x.shape()[std::size_t(axis < 0 ? axis + std::ptrdiff_t(x.dimension()) : axis)];
            xt::xarray<std::int64_t> indices = xt::zeros<std::int64_t>({pick(1, 4)});
            for (auto& index : indices) {
                index = std::int64_t(pick(0, dim - 1));  // repeats included
            }
            if (coin()) {
                return {"gather(" + va + ", axis " + std::to_string(axis) + ")",
                        [a, axis, indices](const pool_type& p) { return gt::gather(p[a], indices, axis); }};
            }
            return {"split(" + va + ")[0], axis " + std::to_string(axis),
                    [a, axis, dim](const pool_type& p) {
                        return gt::split(p[a], {dim / 2 + 1, dim - dim / 2 - 1}, axis).front();
                    }};
        }
        case 34: {
            if (x.dimension() < 2) {
                return {};
            }
            if (coin()) {
                return {"matmul(" + va + ", " + va + ", transpose_a)",
                        [a](const pool_type& p) { return gt::matmul(p[a], p[a], {.transpose_a = true}); }};
            }
            return {"matmul(" + va + ", " + vb + ", transpose_b)",
                    [a, b](const pool_type& p) { return gt::matmul(p[a], p[b], {.transpose_b = true}); }};
        }
        case 35: {
            if (y.dimension() < 1) {
                return {};
            }
            return {"matmul(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return gt::matmul(p[a], p[b]); }};
        }
        case 36: {
            if (x.dimension() == 0) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(x);
            const std::string args = va + ", " + std::to_string(axis) + ")";
            if (coin()) {
                return {"softmax(" + args, [a, axis](const pool_type& p) { return gt::softmax(p[a], axis); }};
            }
            return {"log_softmax(" + args, [a, axis](const pool_type& p) { return gt::log_softmax(p[a], axis); }};
        }
        default: {
            if (x.dimension() == 0 || x.shape() != y.shape()) {
                return {};
            }
            switch (pick(0, 2)) {
            case 0:
                return {"softmax_cross_entropy_with_logits(softmax(" + vb + "), " + va + ")",
                        [a, b](const pool_type& p) {
                            return gt::softmax_cross_entropy_with_logits(gt::softmax(p[b]), p[a]);
                        }};
            case 1:
                return {"sigmoid_cross_entropy_with_logits(sigmoid(" + vb + "), " + va + ")",
                        [a, b](const pool_type& p) {
                            return gt::sigmoid_cross_entropy_with_logits(gt::sigmoid(p[b]), p[a]);
                        }};
            default:
                return {"mean_squared_error(" + vb + ", " + va + ")",
                        [a, b](const pool_type& p) { return gt::mean_squared_error(p[b], p[a]); }};
            }
        }
        }
    }

    std::mt19937_64 random_;
    pool_type pool_;
};

// The tape's second derivative, checked as the gradient of a weighted sum of
// first gradients computed on an inner tape.
Tensor64 weighted_first_gradients(const program& p, const std::vector<Tensor64>& at)
{
    gt::GradientTape tape;
    for (const auto& input : at) {
        tape.watch(input);
    }
    const auto gradients = tape.gradient(p(at), at, {}, gt::unconnected_gradients::zero);
    Tensor64 total = 0.0;
    for (std::size_t i = 0; i < gradients.size(); ++i) {
        total = total + gt::reduce_sum(gradients[i] * gradients[i]) * (1.0 + double(i));
    }
    return total;
}

// Whether the tape and the finite difference agree at the worst element.
// Central differences lose about eps * |f| / step to rounding, so a program
// whose output is large is allowed that much more.
bool agrees(const gt::gradient_check& check, const Tensor64& output, double tolerance)
{
    constexpr double step = 1e-6;  // check_gradients' default
    const double rounding = 4 * std::numeric_limits<double>::epsilon() * std::abs(output.item()) / step;
    const double scale = std::max({1.0, std::abs(check.analytic), std::abs(check.numeric)});
    return std::abs(check.analytic - check.numeric) <= tolerance * scale + rounding;
}

}  // namespace

int main(int argc, char** argv)
{
    const long programs = argc > 1 ? std::atol(argv[1]) : 2000;
    const std::uint64_t first_seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
    long failures = 0;
    long ops_checked = 0;
    long second_order = 0;
    for (long i = 0; i < programs; ++i) {
        const std::uint64_t seed = first_seed + std::uint64_t(i);
        const program p = program_builder(seed).build();
        ops_checked += long(p.steps.size());
        const auto report = [&](const char* order, const gt::gradient_check& check) {
            ++failures;
            std::cout << "FAILED (" << order << " derivative), seed " << seed << ": " << check << "\n";
            for (const auto& line : p.listing) {
                std::cout << "    " << line << "\n";
            }
        };
        try {
            const auto first = gt::check_gradients(p, p.inputs);
            if (!agrees(first, p(p.inputs), 1e-5)) {
                report("first", first);
                continue;
            }
            if (seed % 4 == 0) {
                ++second_order;
                const auto objective = [&](const std::vector<Tensor64>& at) { return weighted_first_gradients(p, at); };
                const auto second = gt::check_gradients(objective, p.inputs);
                if (!agrees(second, objective(p.inputs), 1e-5)) {
                    report("second", second);
                }
            }
        } catch (const std::exception& e) {
            ++failures;
            std::cout << "FAILED, seed " << seed << ": threw " << e.what() << "\n";
            for (const auto& line : p.listing) {
                std::cout << "    " << line << "\n";
            }
        }
    }
    std::cout << programs << " programs (seeds " << first_seed << " to " << first_seed + std::uint64_t(programs) - 1
              << "), " << ops_checked << " ops, " << second_order << " also to second order: " << failures
              << " failed\n";
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
