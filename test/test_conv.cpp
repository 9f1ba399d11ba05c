// lib/ops/conv.cpp: conv2d, conv2d_transpose, conv1d and the pools against
// direct sums written out here from TensorFlow's definitions, against values
// NumPy computed (reference/conv_reference.py), cases worked by hand, their
// first and second derivatives, and their errors.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <xtensor/xview.hpp>

#include "reference/conv_reference.hpp"
#include "support.hpp"

// OpenBLAS's own, which the library's kernels follow for their threads.
extern "C" int openblas_get_num_threads(void);
extern "C" void openblas_set_num_threads(int threads);

namespace gt = gradtape;
using gt::Tensor64;
using support::make64;
using support::random64;
using support::require_gradients;
using support::require_second_gradients;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinRel;

namespace {

// TensorFlow's definition, summed directly: out[n, oy, ox, o] is the sum over
// the window of input[n, oy*s + ky*d - pad, ox*s + kx*d - pad, c] *
// filters[ky, kx, c, o], with positions outside the input read as 0.
xt::xarray<double> direct_conv2d(const xt::xarray<double>& x, const xt::xarray<double>& w, gt::conv2d_options o)
{
    const std::size_t n = x.shape()[0], h = x.shape()[1], wd = x.shape()[2], c = x.shape()[3];
    const std::size_t kh = w.shape()[0], kw = w.shape()[1], out_c = w.shape()[3];
    const auto extent = [&](std::size_t in, std::size_t k, std::ptrdiff_t stride, std::ptrdiff_t dilation) {
        const std::size_t s = std::size_t(stride), span = (k - 1) * std::size_t(dilation) + 1;
        if (o.padding == gt::padding::same) {
            const std::size_t out = (in + s - 1) / s;
            const std::ptrdiff_t total = std::max<std::ptrdiff_t>(std::ptrdiff_t((out - 1) * s + span) - std::ptrdiff_t(in), 0);
            return std::pair{out, total / 2};
        }
        return std::pair{(in - span) / s + 1, std::ptrdiff_t(0)};
    };
    const auto [oh, top] = extent(h, kh, o.strides[0], o.dilations[0]);
    const auto [ow, left] = extent(wd, kw, o.strides[1], o.dilations[1]);
    xt::xarray<double> out = xt::zeros<double>({n, oh, ow, out_c});
    for (std::size_t b = 0; b < n; ++b) {
        for (std::size_t oy = 0; oy < oh; ++oy) {
            for (std::size_t ox = 0; ox < ow; ++ox) {
                for (std::size_t q = 0; q < out_c; ++q) {
                    double sum = 0;
                    for (std::size_t ky = 0; ky < kh; ++ky) {
                        for (std::size_t kx = 0; kx < kw; ++kx) {
                            const std::ptrdiff_t iy = std::ptrdiff_t(oy) * o.strides[0] + std::ptrdiff_t(ky) * o.dilations[0] - top;
                            const std::ptrdiff_t ix = std::ptrdiff_t(ox) * o.strides[1] + std::ptrdiff_t(kx) * o.dilations[1] - left;
                            if (iy < 0 || ix < 0 || iy >= std::ptrdiff_t(h) || ix >= std::ptrdiff_t(wd)) {
                                continue;
                            }
                            for (std::size_t k = 0; k < c; ++k) {
                                sum += x(b, std::size_t(iy), std::size_t(ix), k) * w(ky, kx, k, q);
                            }
                        }
                    }
                    out(b, oy, ox, q) = sum;
                }
            }
        }
    }
    return out;
}

struct conv_case {
    gt::shape_type input;
    gt::shape_type filters;
    gt::conv2d_options options;
};

std::string describe(const conv_case& c)
{
    std::ostringstream out;
    out << "input " << c.input << " filters " << c.filters << " strides " << c.options.strides[0] << ","
        << c.options.strides[1] << " dilations " << c.options.dilations[0] << "," << c.options.dilations[1]
        << (c.options.padding == gt::padding::same ? " same" : " valid");
    return out.str();
}

const std::vector<conv_case> every_combination = [] {
    std::vector<conv_case> cases;
    for (gt::padding padding : {gt::padding::valid, gt::padding::same}) {
        for (std::ptrdiff_t stride : {1, 2, 3}) {
            for (std::ptrdiff_t dilation : {1, 2}) {
                cases.push_back({{2, 7, 6, 3}, {3, 2, 3, 4}, {{stride, stride}, padding, {dilation, dilation}}});
            }
        }
        cases.push_back({{1, 8, 5, 2}, {2, 3, 2, 3}, {{2, 1}, padding, {1, 2}}});
        cases.push_back({{1, 4, 4, 1}, {4, 4, 1, 1}, {{1, 1}, padding, {1, 1}}});
    }
    return cases;
}();

// conv2d of random values against the definition; the values, for more checks.
struct checked_conv {
    Tensor64 x, w;
    xt::xarray<double> expected;
};
checked_conv require_definition(const conv_case& c)
{
    const Tensor64 x = random64(c.input);
    const Tensor64 w = random64(c.filters);
    const Tensor64 y = gt::conv2d(x, w, c.options);
    xt::xarray<double> expected = direct_conv2d(x.value(), w.value(), c.options);
    REQUIRE(y.shape() == expected.shape());
    REQUIRE(xt::allclose(y.value(), expected, 1e-12, 1e-12));
    return {x, w, std::move(expected)};
}

}  // namespace

