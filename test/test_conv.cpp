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

#include "kernels/threads.hpp"
#include "reference/conv_reference.hpp"
#include "support.hpp"

#include <xtensor/xview.hpp>

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

// OpenBLAS given `count` threads while this lives, and as many as before
// after it, even when an assertion throws; and the threads the library's
// kernels started meanwhile (kernels/threads.hpp).
class blas_threads {
public:
    explicit blas_threads(int count)
        : before_(openblas_get_num_threads()), started_(gt::detail::threads_started().load())
    {
        openblas_set_num_threads(count);
    }
    ~blas_threads() { openblas_set_num_threads(before_); }
    blas_threads(const blas_threads&) = delete;
    blas_threads& operator=(const blas_threads&) = delete;
    [[nodiscard]] std::size_t threads_started() const { return gt::detail::threads_started().load() - started_; }

private:
    int before_;
    std::size_t started_;
};

// conv2d, conv2d_transpose and the filters' gradient with OpenBLAS given
// two threads, against the definition and the adjoint identities; each of
// the three dealt its work to a thread besides the caller's.
void require_definition_on_two_threads(const gt::shape_type& input, const gt::shape_type& filters,
                                       const gt::conv2d_options& options)
{
    const blas_threads two(2);
    const Tensor64 x = random64(input);
    const Tensor64 w = random64(filters);
    gt::GradientTape tape;
    tape.watch(x);
    tape.watch(w);
    const Tensor64 y = gt::conv2d(x, w, options);
    const Tensor64 g = random64(y.shape());
    const auto grads = tape.gradient(gt::reduce_sum(y * g), {x, w});
    const Tensor64 transposed = gt::conv2d_transpose(g, w, x.shape(), options);
    REQUIRE(two.threads_started() >= 4);
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

namespace {

// Where a tensor is NaN, +Inf and -Inf, in flat order: 0, 1, 2, and 3 for finite.
std::vector<int> kinds(const xt::xarray<double>& values)
{
    std::vector<int> out(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        const double v = values.flat(i);
        out[i] = std::isnan(v) ? 0 : v == INFINITY ? 1 : v == -INFINITY ? 2 : 3;
    }
    return out;
}

// Which outputs of a stride-1, dilation-1 convolution read input pixel (y, x).
xt::xarray<bool> windows_holding(const gt::shape_type& output, std::size_t kernel, std::size_t pad, std::size_t y,
                                 std::size_t x)
{
    xt::xarray<bool> out = xt::zeros<bool>({output[1], output[2]});
    for (std::size_t oy = 0; oy < output[1]; ++oy) {
        for (std::size_t ox = 0; ox < output[2]; ++ox) {
            const std::ptrdiff_t dy = std::ptrdiff_t(y + pad) - std::ptrdiff_t(oy);
            const std::ptrdiff_t dx = std::ptrdiff_t(x + pad) - std::ptrdiff_t(ox);
            out(oy, ox) = dy >= 0 && dx >= 0 && dy < std::ptrdiff_t(kernel) && dx < std::ptrdiff_t(kernel);
        }
    }
    return out;
}

}  // namespace

TEST_CASE("a NaN or an infinity reaches only the outputs whose windows hold it, on Winograd's path too",
          "[conv][values][winograd]")
{
    for (const std::size_t kernel : {3, 5}) {
        for (const double bad : {NAN, INFINITY, -INFINITY}) {
            INFO(kernel << "x" << kernel << " kernel, a pixel of " << bad);
            const gt::conv2d_options same{.padding = gt::padding::same};
            const gt::conv2d_options by_im2col{.padding = gt::padding::same, .algorithm = gt::conv_algorithm::im2col};
            xt::xarray<double> image = random64({2, 11, 10, 16}).value();
            image(1, 5, 6, 3) = bad;
            const Tensor64 x = image;
            const Tensor64 w = random64({kernel, kernel, 16, 17});
            const Tensor64 y = gt::conv2d(x, w, same);
            REQUIRE(kinds(y.value()) == kinds(gt::conv2d(x, w, by_im2col).value()));
            // Image 0 is finite; in image 1 the bad pixel's windows are, and only they.
            const xt::xarray<bool> reached = windows_holding(y.shape(), kernel, kernel / 2, 5, 6);
            for (std::size_t oy = 0; oy < y.shape()[1]; ++oy) {
                for (std::size_t ox = 0; ox < y.shape()[2]; ++ox) {
                    INFO("output " << oy << ", " << ox);
                    const auto first = xt::view(y.value(), 0, oy, ox, xt::all());
                    const auto second = xt::view(y.value(), 1, oy, ox, xt::all());
                    REQUIRE(xt::all(xt::isfinite(first)));
                    REQUIRE(bool(xt::all(xt::isfinite(second))) == !reached(oy, ox));
                }
            }
            // An infinity keeps its sign times the tap's where it lands.
            if (std::isinf(bad)) {
                const double tap = w.value()(kernel / 2, kernel / 2, 3, 0);
                REQUIRE(y.value()(1, 5, 6, 0) == ((bad > 0) == (tap > 0) ? INFINITY : -INFINITY));
            }

            // The input's gradient and the filters' from an upstream gradient
            // holding the bad value, against im2col's.
            xt::xarray<double> upstream = random64(y.shape()).value();
            upstream(1, 4, 2, 5) = bad;
            gt::GradientTape tape;
            tape.watch(x);
            tape.watch(w);
            const auto grads = tape.gradient(gt::conv2d(x, w, same), {x, w}, Tensor64(upstream));
            gt::GradientTape reference_tape;
            reference_tape.watch(x);
            reference_tape.watch(w);
            const auto reference = reference_tape.gradient(gt::conv2d(x, w, by_im2col), {x, w}, Tensor64(upstream));
            REQUIRE(kinds(grads[0].value()) == kinds(reference[0].value()));
            REQUIRE(kinds(grads[1].value()) == kinds(reference[1].value()));
            // check_numerics counts what im2col gives.
            REQUIRE(xt::sum(xt::cast<int>(!xt::isfinite(grads[0].value())))() ==
                    xt::sum(xt::cast<int>(!xt::isfinite(reference[0].value())))());
        }
    }
}

namespace {

// The largest magnitude of image (1, H, W, C) over rows [top, top + rows) and
// columns [left, left + columns), clipped to the image.
double largest_in(const xt::xarray<double>& image, std::ptrdiff_t top, std::ptrdiff_t left, std::size_t rows,
                  std::size_t columns)
{
    double largest = 0;
    for (std::ptrdiff_t y = std::max<std::ptrdiff_t>(top, 0);
         y < std::min<std::ptrdiff_t>(top + std::ptrdiff_t(rows), std::ptrdiff_t(image.shape()[1])); ++y) {
        for (std::ptrdiff_t x = std::max<std::ptrdiff_t>(left, 0);
             x < std::min<std::ptrdiff_t>(left + std::ptrdiff_t(columns), std::ptrdiff_t(image.shape()[2])); ++x) {
            largest = std::max(largest, double(xt::amax(xt::abs(xt::view(image, 0, y, x, xt::all())))()));
        }
    }
    return largest;
}

}  // namespace

TEST_CASE("Winograd's error is bounded by the largest value of the output's tile, one large pixel among small ones",
          "[conv][values][winograd]")
{
    // README, "Convolutions": in float, an output of Winograd's 4x4 tiles is
    // within 16 float ulps of M * sum |w| of the exact value, where sum |w| is
    // over the taps and channels that make the output channel, and M the
    // largest |input| of the tile's (4 + K - 1)^2 input patch. The input's
    // gradient likewise, M then the largest |upstream gradient| of the tiles
    // whose patches hold the pixel. (Measured on 300 random cases each: 9.5
    // and 4.8 for 3x3 and 5x5 kernels, 5.0 and 4.0 for the input's gradient.)
    constexpr double ulps = 16;
    const double epsilon = std::numeric_limits<float>::epsilon();
    for (const std::size_t kernel : {3, 5}) {
        for (const double large : {1e4, 1e6}) {
            INFO(kernel << "x" << kernel << ", one pixel of " << large);
            const std::size_t pad = kernel / 2;
            const std::size_t side = 4 + kernel - 1;
            // At (8, 8): inside the patches of tiles whose outputs' windows miss it.
            xt::xarray<double> image = random64({1, 12, 12, 16}).value();
            image(0, 8, 8, 2) = large;
            const xt::xarray<double> filters = random64({kernel, kernel, 16, 16}).value();
            const gt::conv2d_options winograd{.padding = gt::padding::same, .algorithm = gt::conv_algorithm::winograd};
            const gt::conv2d_options im2col{.padding = gt::padding::same, .algorithm = gt::conv_algorithm::im2col};
            const auto in_float = [](const xt::xarray<double>& values) { return gt::cast<float>(Tensor64(values)); };
            const xt::xarray<double> exact = direct_conv2d(image, filters, winograd);
            const gt::Tensor y = gt::conv2d(in_float(image), in_float(filters), winograd);
            const gt::Tensor y_by_columns = gt::conv2d(in_float(image), in_float(filters), im2col);
            // The image as an upstream gradient: the input's gradient is conv2d_transpose.
            const xt::xarray<double> exact_back = gt::conv2d_transpose(Tensor64(image), Tensor64(filters), {1, 12, 12, 16}, im2col).value();
            const gt::Tensor back = gt::conv2d_transpose(in_float(image), in_float(filters), {1, 12, 12, 16}, winograd);
            double worst = 0;
            double worst_back = 0;
            bool spread = false;
            const xt::xarray<bool> reached = windows_holding({1, 12, 12}, kernel, pad, 8, 8);
            for (std::size_t oy = 0; oy < 12; ++oy) {
                for (std::size_t ox = 0; ox < 12; ++ox) {
                    const double patch = largest_in(image, std::ptrdiff_t(oy / 4 * 4 - pad),
                                                    std::ptrdiff_t(ox / 4 * 4 - pad), side, side);
                    double tiles = 0;
                    for (std::size_t ty = 0; ty < 3; ++ty) {
                        for (std::size_t tx = 0; tx < 3; ++tx) {
                            const std::ptrdiff_t top = std::ptrdiff_t(ty * 4 - pad);
                            const std::ptrdiff_t left = std::ptrdiff_t(tx * 4 - pad);
                            if (std::ptrdiff_t(oy) >= top && std::ptrdiff_t(oy) < top + std::ptrdiff_t(side) &&
                                std::ptrdiff_t(ox) >= left && std::ptrdiff_t(ox) < left + std::ptrdiff_t(side)) {
                                tiles = std::max(tiles, largest_in(image, std::ptrdiff_t(ty * 4), std::ptrdiff_t(tx * 4), 4, 4));
                            }
                        }
                    }
                    for (std::size_t o = 0; o < 16; ++o) {
                        const double taps = xt::sum(xt::abs(xt::view(filters, xt::all(), xt::all(), xt::all(), o)))();
                        const double taps_back = xt::sum(xt::abs(xt::view(filters, xt::all(), xt::all(), o, xt::all())))();
                        const double error = std::abs(double(y.value()(0, oy, ox, o)) - exact(0, oy, ox, o));
                        worst = std::max(worst, error / (epsilon * patch * taps));
                        worst_back = std::max(worst_back, std::abs(double(back.value()(0, oy, ox, o)) - exact_back(0, oy, ox, o)) /
                                                              (epsilon * tiles * taps_back));
                        // Outside the pixel's windows: Winograd's error grows with it, im2col's does not.
                        if (!reached(oy, ox)) {
                            spread = spread || error > 100 * epsilon * 1.5 * taps;
                            REQUIRE_THAT(double(y_by_columns.value()(0, oy, ox, o)),
                                         Catch::Matchers::WithinAbs(exact(0, oy, ox, o), 4 * epsilon * 1.5 * taps));
                        }
                    }
                }
            }
            INFO("worst error in float ulps of M * sum |w|: " << worst << ", of the input's gradient " << worst_back);
            REQUIRE(worst <= ulps);
            REQUIRE(worst_back <= ulps);
            // The bound is needed: the large pixel does move outputs outside its windows.
            REQUIRE(spread);
        }
    }
}

TEST_CASE("the convolution algorithm is chosen per call and for the process, and refused where it cannot apply",
          "[conv][values][winograd]")
{
    // A 3x3 convolution of few channels goes by im2col unless Winograd is
    // asked for; in float the two round differently, so the choice shows.
    const Tensor64 x64 = random64({1, 9, 9, 4});
    const Tensor64 w64 = random64({3, 3, 4, 4});
    const gt::Tensor x = gt::cast<float>(x64);
    const gt::Tensor w = gt::cast<float>(w64);
    const auto with = [&](gt::conv_algorithm algorithm) {
        return gt::conv2d(x, w, {.padding = gt::padding::same, .algorithm = algorithm}).value();
    };
    const xt::xarray<float> automatic = with(gt::conv_algorithm::automatic);
    const xt::xarray<float> winograd = with(gt::conv_algorithm::winograd);
    REQUIRE(automatic == with(gt::conv_algorithm::im2col));
    REQUIRE(winograd != automatic);
    const xt::xarray<double> exact = direct_conv2d(x64.value(), w64.value(), {.padding = gt::padding::same});
    REQUIRE(xt::allclose(xt::xarray<double>(winograd), exact, 0, 1e-4));

    REQUIRE(gt::get_conv_algorithm() == gt::conv_algorithm::automatic);
    gt::set_conv_algorithm(gt::conv_algorithm::winograd);
    const xt::xarray<float> set_winograd = with(gt::conv_algorithm::automatic);
    // Where Winograd does not apply, the setting leaves im2col.
    REQUIRE_NOTHROW(gt::conv2d(x, w, {.strides = {2, 2}}));
    gt::set_conv_algorithm(gt::conv_algorithm::im2col);
    const xt::xarray<float> set_im2col = with(gt::conv_algorithm::automatic);
    const xt::xarray<float> asked_winograd = with(gt::conv_algorithm::winograd);
    gt::set_conv_algorithm(gt::conv_algorithm::automatic);
    REQUIRE(set_winograd == winograd);
    REQUIRE(set_im2col == automatic);
    REQUIRE(asked_winograd == winograd);

    // Asked for where it cannot apply: an argument_error naming the call.
    REQUIRE_THROWS_AS(gt::conv2d(x, w, {.strides = {2, 2}, .algorithm = gt::conv_algorithm::winograd}),
                      gt::argument_error);
    REQUIRE_THROWS_WITH(gt::conv2d(x, gt::cast<float>(random64({2, 2, 4, 4})), {.algorithm = gt::conv_algorithm::winograd}),
                        Contains("conv2d") && Contains("3x3 or 5x5") && Contains("test_conv.cpp"));
    // The layers take it too.
    gt::Conv2D layer(4, {3, 3}, {.padding = gt::padding::same, .algorithm = gt::conv_algorithm::winograd});
    const xt::xarray<float> by_layer = layer(x).value();
    // Its bias starts at zero.
    REQUIRE(by_layer ==
            gt::conv2d(x, layer.variables()[0], {.padding = gt::padding::same, .algorithm = gt::conv_algorithm::winograd})
                .value());
}

TEST_CASE("a kernel or dilation whose span overflows an offset is refused, and an empty output costs nothing",
          "[conv][errors]")
{
    const Tensor64 x = random64({1, 8, 8, 2});
    const Tensor64 w = random64({5, 5, 2, 3});
    constexpr std::ptrdiff_t huge = std::ptrdiff_t{1} << 62;
    constexpr std::ptrdiff_t largest = std::numeric_limits<std::ptrdiff_t>::max();
    for (const gt::padding padding : {gt::padding::valid, gt::padding::same}) {
        for (const std::ptrdiff_t dilation : {huge, largest}) {
            INFO("dilation " << dilation);
            REQUIRE_THROWS_AS(gt::conv2d(x, w, {.padding = padding, .dilations = {dilation, 1}}), gt::argument_error);
            REQUIRE_THROWS_WITH(gt::conv2d(x, w, {.padding = padding, .dilations = {1, dilation}}),
                                Contains("conv2d") && Contains("offset") && Contains("test_conv.cpp"));
            REQUIRE_THROWS_AS(gt::depthwise_conv2d(x, random64({5, 5, 2, 1}), {.padding = padding, .dilations = {dilation, 1}}),
                              gt::argument_error);
            REQUIRE_THROWS_AS(gt::conv2d_transpose(random64({1, 8, 8, 3}), w, x.shape(),
                                                   {.padding = gt::padding::same, .dilations = {dilation, dilation}}),
                              gt::argument_error);
        }
    }
    REQUIRE_THROWS_AS(gt::max_pool2d(x, {.ksize = {largest, 2}, .strides = {2, 2}, .padding = gt::padding::same}),
                      gt::argument_error);
    // A stride of the largest size takes one window, at the corner: the first
    // output of the definition.
    const Tensor64 strided = gt::conv2d(x, w, {.strides = {largest, largest}, .padding = gt::padding::same});
    REQUIRE(strided.shape() == gt::shape_type{1, 1, 1, 3});
    const xt::xarray<double> corner =
        direct_conv2d(xt::view(x.value(), xt::all(), xt::range(0, 5), xt::range(0, 5), xt::all()), w.value(), {});
    REQUIRE(xt::allclose(strided.value(), corner, 1e-12, 1e-12));
    // The layers refuse what would wrap, naming themselves.
    gt::Conv2DTranspose64 transposed(2, {3, 3}, {.padding = gt::padding::valid, .dilation_rate = {huge, 1}});
    REQUIRE_THROWS_WITH(transposed(x), Contains("layer 'conv2d_transpose'") && Contains("offset"));
    REQUIRE_THROWS_AS(gt::Conv2D64(2, {3, 3}, {.strides = {0, 1}}), gt::argument_error);
    REQUIRE_THROWS_AS(gt::Conv2D64(2, {3, 3}, {.dilation_rate = {1, -2}}), gt::argument_error);

    // No output channels and a kernel taller than any memory: an empty output,
    // its gradients zero and empty, and no allocation of the kernel's windows.
    const Tensor64 nothing = gt::zeros<double>({std::size_t{1} << 40, 1, 2, 0});
    gt::GradientTape tape;
    tape.watch(x);
    tape.watch(nothing);
    const Tensor64 y = gt::conv2d(x, nothing, {.padding = gt::padding::same});
    REQUIRE(y.shape() == gt::shape_type{1, 8, 8, 0});
    const auto grads = tape.gradient(gt::reduce_sum(y), {x, nothing});
    REQUIRE(grads[0].value() == xt::zeros<double>(x.shape()));
    REQUIRE(grads[1].shape() == nothing.shape());
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
    for (const std::size_t multiplier : {1, 2}) {
        const std::size_t channels = 8 / multiplier;
        INFO("multiplier " << multiplier);
        const Tensor64 x = random64({5, 32, 32, channels});
        const Tensor64 w = random64({3, 3, channels, multiplier});
        const gt::depthwise_conv2d_options options{.padding = gt::padding::same};
        const blas_threads two(2);
        gt::GradientTape tape;
        tape.watch(x);
        tape.watch(w);
        const Tensor64 y = gt::depthwise_conv2d(x, w, options);
        const Tensor64 g = random64(y.shape());
        const auto grads = tape.gradient(gt::reduce_sum(y * g), {x, w});
        // The forward and both gradients dealt their images to a second thread.
        REQUIRE(two.threads_started() == 3);
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
