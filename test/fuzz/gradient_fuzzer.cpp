// A seeded random-program fuzzer for gradients: it composes programs from the
// differentiable ops on random shapes that broadcast against each other, and
// checks the tape's gradient of each program (and, for every fourth, the
// second derivative) against central finite differences in float64. Forward
// mode is checked against those: each program's tangent along a random
// direction against the gradient's dot with it, and for every fourth program
// the forward-over-reverse Hessian-vector product against the reverse-over-
// reverse one.
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
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <gradtape/gradtape.hpp>

#include <xtensor/xmanipulation.hpp>
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

    using candidate_type = std::pair<std::string, step_type>;

    // What a row of the op table sees: two operands drawn from the pool.
    struct operands {
        std::size_t a;
        std::size_t b;
        const Tensor64& x;
        const Tensor64& y;
        std::string va;
        std::string vb;
        double low;  // x's smallest element
    };
    using row_type = std::function<candidate_type(const operands&)>;

    candidate_type candidate()
    {
        const std::size_t a = operand();
        const std::size_t b = operand();
        const Tensor64& x = pool_[a];
        const operands o{a, b, x, pool_[b], "v" + std::to_string(a), "v" + std::to_string(b),
                         x.size() ? xt::amin(x.value())() : 0};
        return rows_[pick(0, rows_.size() - 1)](o);
    }

    // Where finite differences can check an elementwise op of one input:
    // those of the library's list not named here are smooth everywhere.
    static bool in_domain(std::string_view op, const Tensor64& x, double low)
    {
        if (op == "log" || op == "sqrt" || op == "rsqrt") {
            return low > 0.1;
        }
        if (op == "log1p") {
            return low > -0.9;
        }
        // A kink at 0 in the op, or (elu) in its derivative.
        if (op == "abs" || op == "relu" || op == "sign" || op == "elu") {
            return distance_to(x, 0) >= 1e-3;
        }
        return true;
    }

    row_type unary_row(std::string_view name, Tensor64 (*f)(const Tensor64&))
    {
        return [name, f](const operands& o) -> candidate_type {
            if (!in_domain(name, o.x, o.low)) {
                return {};
            }
            return {std::string(name) + "(" + o.va + ")", [a = o.a, f](const pool_type& p) { return f(p[a]); }};
        };
    }

    // Where finite differences can check an elementwise op of two inputs:
    // those of the library's list not named here are smooth everywhere.
    static bool in_domain(std::string_view op, const operands& o)
    {
        if (op == "divide") {
            return distance_to(o.y, 0) >= 0.3;
        }
        if (op == "pow") {
            return o.low > 0.1;
        }
        // Away from ties, where maximum and minimum have a derivative.
        if (op == "maximum" || op == "minimum") {
            if (o.a == o.b) {
                return false;
            }
            try {
                return xt::amin(xt::abs(o.x.value() - o.y.value()))() >= 1e-3;
            } catch (const std::exception&) {
                return false;
            }
        }
        return true;
    }

    row_type binary_row(std::string_view name, Tensor64 (*f)(const Tensor64&, const Tensor64&))
    {
        return [name, f](const operands& o) -> candidate_type {
            if (!in_domain(name, o)) {
                return {};
            }
            return {std::string(name) + "(" + o.va + ", " + o.vb + ")",
                    [a = o.a, b = o.b, f](const pool_type& p) { return f(p[a], p[b]); }};
        };
    }

    row_type reduction_row(std::string_view name, Tensor64 (*over_all)(const Tensor64&),
                           Tensor64 (*over_axes)(const Tensor64&, const gt::axes_type&, bool))
    {
        return [this, name, over_all, over_axes](const operands& o) -> candidate_type {
            if (o.x.dimension() == 0 || coin()) {
                return {std::string(name) + "(" + o.va + ")", [a = o.a, over_all](const pool_type& p) { return over_all(p[a]); }};
            }
            const std::ptrdiff_t axis = axis_of(o.x);
            const bool keepdims = coin();
            return {std::string(name) + "(" + o.va + ", " + std::to_string(axis) + ", " + (keepdims ? "true" : "false") + ")",
                    [a = o.a, axis, keepdims, over_axes](const pool_type& p) { return over_axes(p[a], axis, keepdims); }};
        };
    }

    using windowed_op = Tensor64 (*)(const Tensor64& image, const Tensor64& filters, const gt::conv2d_options&);

    // A convolution or pool of x as one image, with random steps and padding,
    // and (for the convolutions) filters drawn here. Max pooling is used only
    // away from ties, where it has a derivative.
    row_type windowed_row(std::string_view name, windowed_op apply)
    {
        return [this, name, apply](const operands& o) -> candidate_type {
            if (o.x.dimension() < 2 || o.x.dimension() > 3) {
                return {};
            }
            if (name == "max_pool2d" && o.x.size() > 1 &&
                xt::amin(xt::abs(xt::diff(xt::sort(xt::flatten(o.x.value())))))() < 1e-3) {
                return {};
            }
            const std::ptrdiff_t channels = o.x.dimension() == 3 ? std::ptrdiff_t(o.x.shape()[2]) : 1;
            const gt::conv2d_options options{{std::ptrdiff_t(pick(1, 2)), std::ptrdiff_t(pick(1, 2))},
                                             coin() ? gt::padding::same : gt::padding::valid,
                                             {std::ptrdiff_t(pick(1, 2)), 1}};
            const Tensor64 filters = gt::random_uniform<double>({pick(1, 2), pick(1, 2), std::size_t(channels), pick(1, 2)}, -1, 1);
            const std::string text = std::string(name) + "(" + o.va + " as an image, strides " +
                                     std::to_string(options.strides[0]) + "," + std::to_string(options.strides[1]) +
                                     ", dilation " + std::to_string(options.dilations[0]) +
                                     (options.padding == gt::padding::same ? ", same)" : ", valid)");
            return {text, [a = o.a, apply, filters, options](const pool_type& p) {
                        const auto& shape = p[a].shape();
                        const Tensor64 image = gt::reshape(
                            p[a], {1, std::ptrdiff_t(shape[0]), std::ptrdiff_t(shape[1]), shape.size() == 3 ? std::ptrdiff_t(shape[2]) : 1});
                        return apply(image, filters, options);
                    }};
        };
    }