TEST_CASE("conv2d equals TensorFlow's definition for every padding, stride and dilation", "[conv][values]")
{
    for (const conv_case& c : every_combination) {
        INFO(describe(c));
        require_definition(c);
    }
}

namespace {

// Element i (row-major) of a tensor of `shape`: (i * multiplier) % modulus -
// offset, as conv_reference.py makes its inputs.
template <class T>
gt::basic_tensor<T> reference_integers(const std::array<std::size_t, 4>& shape, const std::array<int, 3>& formula)
{
    const auto [multiplier, modulus, offset] = formula;
    xt::xarray<T> values = xt::zeros<T>(shape);
    for (std::size_t i = 0; i < values.size(); ++i) {
        values.data()[i] = T(std::ptrdiff_t(i) * multiplier % modulus - offset);
    }
    return gt::basic_tensor<T>(values);
}

template <class T>
gt::basic_tensor<T> reference_op(const reference::conv_value& c)
{
    const gt::padding padding = c.same ? gt::padding::same : gt::padding::valid;
    const auto x = reference_integers<T>(c.input, reference::input_formula);
    const auto w = reference_integers<T>(c.window, reference::filter_formula);
    if (c.op == "conv2d") {
        return gt::conv2d(x, w, {c.strides, padding, c.dilations});
    }
    if (c.op == "conv2d_transpose") {
        const gt::shape_type input(c.input.begin(), c.input.end());
        const gt::shape_type out = gt::conv2d(x, w, {c.strides, padding, c.dilations}).shape();
        const auto g = reference_integers<T>({out[0], out[1], out[2], out[3]}, reference::input_formula);
        return gt::conv2d_transpose(g, w, input, {c.strides, padding, c.dilations});
    }
    if (c.op == "depthwise_conv2d") {
        return gt::depthwise_conv2d(x, w, {c.strides, padding, c.dilations});
    }
    const gt::pool2d_options options{{std::ptrdiff_t(c.window[0]), std::ptrdiff_t(c.window[1])}, c.strides, padding};
    return c.op == "max_pool2d" ? gt::max_pool2d(x, options) : gt::avg_pool2d(x, options);
}

}  // namespace

TEST_CASE("convolutions and pools equal NumPy's values for every padding, stride and dilation", "[conv][values]")
{
    // Integer inputs make every convolution exact in float and double; only
    // the averages round.
    REQUIRE(reference::conv_values.size() == 60);
    for (const reference::conv_value& c : reference::conv_values) {
        INFO(c.op << " input " << gt::shape_type(c.input.begin(), c.input.end()) << " window "
                  << gt::shape_type(c.window.begin(), c.window.end()) << " strides " << c.strides[0] << ","
                  << c.strides[1] << " dilations " << c.dilations[0] << "," << c.dilations[1]
                  << (c.same ? " same" : " valid"));
        const xt::xarray<double> expected = xt::adapt(c.values, c.output);
        const Tensor64 in_double = reference_op<double>(c);
        const gt::Tensor in_float = reference_op<float>(c);
        REQUIRE(in_double.shape() == gt::shape_type(c.output.begin(), c.output.end()));
        REQUIRE(in_float.shape() == in_double.shape());
        const xt::xarray<double> widened = xt::cast<double>(in_float.value());
        if (c.op == "avg_pool2d") {
            REQUIRE(xt::allclose(in_double.value(), expected, 1e-15, 0));
            REQUIRE(xt::allclose(widened, expected, 1e-6, 0));
        } else {
            REQUIRE(in_double.value() == expected);
            REQUIRE(widened == expected);
        }
    }
}