// The op table: every elementwise op of one or two inputs and every
// reduction from the library's own lists (a new one is fuzzed without a line
// here), then one row per family of the others.
#define GRADTAPE_FUZZ_UNARY(NAME) unary_row(#NAME, [](const Tensor64& t) { return gt::NAME(t); }),
#define GRADTAPE_FUZZ_BINARY(NAME) \
    binary_row(#NAME, [](const Tensor64& a, const Tensor64& b) { return gt::NAME(a, b); }),
#define GRADTAPE_FUZZ_REDUCTION(NAME)                                                                                 \
    reduction_row(                                                                                                     \
        #NAME, [](const Tensor64& t) { return gt::NAME(t); },                                                         \
        [](const Tensor64& t, const gt::axes_type& axes, bool keepdims) { return gt::NAME(t, axes, keepdims); }),
    std::vector<row_type> rows_{
        GRADTAPE_UNARY_OPS(GRADTAPE_FUZZ_UNARY)
        GRADTAPE_BINARY_OPS(GRADTAPE_FUZZ_BINARY)
        GRADTAPE_REDUCTIONS(GRADTAPE_FUZZ_REDUCTION)
        unary_row("negative", [](const Tensor64& t) { return gt::negative(t); }),
        unary_row("l2_loss", [](const Tensor64& t) { return gt::l2_loss(t); }),
        [this](const operands& o) -> candidate_type {
            if (coin()) {
                return {"pow(" + o.va + ", 3)", [a = o.a](const pool_type& p) { return gt::pow(p[a], 3.0); }};
            }
            if (o.low <= 0.1) {
                return {};
            }
            return {"pow(" + o.va + ", 1.5)", [a = o.a](const pool_type& p) { return gt::pow(p[a], 1.5); }};
        },
        [](const operands& o) -> candidate_type {
            if (distance_to(o.x, 0) < 1e-3) {
                return {};
            }
            return {"leaky_relu(" + o.va + ", 0.3)", [a = o.a](const pool_type& p) { return gt::leaky_relu(p[a], 0.3); }};
        },
        [](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (distance_to(x, -0.5) < 1e-3 || distance_to(x, 0.7) < 1e-3) {
                return {};
            }
            return {"clip_by_value(" + va + ", -0.5, 0.7)",
                    [a](const pool_type& p) { return gt::clip_by_value(p[a], -0.5, 0.7); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            const std::size_t c = operand();
            if (distance_to(pool_[c], 0) < 1e-3) {
                return {};
            }
            return {"where(greater(v" + std::to_string(c) + ", 0), " + va + ", " + vb + ")",
                    [a, b, c](const pool_type& p) { return gt::where(gt::greater(p[c], 0.0), p[a], p[b]); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            gt::permutation_type perm(x.dimension());
            std::iota(perm.begin(), perm.end(), 0);
            std::shuffle(perm.begin(), perm.end(), random_);
            std::string text = "transpose(" + va + ", {";
            for (auto axis : perm) {
                text += std::to_string(axis) + ",";
            }
            return {text + "})", [a, perm](const pool_type& p) { return gt::transpose(p[a], perm); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (coin()) {
                return {"reshape(" + va + ", {-1})", [a](const pool_type& p) { return gt::reshape(p[a], {-1}); }};
            }
            return {"reshape(" + va + ", {1, -1, 1})", [a](const pool_type& p) { return gt::reshape(p[a], {1, -1, 1}); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            const auto axis = std::ptrdiff_t(pick(0, x.dimension()));
            return {"expand_dims(" + va + ", " + std::to_string(axis) + ")",
                    [a, axis](const pool_type& p) { return gt::expand_dims(p[a], axis); }};
        },
        [](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            return {"squeeze(" + va + ")", [a](const pool_type& p) { return gt::squeeze(p[a]); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
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
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (x.dimension() == 0) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(x);
            const std::string text = "(" + va + ", " + vb + ", axis " + std::to_string(axis) + ")";
            if (coin()) {
                return {"concat" + text, [a, b, axis](const pool_type& p) { return gt::concat({p[a], p[b]}, axis); }};
            }
            return {"stack" + text, [a, b, axis](const pool_type& p) { return gt::stack({p[a], p[b]}, axis); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            std::vector<std::size_t> multiples;
            std::string text = "tile(" + va + ",";
            for (std::size_t i = 0; i < x.dimension(); ++i) {
                multiples.push_back(pick(1, 2));
                text += " " + std::to_string(multiples.back());
            }
            return {text + ")", [a, multiples](const pool_type& p) { return gt::tile(p[a], multiples); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            gt::shape_type shape{pick(1, 3)};
            shape.insert(shape.end(), x.shape().begin(), x.shape().end());
            return {"broadcast_to(" + va + ", leading " + std::to_string(shape[0]) + ")",
                    [a, shape](const pool_type& p) { return gt::broadcast_to(p[a], shape); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
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
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (x.dimension() < 2) {
                return {};
            }
            if (coin()) {
                return {"matmul(" + va + ", " + va + ", transpose_a)",
                        [a](const pool_type& p) { return gt::matmul(p[a], p[a], {.transpose_a = true}); }};
            }
            return {"matmul(" + va + ", " + vb + ", transpose_b)",
                    [a, b](const pool_type& p) { return gt::matmul(p[a], p[b], {.transpose_b = true}); }};
        },
        [](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (y.dimension() < 1) {
                return {};
            }
            return {"matmul(" + va + ", " + vb + ")", [a, b](const pool_type& p) { return gt::matmul(p[a], p[b]); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
            if (x.dimension() == 0) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(x);
            const std::string args = va + ", " + std::to_string(axis) + ")";
            if (coin()) {
                return {"softmax(" + args, [a, axis](const pool_type& p) { return gt::softmax(p[a], axis); }};
            }
            return {"log_softmax(" + args, [a, axis](const pool_type& p) { return gt::log_softmax(p[a], axis); }};
        },
        [this](const operands& o) -> candidate_type {
            [[maybe_unused]] const auto& [a, b, x, y, va, vb, low] = o;
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
        },
        // The windowed ops take a value of rank 2 or 3 as one image, (1, H, W)
        // plus a channel axis if it has none.
        windowed_row("conv2d", [](const Tensor64& image, const Tensor64& filters, const gt::conv2d_options& options) {
            return gt::conv2d(image, filters, options);
        }),
        windowed_row("depthwise_conv2d",
                     [](const Tensor64& image, const Tensor64& filters, const gt::conv2d_options& options) {
                         return gt::depthwise_conv2d(image, filters, {options.strides, options.padding, options.dilations});
                     }),
        windowed_row("avg_pool2d", [](const Tensor64& image, const Tensor64&, const gt::conv2d_options& options) {
            return gt::avg_pool2d(image, {{2, 2}, options.strides, options.padding});
        }),
        windowed_row("max_pool2d", [](const Tensor64& image, const Tensor64&, const gt::conv2d_options& options) {
            return gt::max_pool2d(image, {{2, 2}, options.strides, options.padding});
        }),
        [](const operands& o) -> candidate_type {
            // 1x1 filters from another value of the pool, so that their gradient is checked too.
            if (o.x.dimension() != 3 || o.y.dimension() != 2 || o.y.shape()[0] != o.x.shape()[2]) {
                return {};
            }
            const std::ptrdiff_t in = std::ptrdiff_t(o.y.shape()[0]), out = std::ptrdiff_t(o.y.shape()[1]);
            return {"conv2d(" + o.va + " as an image, 1x1 filters " + o.vb + ")",
                    [a = o.a, b = o.b, in, out](const pool_type& p) {
                        return gt::conv2d(gt::expand_dims(p[a], 0), gt::reshape(p[b], {1, 1, in, out}));
                    }};
        },
        [this](const operands& o) -> candidate_type {
            if (o.x.dimension() < 2) {
                return {};
            }
            const std::ptrdiff_t axis = axis_of(o.x);
            switch (pick(0, 2)) {
            case 0:
                return {"moments(" + o.va + ", " + std::to_string(axis) + ").variance",
                        [a = o.a, axis](const pool_type& p) { return gt::moments(p[a], axis).second; }};
            case 1:
                return {"layer_normalization(" + o.va + ", 1 + 0.5 " + o.va + ", " + o.va + ", axis " +
                            std::to_string(axis) + ")",
                        [a = o.a, axis](const pool_type& p) {
                            const Tensor64 gamma = gt::reduce_mean(p[a], axis, true) * 0.5 + 1.0;
                            return gt::layer_normalization(p[a], gamma, gt::reduce_mean(p[a], axis, true), {.axes = {axis}});
                        }};
            default:
                if (o.x.size() > 1 && xt::amin(xt::abs(xt::diff(xt::sort(xt::flatten(o.x.value())))))() < 1e-3) {
                    return {};
                }
                return {"top_k(" + o.va + ", 2).values", [a = o.a](const pool_type& p) { return gt::top_k(p[a], 2).values; }};
            }
        },
        [this](const operands& o) -> candidate_type {
            if (o.x.dimension() < 2 || o.y.dimension() < 2 || o.x.shape().back() != o.y.shape().back()) {
                return {};
            }
            const bool causal = coin();
            return {"scaled_dot_product_attention(" + o.va + ", " + o.vb + ", " + o.vb + (causal ? ", causal)" : ")"),
                    [a = o.a, b = o.b, causal](const pool_type& p) {
                        return gt::scaled_dot_product_attention(p[a], p[b], p[b], {.causal = causal});
                    }};
        },
        [this](const operands& o) -> candidate_type {
            if (o.x.dimension() == 0) {
                return {};
            }
            xt::xarray<std::int64_t> ids = xt::zeros<std::int64_t>({pick(1, 3), pick(1, 2)});
            for (auto& id : ids) {
                id = std::int64_t(pick(0, o.x.shape()[0] - 1));  // repeats included
            }
            return {"embedding_lookup(" + o.va + ", ids)",
                    [a = o.a, ids](const pool_type& p) { return gt::embedding_lookup(p[a], ids); }};
        },
    };
#undef GRADTAPE_FUZZ_UNARY
#undef GRADTAPE_FUZZ_BINARY
#undef GRADTAPE_FUZZ_REDUCTION

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
bool agrees(const gt::gradient_check& check, const Tensor64& output, double step, double tolerance)
{
    const double rounding = 4 * std::numeric_limits<double>::epsilon() * std::abs(output.item()) / step;
    const double scale = std::max({1.0, std::abs(check.analytic), std::abs(check.numeric)});
    return std::abs(check.analytic - check.numeric) <= tolerance * scale + rounding;
}

// The check of f's gradient at `inputs`, or nothing when the tape agrees with
// central differences of step 1e-6 or, failing that, of step 1e-5: rounding
// inside a program (large terms that cancel) can spoil one step, while a wrong
// derivative disagrees at both.
std::optional<gt::gradient_check> disagreement(const std::function<Tensor64(const std::vector<Tensor64>&)>& f,
                                               const std::vector<Tensor64>& inputs)
{
    const Tensor64 output = f(inputs);
    std::optional<gt::gradient_check> first;
    for (double step : {1e-6, 1e-5}) {
        const auto check = gt::check_gradients(f, inputs, step);
        if (agrees(check, output, step, 1e-5)) {
            return std::nullopt;
        }
        first = first.value_or(check);
    }
    return first;
}

// Whether a and b agree within `tolerance` of the larger of 1 and their size.
bool near(const xt::xarray<double>& a, const xt::xarray<double>& b, double tolerance)
{
    const double scale = std::max({1.0, xt::amax(xt::abs(a))(), xt::amax(xt::abs(b))()});
    return a.shape() == b.shape() && xt::amax(xt::abs(a - b))() <= tolerance * scale;
}

// The accumulator's tangent of the program along `directions` against the
// gradient's dot with them; a message when they differ.
std::optional<std::string> tangent_disagreement(const program& p, const std::vector<Tensor64>& directions)
{
    const auto zero = gt::unconnected_gradients::zero;
    Tensor64 tangent;
    {
        gt::ForwardAccumulator64 accumulator(p.inputs, directions);
        tangent = accumulator.jvp(p(p.inputs), zero);
    }
    gt::GradientTape tape;
    for (const auto& input : p.inputs) {
        tape.watch(input);
    }
    const auto gradients = tape.gradient(p(p.inputs), p.inputs, {}, zero);
    double expected = 0;
    for (std::size_t i = 0; i < gradients.size(); ++i) {
        expected += xt::sum(gradients[i].value() * directions[i].value())();
    }
    if (near(tangent.value(), xt::xarray<double>(expected), 1e-9)) {
        return std::nullopt;
    }
    return "tangent " + std::to_string(tangent.item()) + ", gradient . direction " + std::to_string(expected);
}

// H v forward over reverse against reverse over reverse; a message when they differ.
std::optional<std::string> hvp_disagreement(const program& p, const std::vector<Tensor64>& directions)
{
    const auto zero = gt::unconnected_gradients::zero;
    std::vector<Tensor64> forward_over_reverse;
    {
        gt::ForwardAccumulator64 accumulator(p.inputs, directions);
        gt::GradientTape tape;
        for (const auto& input : p.inputs) {
            tape.watch(input);
        }
        for (const auto& gradient : tape.gradient(p(p.inputs), p.inputs, {}, zero)) {
            forward_over_reverse.push_back(accumulator.jvp(gradient, zero));
        }
    }
    gt::GradientTape outer;
    for (const auto& input : p.inputs) {
        outer.watch(input);
    }
    Tensor64 pairing = 0.0;
    {
        gt::GradientTape inner;
        for (const auto& input : p.inputs) {
            inner.watch(input);
        }
        const auto gradients = inner.gradient(p(p.inputs), p.inputs, {}, zero);
        for (std::size_t i = 0; i < gradients.size(); ++i) {
            pairing = pairing + gt::reduce_sum(gradients[i] * directions[i]);
        }
    }
    const auto reverse_over_reverse = outer.gradient(pairing, p.inputs, {}, zero);
    for (std::size_t i = 0; i < p.inputs.size(); ++i) {
        if (!near(forward_over_reverse[i].value(), reverse_over_reverse[i].value(), 1e-8)) {
            std::ostringstream message;
            message << "input " << i << ": forward over reverse " << forward_over_reverse[i]
                    << ", reverse over reverse " << reverse_over_reverse[i];
            return message.str();
        }
    }
    return std::nullopt;
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
        const auto report_text = [&](const char* what, const std::string& detail) {
            ++failures;
            std::cout << "FAILED (" << what << "), seed " << seed << ": " << detail << "\n";
            for (const auto& line : p.listing) {
                std::cout << "    " << line << "\n";
            }
        };
        const auto report = [&](const char* order, const gt::gradient_check& check) {
            std::ostringstream detail;
            detail << check;
            report_text((std::string(order) + " derivative").c_str(), detail.str());
        };
        try {
            if (const auto first = disagreement(p, p.inputs)) {
                report("first", *first);
                continue;
            }
            std::vector<Tensor64> directions;
            for (const auto& input : p.inputs) {
                directions.push_back(gt::random_uniform<double>(input.shape(), -1.0, 1.0));
            }
            if (const auto tangent = tangent_disagreement(p, directions)) {
                report_text("tangent", *tangent);
                continue;
            }
            if (seed % 4 == 0) {
                if (const auto product = hvp_disagreement(p, directions)) {
                    report_text("Hessian-vector product", *product);
                    continue;
                }
            }
            if (seed % 4 == 0) {
                ++second_order;
                const auto objective = [&](const std::vector<Tensor64>& at) { return weighted_first_gradients(p, at); };
                if (const auto second = disagreement(objective, p.inputs)) {
                    report("second", *second);
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
              << "), " << ops_checked << " ops, " << second_order
              << " also to second order; tangents of each, Hessian-vector products of every fourth: " << failures
              << " failed\n";
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