TEST_CASE("same padding puts the smaller half of the padding before, as TensorFlow does", "[conv][values]")
{
    // A 4-wide row, a 2-wide kernel of ones, stride 2: the output has 2
    // positions, the total padding is (2 - 1) * 2 + 2 - 4 = 0. With stride 1
    // and a 4-wide kernel it is 3: 1 before, 2 after, so position 0 sums
    // x[0..2] and position 3 sums x[2..3].
    const Tensor64 x = make64({1, 2, 3, 4}, {1, 1, 4, 1});
    const Tensor64 wide = gt::ones<double>({1, 4, 1, 1});
    const Tensor64 y = gt::conv2d(x, wide, {.padding = gt::padding::same});
    REQUIRE(y.value() == make64({6, 10, 9, 7}, {1, 1, 4, 1}).value());
    const Tensor64 pairs = gt::conv2d(x, gt::ones<double>({1, 2, 1, 1}), {.strides = {1, 2}, .padding = gt::padding::same});
    REQUIRE(pairs.value() == make64({3, 7}, {1, 1, 2, 1}).value());
}

TEST_CASE("conv2d_transpose is the adjoint of conv2d, and shapes its output as asked", "[conv][values]")
{
    // <conv2d(x, w), g> = <x, conv2d_transpose(g, w)> for every x and g.
    for (const conv_case& c : every_combination) {
        INFO(describe(c));
        const Tensor64 x = random64(c.input);
        const Tensor64 w = random64(c.filters);
        const Tensor64 y = gt::conv2d(x, w, c.options);
        const Tensor64 g = random64(y.shape());
        const Tensor64 back = gt::conv2d_transpose(g, w, c.input, c.options);
        REQUIRE(back.shape() == c.input);
        const double forward = xt::sum(y.value() * g.value())();
        const double adjoint = xt::sum(x.value() * back.value())();
        REQUIRE_THAT(adjoint, Catch::Matchers::WithinRel(forward, 1e-12));
    }
}

TEST_CASE("gradients and second derivatives of conv2d, conv2d_transpose and conv1d", "[conv][gradient]")
{
    const std::vector<conv_case> cases{
        {{2, 5, 4, 2}, {3, 2, 2, 3}, {{1, 1}, gt::padding::valid, {1, 1}}},
        {{1, 6, 5, 2}, {3, 3, 2, 2}, {{2, 2}, gt::padding::same, {1, 1}}},
        {{1, 7, 6, 1}, {2, 2, 1, 2}, {{1, 2}, gt::padding::same, {2, 1}}},
    };
    for (const conv_case& c : cases) {
        INFO(describe(c));
        const auto convolve = [&](const auto& in) { return gt::conv2d(in[0], in[1], c.options); };
        require_gradients(convolve, {random64(c.input), random64(c.filters)});
        require_second_gradients([&](const auto& in) { return gt::square(convolve(in)); },
                                 {random64(c.input), random64(c.filters)});
        const gt::shape_type out = gt::conv2d(random64(c.input), random64(c.filters), c.options).shape();
        const auto transpose = [&](const auto& in) { return gt::conv2d_transpose(in[0], in[1], c.input, c.options); };
        require_gradients(transpose, {random64(out), random64(c.filters)});
        require_second_gradients([&](const auto& in) { return gt::square(transpose(in)); },
                                 {random64(out), random64(c.filters)});
    }
    const auto conv1d = [](const auto& in) {
        return gt::conv1d(in[0], in[1], {.stride = 2, .padding = gt::padding::same, .dilation = 1});
    };
    require_gradients(conv1d, {random64({2, 7, 3}), random64({3, 3, 2})});
    require_second_gradients([&](const auto& in) { return gt::tanh(conv1d(in)); }, {random64({2, 7, 3}), random64({3, 3, 2})});
}

TEST_CASE("3x3 and 5x5 convolutions of many channels (Winograd's tiles) equal the definition, as do their adjoints",
          "[conv][values][winograd][kernels]")
{
    // Unit strides, 3x3 or 5x5 kernels and at least 16 channels each way take
    // Winograd's path: outputs in 4x4 tiles from 6x6 (3x3) or 8x8 (5x5) input
    // patches, partial at the right and bottom edges here, whole patches
    // inside the image (the 12x11 VALID case), and an image smaller than one
    // patch.
    std::vector<conv_case> cases;
    for (gt::padding padding : {gt::padding::valid, gt::padding::same}) {
        cases.push_back({{2, 7, 9, 16}, {3, 3, 16, 17}, {{1, 1}, padding, {1, 1}}});
        cases.push_back({{2, 6, 5, 17}, {5, 5, 17, 16}, {{1, 1}, padding, {1, 1}}});
        cases.push_back({{1, 5, 5, 16}, {5, 5, 16, 16}, {{1, 1}, padding, {1, 1}}});
        cases.push_back({{1, 12, 11, 16}, {5, 5, 16, 17}, {{1, 1}, padding, {1, 1}}});
        cases.push_back({{1, 3, 3, 16}, {3, 3, 16, 16}, {{1, 1}, padding, {1, 1}}});
    }
    for (const conv_case& c : cases) {
        INFO(describe(c));
        const auto [x, w, expected] = require_definition(c);
        // The input's gradient is conv2d_transpose and the filters' the
        // filter correlation, both on Winograd's path too: each is the adjoint.
        const Tensor64 g = random64(expected.shape());
        gt::GradientTape tape;
        tape.watch(x);
        tape.watch(w);
        const auto grads = tape.gradient(gt::reduce_sum(gt::conv2d(x, w, c.options) * g), {x, w});
        const double forward = xt::sum(expected * g.value())();
        REQUIRE_THAT(xt::sum(x.value() * grads[0].value())(), WithinRel(forward, 1e-12));
        REQUIRE_THAT(xt::sum(w.value() * grads[1].value())(), WithinRel(forward, 1e-12));
        REQUIRE(xt::allclose(gt::conv2d_transpose(g, w, c.input, c.options).value(), grads[0].value(), 1e-12, 1e-12));
        // In float, the transforms' rounding (entries from 1/90 to 8) stays
        // within 4 float ulps of the largest sum of |terms|, 25 taps of 17
        // channels of values up to 1.5 in magnitude.
        const gt::Tensor y32 = gt::conv2d(gt::cast<float>(x), gt::cast<float>(w), c.options);
        const double largest_sum = 5 * 5 * 17 * 1.5 * 1.5;
        const double error = xt::amax(xt::abs(xt::xarray<double>(y32.value()) - expected))();
        INFO("float error " << error);
        REQUIRE(error <= 4 * std::numeric_limits<float>::epsilon() * largest_sum);
    }
}

namespace {

// conv2d, conv2d_transpose and the filters' gradient with OpenBLAS given
// two threads, against the definition and the adjoint identities.
void require_definition_on_two_threads(const gt::shape_type& input, const gt::shape_type& filters,
                                       const gt::conv2d_options& options)
{
    const int threads_before = openblas_get_num_threads();
    openblas_set_num_threads(2);
    const Tensor64 x = random64(input);
    const Tensor64 w = random64(filters);
    gt::GradientTape tape;
    tape.watch(x);
    tape.watch(w);
    const Tensor64 y = gt::conv2d(x, w, options);
    const Tensor64 g = random64(y.shape());
    const auto grads = tape.gradient(gt::reduce_sum(y * g), {x, w});
    const Tensor64 transposed = gt::conv2d_transpose(g, w, x.shape(), options);
    openblas_set_num_threads(threads_before);
    const xt::xarray<double> expected = direct_conv2d(x.value(), w.value(), options);
    REQUIRE(xt::allclose(y.value(), expected, 1e-12, 1e-12));
    const double forward = xt::sum(expected * g.value())();
    REQUIRE_THAT(xt::sum(x.value() * grads[0].value())(), WithinRel(forward, 1e-12));
    REQUIRE_THAT(xt::sum(w.value() * grads[1].value())(), WithinRel(forward, 1e-12));
    REQUIRE(xt::allclose(grads[0].value(), transposed.value(), 1e-12, 1e-12));
}

}  // namespace

TEST_CASE("Winograd's chunks of images shared between threads give the definition's values",
          "[conv][values][winograd][threads]")
{
    // With OpenBLAS given two threads, 24 images of 28x28 take three chunks,
    // dealt to two threads of the library's own; the input's gradient adds
    // into each image from one thread only, the filters' sums from each.
    require_definition_on_two_threads({24, 28, 28, 16}, {3, 3, 16, 16}, {.padding = gt::padding::same});
}

TEST_CASE("im2col's runs of rows shared between threads give the definition's values", "[conv][values][threads]")
{
    // Three channels to 16 through 5x5 filters make products under OpenBLAS's
    // threading threshold at 218 rows: with two threads, the images go to
    // two threads of the library's own in runs of 218 rows, which split each
    // 64x64 image's 4,096 positions and straddle the images' boundaries.
    require_definition_on_two_threads({3, 64, 64, 3}, {5, 5, 3, 16}, {.padding = gt::padding::same});
    require_definition_on_two_threads({3, 64, 64, 3}, {5, 5, 3, 16}, {.strides = {2, 3}, .padding = gt::padding::valid});
}

TEST_CASE("gradients and second derivatives through Winograd's tiles", "[conv][gradient][winograd]")
{
    // A convolution is linear and the square of one quadratic, so central
    // differences are exact at any step: a wide one keeps them clear of the
    // rounding of sums over thousands of weighted terms.
    constexpr double step = 0.05;
    for (const conv_case& c : {conv_case{{1, 5, 4, 16}, {3, 3, 16, 16}, {{1, 1}, gt::padding::same, {1, 1}}},
                               conv_case{{1, 5, 5, 16}, {5, 5, 16, 16}, {{1, 1}, gt::padding::valid, {1, 1}}}}) {
        INFO(describe(c));
        const auto convolve = [&](const auto& in) { return gt::conv2d(in[0], in[1], c.options); };
        require_gradients(convolve, {random64(c.input), random64(c.filters)}, 1e-6, step);
        require_second_gradients([&](const auto& in) { return gt::square(convolve(in)); },
                                 {random64(c.input), random64(c.filters)}, 1e-5, step);
    }
}

TEST_CASE("conv1d is conv2d over a height of one", "[conv][values]")
{
    const Tensor64 x = random64({2, 9, 3});
    const Tensor64 w = random64({4, 3, 5});
    const Tensor64 y = gt::conv1d(x, w, {.stride = 2, .padding = gt::padding::same, .dilation = 2});
    const xt::xarray<double> expected =
        direct_conv2d(xt::xarray<double>(xt::reshape_view(x.value(), {2, 1, 9, 3})),
                      xt::xarray<double>(xt::reshape_view(w.value(), {1, 4, 3, 5})),
                      {.strides = {1, 2}, .padding = gt::padding::same, .dilations = {1, 2}});
    REQUIRE(y.shape() == gt::shape_type{2, 5, 5});
    REQUIRE(xt::allclose(y.value(), xt::reshape_view(expected, {2, 5, 5}), 1e-12, 1e-12));
}

TEST_CASE("a convolution refuses mismatched shapes and steps, naming op, shapes and line", "[conv][errors]")
{
    const Tensor64 x = random64({1, 5, 5, 3});
    const std::string line = "test_conv.cpp:";
    REQUIRE_THROWS_AS(gt::conv2d(x, random64({2, 2, 4, 1})), gt::shape_error);
    REQUIRE_THROWS_WITH(gt::conv2d(x, random64({2, 2, 4, 1})),
                        Contains("conv2d") && Contains("input channels") && Contains("(1, 5, 5, 3)") &&
                            Contains("(2, 2, 4, 1)") && Contains(line));
    REQUIRE_THROWS_WITH(gt::conv2d(x, random64({6, 2, 3, 1})), Contains("larger than the input"));
    REQUIRE_NOTHROW(gt::conv2d(x, random64({6, 2, 3, 1}), {.padding = gt::padding::same}));
    REQUIRE_THROWS_WITH(gt::conv2d(x, random64({3, 3, 3, 1}), {.dilations = {3, 1}}), Contains("larger than the input"));
    REQUIRE_THROWS_AS(gt::conv2d(x, random64({2, 2, 3, 1}), {.strides = {0, 1}}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::conv2d(x, random64({2, 2, 3, 1}), {.strides = {1, -2}}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::conv2d(x, random64({2, 2, 3, 1}), {.dilations = {0, 1}}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::conv2d(random64({5, 5, 3}), random64({2, 2, 3, 1})), Contains("rank 4"));
    REQUIRE_THROWS_WITH(gt::conv2d_transpose(random64({1, 3, 3, 1}), random64({2, 2, 3, 1}), {1, 5, 5, 3}),
                        Contains("conv2d_transpose") && Contains("(1, 4, 4, 1)") && Contains("(1, 3, 3, 1)"));
    REQUIRE_THROWS_WITH(gt::conv1d(x, random64({2, 3, 1})), Contains("conv1d") && Contains("rank 3"));

    // A failed op records nothing.
    gt::GradientTape tape;
    tape.watch(x);
    REQUIRE_THROWS(gt::conv2d(x, random64({2, 2, 4, 1})));
    REQUIRE(tape.size() == 0);
}

namespace {

// The pools written out: each window's elements inside the input, reduced.
xt::xarray<double> direct_pool(const xt::xarray<double>& x, gt::pool2d_options o, bool maximum)
{
    const std::size_t n = x.shape()[0], h = x.shape()[1], w = x.shape()[2], c = x.shape()[3];
    const auto extent = [&](std::size_t in, std::ptrdiff_t k, std::ptrdiff_t s) {
        if (o.padding == gt::padding::same) {
            const std::size_t out = (in + std::size_t(s) - 1) / std::size_t(s);
            const std::ptrdiff_t total = std::max<std::ptrdiff_t>(std::ptrdiff_t(out - 1) * s + k - std::ptrdiff_t(in), 0);
            return std::pair{out, total / 2};
        }
        return std::pair{(in - std::size_t(k)) / std::size_t(s) + 1, std::ptrdiff_t(0)};
    };
    const auto [oh, top] = extent(h, o.ksize[0], o.strides[0]);
    const auto [ow, left] = extent(w, o.ksize[1], o.strides[1]);
    xt::xarray<double> out = xt::zeros<double>({n, oh, ow, c});
    for (std::size_t b = 0; b < n; ++b) {
        for (std::size_t oy = 0; oy < oh; ++oy) {
            for (std::size_t ox = 0; ox < ow; ++ox) {
                for (std::size_t k = 0; k < c; ++k) {
                    std::vector<double> window;
                    for (std::ptrdiff_t dy = 0; dy < o.ksize[0]; ++dy) {
                        for (std::ptrdiff_t dx = 0; dx < o.ksize[1]; ++dx) {
                            const std::ptrdiff_t iy = std::ptrdiff_t(oy) * o.strides[0] + dy - top;
                            const std::ptrdiff_t ix = std::ptrdiff_t(ox) * o.strides[1] + dx - left;
                            if (iy >= 0 && ix >= 0 && iy < std::ptrdiff_t(h) && ix < std::ptrdiff_t(w)) {
                                window.push_back(x(b, std::size_t(iy), std::size_t(ix), k));
                            }
                        }
                    }
                    out(b, oy, ox, k) = maximum ? *std::max_element(window.begin(), window.end())
                                                : std::accumulate(window.begin(), window.end(), 0.0) / double(window.size());
                }
            }
        }
    }
    return out;
}

}  // namespace

TEST_CASE("max_pool2d and avg_pool2d equal their definitions; same padding averages the input's elements only",
          "[conv][pool][values]")
{
    for (gt::padding padding : {gt::padding::valid, gt::padding::same}) {
        for (const gt::pool2d_options options : {gt::pool2d_options{{2, 2}, {2, 2}, padding},
                                                 gt::pool2d_options{{3, 2}, {1, 2}, padding},
                                                 gt::pool2d_options{{3, 3}, {2, 1}, padding}}) {
            INFO("ksize " << options.ksize[0] << "," << options.ksize[1] << " strides " << options.strides[0] << ","
                          << options.strides[1] << (padding == gt::padding::same ? " same" : " valid"));
            const Tensor64 x = random64({2, 5, 7, 3});
            REQUIRE(gt::max_pool2d(x, options).value() == direct_pool(x.value(), options, true));
            REQUIRE(xt::allclose(gt::avg_pool2d(x, options).value(), direct_pool(x.value(), options, false), 1e-12, 1e-12));
        }
    }
    // A 3x3 image of 1..9, 2x2 windows, stride 2, same padding: the corner
    // window averages 9 alone, not 9 and three padded zeros.
    const Tensor64 x = make64({1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 3, 3, 1});
    const gt::pool2d_options same{{2, 2}, {2, 2}, gt::padding::same};
    REQUIRE(gt::avg_pool2d(x, same).value() == make64({3, 4.5, 7.5, 9}, {1, 2, 2, 1}).value());
    REQUIRE(gt::max_pool2d(x, same).value() == make64({5, 6, 8, 9}, {1, 2, 2, 1}).value());
}

TEST_CASE("max_pool2d routes the gradient to the first largest element; a NaN wins its window", "[conv][pool][gradient]")
{
    const Tensor64 x = make64({1, 3, 3, 2}, {1, 2, 2, 1});
    gt::GradientTape tape;
    tape.watch(x);
    const Tensor64 pooled = gt::max_pool2d(x);
    REQUIRE(pooled.item() == 3);
    REQUIRE(tape.gradient(pooled, x).value() == make64({0, 1, 0, 0}, {1, 2, 2, 1}).value());
    const double nan = std::numeric_limits<double>::quiet_NaN();
    REQUIRE(std::isnan(gt::max_pool2d(make64({1, nan, 5, 2}, {1, 2, 2, 1})).item()));
}

TEMPLATE_TEST_CASE("max_pool2d takes each window's first largest element, or its first NaN, in every channel",
                   "[conv][pool][kernels]", float, double)
{
    // Nineteen channels: a vector's worth and a remainder on every kernel
    // path (the meson tests kernels_sse2, _avx2 and _avx512 run this case).
    // Values from {0, 1, 2} tie often; a few are NaN.
    using T = TestType;
    const std::size_t n = 2, h = 4, w = 5, c = 19;
    xt::xarray<T> values = xt::xarray<T>::from_shape({n, h, w, c});
    std::mt19937 draws(11);
    for (T& v : values) {
        v = draws() % 17 == 0 ? std::numeric_limits<T>::quiet_NaN() : T(draws() % 3);
    }
    for (const gt::pool2d_options options : {gt::pool2d_options{{2, 2}, {2, 2}, gt::padding::same},
                                             gt::pool2d_options{{3, 3}, {1, 1}, gt::padding::valid}}) {
        INFO("ksize " << options.ksize[0] << " strides " << options.strides[0]);
        const std::size_t k = std::size_t(options.ksize[0]), s = std::size_t(options.strides[0]);
        const bool same = options.padding == gt::padding::same;
        const std::size_t oh = same ? (h + s - 1) / s : h - k + 1, ow = same ? (w + s - 1) / s : w - k + 1;
        // Same padding of a 2x2 window with stride 2 pads only after.
        xt::xarray<T> expected = xt::xarray<T>::from_shape({n, oh, ow, c});
        xt::xarray<T> routed = xt::zeros<T>(values.shape());
        for (std::size_t b = 0; b < n; ++b) {
            for (std::size_t oy = 0; oy < oh; ++oy) {
                for (std::size_t ox = 0; ox < ow; ++ox) {
                    for (std::size_t q = 0; q < c; ++q) {
                        std::size_t best_y = oy * s, best_x = ox * s;
                        for (std::size_t iy = oy * s; iy < std::min(oy * s + k, h); ++iy) {
                            for (std::size_t ix = ox * s; ix < std::min(ox * s + k, w); ++ix) {
                                const T v = values(b, iy, ix, q), best = values(b, best_y, best_x, q);
                                if (v > best || (std::isnan(v) && !std::isnan(best))) {
                                    best_y = iy;
                                    best_x = ix;
                                }
                            }
                        }
                        expected(b, oy, ox, q) = values(b, best_y, best_x, q);
                        routed(b, best_y, best_x, q) += T(1);
                    }
                }
            }
        }
        const gt::basic_tensor<T> x = values;
        gt::GradientTape tape;
        tape.watch(x);
        const gt::basic_tensor<T> pooled = gt::max_pool2d(x, options);
        REQUIRE(xt::all(xt::equal(pooled.value(), expected) || (xt::isnan(pooled.value()) && xt::isnan(expected))));
        REQUIRE(tape.gradient(gt::reduce_sum(pooled), x).value() == routed);
    }
}

TEST_CASE("gradients and second derivatives of the pools", "[conv][pool][gradient]")
{
    for (gt::padding padding : {gt::padding::valid, gt::padding::same}) {
        const gt::pool2d_options options{{3, 2}, {2, 1}, padding};
        // Distinct values, so that no window has a tie where max has no derivative.
        xt::xarray<double> values = xt::arange<double>(2 * 5 * 4 * 2) * 0.37;
        std::shuffle(values.begin(), values.end(), std::mt19937(7));
        values.reshape({2, 5, 4, 2});
        const Tensor64 x = values;
        require_gradients([&](const auto& in) { return gt::max_pool2d(in[0], options); }, {x});
        require_second_gradients([&](const auto& in) { return gt::square(gt::max_pool2d(in[0], options)); }, {x});
        require_gradients([&](const auto& in) { return gt::avg_pool2d(in[0], options); }, {random64({2, 5, 4, 2})});
        require_second_gradients([&](const auto& in) { return gt::square(gt::avg_pool2d(in[0], options)); },
                                 {random64({2, 5, 4, 2})});
    }
}

TEST_CASE("a pool refuses bad windows and ranks", "[conv][pool][errors]")
{
    const Tensor64 x = random64({1, 4, 4, 2});
    REQUIRE_THROWS_AS(gt::max_pool2d(x, {.ksize = {0, 2}}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::avg_pool2d(x, {.strides = {2, 0}}), gt::argument_error);
    REQUIRE_THROWS_WITH(gt::max_pool2d(x, {.ksize = {5, 2}}), Contains("max_pool2d") && Contains("larger than the input"));
    REQUIRE_THROWS_WITH(gt::avg_pool2d(random64({4, 4, 2})), Contains("avg_pool2d") && Contains("rank 4"));
}

namespace {

// y = depthwise_conv2d(x, w) against conv2d's definition, channel by channel.
void require_depthwise_definition(const Tensor64& x, const Tensor64& w, const Tensor64& y,
                                  const gt::depthwise_conv2d_options& options)
{
    const std::size_t channels = x.shape()[3];
    const std::size_t multiplier = w.shape()[3];
    REQUIRE(y.shape()[3] == channels * multiplier);
    for (std::size_t c = 0; c < channels; ++c) {
        const xt::xarray<double> plane = xt::view(x.value(), xt::all(), xt::all(), xt::all(), xt::range(c, c + 1));
        const xt::xarray<double> kernels = xt::view(w.value(), xt::all(), xt::all(), xt::range(c, c + 1), xt::all());
        const xt::xarray<double> expected =
            direct_conv2d(plane, kernels, {options.strides, options.padding, options.dilations});
        const xt::xarray<double> got = xt::view(y.value(), xt::all(), xt::all(), xt::all(),
                                                xt::range(multiplier * c, multiplier * (c + 1)));
        REQUIRE(xt::allclose(got, expected, 1e-12, 1e-12));
    }
}

}  // namespace

TEST_CASE("depthwise_conv2d's images shared between threads give the definition's values", "[conv][values][threads]")
{
    // Five 32x32 images are work enough for two threads: the images go to
    // two threads of the library's own, the filters' sums from each.
    const int threads_before = openblas_get_num_threads();
    for (const std::size_t multiplier : {1, 2}) {
        const std::size_t channels = 8 / multiplier;
        INFO("multiplier " << multiplier);
        const Tensor64 x = random64({5, 32, 32, channels});
        const Tensor64 w = random64({3, 3, channels, multiplier});
        const gt::depthwise_conv2d_options options{.padding = gt::padding::same};
        openblas_set_num_threads(2);
        gt::GradientTape tape;
        tape.watch(x);
        tape.watch(w);
        const Tensor64 y = gt::depthwise_conv2d(x, w, options);
        const Tensor64 g = random64(y.shape());
        const auto grads = tape.gradient(gt::reduce_sum(y * g), {x, w});
        openblas_set_num_threads(threads_before);
        require_depthwise_definition(x, w, y, options);
        const double forward = xt::sum(y.value() * g.value())();
        REQUIRE_THAT(xt::sum(x.value() * grads[0].value())(), WithinRel(forward, 1e-12));
        REQUIRE_THAT(xt::sum(w.value() * grads[1].value())(), WithinRel(forward, 1e-12));
    }
}

TEST_CASE("depthwise_conv2d convolves each channel with its own filters", "[conv][values][gradient][kernels]")
{
    // Multiplier 1 adds whole rows of channels in a kernel (19 channels: a
    // vector and a remainder on every path; the meson tests kernels_sse2,
    // _avx2 and _avx512 run this case), multiplier 2 channel by channel.
    for (const std::size_t multiplier : {1, 2}) {
        const std::size_t channels = multiplier == 1 ? 19 : 3;
        INFO("multiplier " << multiplier);
        const Tensor64 x = random64({2, 6, 5, channels});
        const Tensor64 w = random64({3, 2, channels, multiplier});
        const gt::depthwise_conv2d_options options{{2, 1}, gt::padding::same, {1, 2}};
        const Tensor64 y = gt::depthwise_conv2d(x, w, options);
        REQUIRE(y.shape() == gt::shape_type{2, 3, 5, channels * multiplier});
        require_depthwise_definition(x, w, y, options);
        const auto depthwise = [&](const auto& in) { return gt::depthwise_conv2d(in[0], in[1], options); };
        require_gradients(depthwise, {random64({1, 4, 3, channels}), random64({2, 2, channels, multiplier})});
        require_second_gradients([&](const auto& in) { return gt::square(depthwise(in)); },
                                 {random64({1, 4, 3, channels}), random64({2, 2, channels, multiplier})});
    }
    const Tensor64 x = random64({2, 6, 5, 3});
    REQUIRE_THROWS_WITH(gt::depthwise_conv2d(x, random64({2, 2, 4, 1})), Contains("depthwise_conv2d") && Contains("(2, 2, 4, 1)"));
    REQUIRE_THROWS_AS(gt::depthwise_conv2d(x, random64({2, 2, 3}), {}), gt::shape_error);
    REQUIRE_THROWS_AS(gt::depthwise_conv2d(x, random64({7, 2, 3, 1}), {.padding = gt::padding::valid}), gt::shape_error);
}
