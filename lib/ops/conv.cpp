// Convolutions and pooling over NHWC data. Convolutions go by im2col and one
// BLAS product per run of rows (a row per image and output position), or,
// with unit strides and a 3x3 or 5x5 kernel, by Winograd's minimal filtering
// (winograd.cpp). The three ops here are each other's gradients: for
// y = conv2d(x, w),
//   dx = conv2d_transpose(g, w)              (the adjoint of x -> conv2d(x, w))
//   dw = filter_correlation(x, g)            (the adjoint of w -> conv2d(x, w))
// and each of those is linear in both inputs, so its own gradients are the
// other two ops again: derivatives of every order stay exact.
#include <gradtape/nn.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/arithmetic.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "ops/op.hpp"
#include "ops/routes.hpp"

namespace gradtape {

using detail::backward_args;
using detail::conv_geometry;
using detail::fail;
using detail::format_shape;
using detail::gemm;
using detail::saved;

namespace {

std::string describe(const shape_type& input, const shape_type& filters, const conv2d_options& options)
{
    return "input " + format_shape(input) + ", filters " + format_shape(filters) + ", strides (" +
           std::to_string(options.strides[0]) + ", " + std::to_string(options.strides[1]) + "), dilations (" +
           std::to_string(options.dilations[0]) + ", " + std::to_string(options.dilations[1]) + "), padding " +
           (options.padding == padding::same ? "same" : "valid");
}

// The process's setting, read from GRADTAPE_CONV_ALGORITHM when first asked for.
std::atomic<conv_algorithm>& conv_algorithm_setting(const std::source_location& site)
{
    static std::atomic<conv_algorithm> setting = [&] {
        const char* chosen = std::getenv("GRADTAPE_CONV_ALGORITHM");
        const std::string name = chosen == nullptr ? "" : chosen;
        if (name.empty() || name == "automatic") {
            return conv_algorithm::automatic;
        }
        if (name == "winograd") {
            return conv_algorithm::winograd;
        }
        if (name != "im2col") {
            fail<argument_error>("GRADTAPE_CONV_ALGORITHM", site,
                                 "must be automatic, winograd or im2col, got '" + name + "'");
        }
        return conv_algorithm::im2col;
    }();
    return setting;
}

// a * b + c, where it is at most PTRDIFF_MAX: the windows' positions are
// computed as signed offsets from the padding.
std::optional<std::size_t> index_sum(std::size_t a, std::size_t b, std::size_t c)
{
    std::size_t product = 0;
    std::size_t sum = 0;
    if (__builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(product, c, &sum) ||
        sum > std::size_t(std::numeric_limits<std::ptrdiff_t>::max())) {
        return std::nullopt;
    }
    return sum;
}

// The output size along one axis and the padding before it, by TensorFlow's
// rules; nothing where the dilated kernel, or the padded input it needs,
// spans more than an offset can count.
std::optional<std::pair<std::size_t, std::size_t>> output_extent(std::size_t in, std::size_t kernel,
                                                                 std::size_t stride, std::size_t dilation,
                                                                 padding kind)
{
    const std::optional<std::size_t> span = index_sum(kernel - 1, dilation, 1);
    if (!span || !index_sum(in, 1, 0)) {
        return std::nullopt;
    }
    if (kind == padding::same) {
        const std::size_t out = in / stride + (in % stride != 0);
        const std::optional<std::size_t> needed = out == 0 ? 0 : index_sum(out - 1, stride, *span);
        if (!needed) {
            return std::nullopt;
        }
        const std::size_t total = *needed > in ? *needed - in : 0;
        return std::pair{out, total / 2};
    }
    return std::pair{in < *span ? 0 : (in - *span) / stride + 1, std::size_t{0}};
}

conv_geometry plan_conv(std::string_view op, const std::source_location& site, const shape_type& input,
                        const shape_type& filters, const conv2d_options& options)
{
    const auto refuse = [&](const std::string& why) {
        fail<shape_error>(op, site, why + ": " + describe(input, filters, options));
    };
    if (input.size() != 4 || filters.size() != 4) {
        refuse("needs an input of rank 4 (N, H, W, C) and filters of rank 4 (KH, KW, C, O)");
    }
    for (std::ptrdiff_t step : {options.strides[0], options.strides[1], options.dilations[0], options.dilations[1]}) {
        if (step <= 0) {
            fail<argument_error>(op, site, "strides and dilations must be positive: " +
                                               describe(input, filters, options));
        }
    }
    if (filters[2] != input[3]) {
        refuse("the filters' input channels differ from the input's");
    }
    if (filters[0] == 0 || filters[1] == 0) {
        refuse("the filters are empty");
    }
    if (const auto taps = index_sum(filters[0], filters[1], 0); !taps || !index_sum(*taps, input[3], 0)) {
        fail<argument_error>(op, site,
                             "a window of the filters' size holds more elements than an offset can count (2^63 - 1): " +
                                 describe(input, filters, options));
    }
    conv_geometry g{};
    g.n = input[0];
    g.h = input[1];
    g.w = input[2];
    g.c = input[3];
    g.kh = filters[0];
    g.kw = filters[1];
    g.o = filters[3];
    g.stride_h = std::size_t(options.strides[0]);
    g.stride_w = std::size_t(options.strides[1]);
    g.dilation_h = std::size_t(options.dilations[0]);
    g.dilation_w = std::size_t(options.dilations[1]);
    const auto rows = output_extent(g.h, g.kh, g.stride_h, g.dilation_h, options.padding);
    const auto columns = output_extent(g.w, g.kw, g.stride_w, g.dilation_w, options.padding);
    if (!rows || !columns) {
        fail<argument_error>(op, site,
                             "the dilated kernel, or the padded input it needs, spans more than an offset can count "
                             "(2^63 - 1): " +
                                 describe(input, filters, options));
    }
    std::tie(g.oh, g.pad_top) = *rows;
    std::tie(g.ow, g.pad_left) = *columns;
    if (options.padding == padding::valid && (g.oh == 0 || g.ow == 0)) {
        refuse("the (dilated) kernel is larger than the input, which valid padding does not pad");
    }
    (void)conv_algorithm_setting(site);
    if (options.algorithm == conv_algorithm::winograd && !detail::winograd_applies(g)) {
        fail<argument_error>(op, site,
                             "Winograd's algorithm takes unit strides and dilations and a 3x3 or 5x5 kernel only: " +
                                 describe(input, filters, options));
    }
    return g;
}

// Note [Winograd and non-finite values]
// Winograd's input transform mixes every pixel of a tile's patch into every
// point, and its output transform every point into every output of the
// tile: a NaN or an infinity anywhere in a patch would reach all the tile's
// outputs, and an infinity would become NaN, where a direct convolution
// confines it to the windows that hold it. A convolution whose operands hold
// either goes by im2col: one scan of both, which leaves finite data's results
// as they are.
template <dtype T>
bool by_winograd(const conv_geometry& g, const conv2d_options& options, const xt::xarray<T>& a,
                 const xt::xarray<T>& b)
{
    conv_algorithm chosen = options.algorithm;
    if (chosen == conv_algorithm::automatic) {
        chosen = conv_algorithm_setting({}).load(std::memory_order_relaxed);
    }
    const bool applies = chosen == conv_algorithm::winograd ? detail::winograd_applies(g)
                                                            : chosen == conv_algorithm::automatic && detail::suits_winograd(g);
    return applies && detail::all_finite(a.data(), a.size()) && detail::all_finite(b.data(), b.size());
}

// The filter taps k along one axis whose input index out * stride + k *
// dilation - pad lies inside [0, in): a run [first, last), empty where the
// whole window falls in the padding.
std::pair<std::size_t, std::size_t> taps_inside(std::size_t out, std::size_t stride, std::size_t dilation,
                                                std::size_t pad, std::size_t kernel, std::size_t in)
{
    const std::ptrdiff_t origin = std::ptrdiff_t(out * stride) - std::ptrdiff_t(pad);
    const auto d = std::ptrdiff_t(dilation);
    std::ptrdiff_t first = origin < 0 ? (-origin + d - 1) / d : 0;
    std::ptrdiff_t last = origin >= std::ptrdiff_t(in) ? 0 : (std::ptrdiff_t(in) - origin + d - 1) / d;
    first = std::min(first, std::ptrdiff_t(kernel));
    last = std::clamp(last, first, std::ptrdiff_t(kernel));
    return {std::size_t(first), std::size_t(last)};
}

// The part of one output position's window inside the image: for each
// kernel row ky in [ky_first, ky_last), the taps kx in [kx_first, kx_last)
// read the input row iy(ky) from column ix(kx_first) on, every dilation_w
// pixels. Padding reads zero, so whole-window work skips it.
struct window {
    std::size_t position;
    std::size_t ky_first, ky_last, kx_first, kx_last;
    std::size_t iy_first, ix_first;

    [[nodiscard]] bool whole(const conv_geometry& g) const
    {
        return ky_first == 0 && ky_last == g.kh && kx_first == 0 && kx_last == g.kw;
    }
    [[nodiscard]] std::size_t taps() const { return (ky_last - ky_first) * (kx_last - kx_first); }
};

// Calls visit(window) for output positions first..last of an image.
template <class Visit>
void for_each_window(const conv_geometry& g, std::size_t first, std::size_t last, Visit visit)
{
    std::vector<std::pair<std::size_t, std::size_t>> columns(g.ow);
    for (std::size_t ox = 0; ox < g.ow; ++ox) {
        columns[ox] = taps_inside(ox, g.stride_w, g.dilation_w, g.pad_left, g.kw, g.w);
    }
    for (std::size_t oy = first / std::max<std::size_t>(g.ow, 1); oy * g.ow < last; ++oy) {
        const auto [ky_first, ky_last] = taps_inside(oy, g.stride_h, g.dilation_h, g.pad_top, g.kh, g.h);
        const std::size_t ox_last = std::min(g.ow, last - oy * g.ow);
        for (std::size_t ox = oy * g.ow < first ? first - oy * g.ow : 0; ox < ox_last; ++ox) {
            const auto [kx_first, kx_last] = columns[ox];
            visit(window{.position = oy * g.ow + ox,
                         .ky_first = ky_first,
                         .ky_last = ky_last,
                         .kx_first = kx_first,
                         .kx_last = kx_last,
                         .iy_first = oy * g.stride_h + ky_first * g.dilation_h - g.pad_top,
                         .ix_first = ox * g.stride_w + kx_first * g.dilation_w - g.pad_left});
        }
    }
}

template <class Visit>
void for_each_window(const conv_geometry& g, Visit visit)
{
    for_each_window(g, 0, g.positions(), visit);
}

// Calls visit(tap, pixel, taps) for each kernel row of the window inside
// the image: `taps` filter taps from `tap` (a KH * KW index) read pixels
// from `pixel` (an H * W index) on, every dilation_w pixels; with dilation
// 1 they are one contiguous run of taps * C values.
template <class Visit>
void for_each_row(const conv_geometry& g, const window& at, Visit visit)
{
    if (at.kx_first == at.kx_last) {
        return;
    }
    for (std::size_t ky = at.ky_first; ky < at.ky_last; ++ky) {
        const std::size_t iy = at.iy_first + (ky - at.ky_first) * g.dilation_h;
        visit(ky * g.kw + at.kx_first, iy * g.w + at.ix_first, at.kx_last - at.kx_first);
    }
}

// The patches of output positions first..last of an image as rows: columns
// (last - first, KH * KW * C), zero where a window reaches into the padding.
template <dtype T>
void image_to_columns(const conv_geometry& g, const T* image, std::size_t first, std::size_t last, T* columns)
{
    for_each_window(g, first, last, [&](const window& at) {
        T* row = columns + (at.position - first) * g.patch();
        if (!at.whole(g)) {
            std::fill_n(row, g.patch(), T(0));
        }
        for_each_row(g, at, [&](std::size_t tap, std::size_t pixel, std::size_t taps) {
            if (g.dilation_w == 1) {
                std::copy_n(image + pixel * g.c, taps * g.c, row + tap * g.c);
                return;
            }
            for (std::size_t t = 0; t < taps; ++t) {
                std::copy_n(image + (pixel + t * g.dilation_w) * g.c, g.c, row + (tap + t) * g.c);
            }
        });
    });
}

// The adjoint: each patch row added back into the image where it was read.
template <dtype T>
void columns_to_image(const conv_geometry& g, const T* columns, std::size_t first, std::size_t last, T* image)
{
    for_each_window(g, first, last, [&](const window& at) {
        const T* row = columns + (at.position - first) * g.patch();
        for_each_row(g, at, [&](std::size_t tap, std::size_t pixel, std::size_t taps) {
            if (g.dilation_w == 1) {
                T* to = image + pixel * g.c;
                detail::arithmetic_same(detail::arithmetic::add, to, row + tap * g.c, to, taps * g.c);
                return;
            }
            for (std::size_t t = 0; t < taps; ++t) {
                T* to = image + (pixel + t * g.dilation_w) * g.c;
                detail::arithmetic_same(detail::arithmetic::add, to, row + (tap + t) * g.c, to, g.c);
            }
        });
    });
}

// Calls visit(image, first, last, row) for each image's part of rows
// first_row..first_row + rows of the columns, one row per image and output
// position: output positions first..last of `image`, at row `row` of the run.
template <class Visit>
void for_each_image_part(const conv_geometry& g, std::size_t first_row, std::size_t rows, Visit visit)
{
    const std::size_t positions = g.positions();
    for (std::size_t row = first_row; row < first_row + rows;) {
        const std::size_t image = row / positions;
        const std::size_t first = row - image * positions;
        const std::size_t last = std::min(positions, first + (first_row + rows - row));
        visit(image, first, last, row - first_row);
        row += last - first;
    }
}

// Calls work(worker, first image, last image) for contiguous shares of the
// images, one per worker, each on a thread of its own.
template <class Work>
void deal_images(const conv_geometry& g, std::size_t workers, Work work)
{
    detail::on_threads(workers, [&](std::size_t worker) {
        work(worker, g.n * worker / workers, g.n * (worker + 1) / workers);
    });
}

// How im2col takes a convolution's rows: in runs whose columns fit in 2 MiB,
// so that they stay in cache between their writing and the BLAS product (a
// 64 MiB chunk made the Fashion-MNIST CNN's step twice as slow). With more
// than one OpenBLAS thread, where runs of 128 rows make products under
// OpenBLAS's threading threshold (m * n * k < 2^18), the images are dealt
// in contiguous shares to threads of our own, each running products of up
// to that many rows on its own, as Winograd's chunks do (winograd.cpp):
// OpenBLAS's threads split the short products of the Fashion-MNIST CNN's
// first layer (25 x 32 filters) at a loss. Each image is one thread's.
struct column_runs {
    const conv_geometry& g;
    std::size_t run;      // rows per run
    std::size_t workers;  // threads for the images

    explicit column_runs(const conv_geometry& geometry) : g(geometry), workers(1)
    {
        const std::size_t per_row = std::max<std::size_t>(g.patch(), 1);
        run = std::clamp<std::size_t>((std::size_t{1} << 19) / per_row, 1, std::max<std::size_t>(g.n * g.positions(), 1));
        const std::size_t threshold_rows = ((std::size_t{1} << 18) - 1) / (per_row * std::max<std::size_t>(g.o, 1));
        const std::size_t threads = detail::blas_threads();
        if (threads > 1 && g.n > 1 && threshold_rows >= 128) {
            run = std::min(run, threshold_rows);
            workers = std::min(threads, g.n);
        }
    }

    // Calls visit(worker, columns, first row, rows) for each run, with the
    // run's columns made from `input` when it is given, and otherwise left
    // for a product to write.
    template <dtype T, class Visit>
    void for_each(const T* input, Visit visit) const
    {
        deal_images(g, workers, [&](std::size_t worker, std::size_t first_image, std::size_t last_image) {
            const std::unique_ptr<T[]> columns(new T[run * g.patch()]);
            const std::size_t end = last_image * g.positions();
            for (std::size_t first = first_image * g.positions(); first < end; first += run) {
                const std::size_t rows = std::min(run, end - first);
                if (input != nullptr) {
                    for_each_image_part(g, first, rows, [&](std::size_t image, std::size_t from, std::size_t to,
                                                            std::size_t row) {
                        image_to_columns(g, input + image * g.h * g.w * g.c, from, to, columns.get() + row * g.patch());
                    });
                }
                visit(worker, columns.get(), first, rows);
            }
        });
    }
};

template <dtype T>
basic_tensor<T> filter_correlation(const basic_tensor<T>& input, const basic_tensor<T>& grad,
                                   const shape_type& filter_shape, const conv2d_options& options,
                                   const std::source_location& site);

// conv2d: each image's columns times the filters, seen as (KH * KW * C, O).
template <dtype T>
struct conv2d_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;

    shape_type shape(const std::source_location& site, const shape_type& input, const shape_type& filters) const
    {
        return plan_conv(name, site, input, filters, options).output_shape();
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input, const xt::xarray<T>& filters) const
    {
        const conv_geometry g = plan_conv(name, {}, input.shape(), filters.shape(), options);
        if (out.size() == 0) {
            return;
        }
        if (g.patch() == 0) {
            out.fill(T(0));
            return;
        }
        if (by_winograd(g, options, input, filters)) {
            detail::winograd_conv2d(g, input.data(), filters.data(), out.data());
            return;
        }
        column_runs(g).for_each(input.data(), [&](std::size_t, const T* columns, std::size_t first, std::size_t rows) {
            gemm(columns, g.patch(), false, filters.data(), g.o, false, out.data() + first * g.o, rows, g.o, g.patch());
        });
    }
    // conv2d_transpose(grad, w) for the input, filter_correlation(x, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& filters = args.inputs[1];
        return {args.needed[0] ? conv2d_transpose(args.grad, filters, input.shape(), options) : basic_tensor<T>{},
                args.needed[1] ? filter_correlation(input, args.grad, filters.shape(), options, {})
                               : basic_tensor<T>{}};
    }
};

// conv2d_transpose: grad times the filters transposed, added back into the image.
template <dtype T>
struct conv2d_transpose_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d_transpose";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;
    shape_type output;

    shape_type shape(const std::source_location& site, const shape_type& grad, const shape_type& filters) const
    {
        const conv_geometry g = plan_conv(name, site, output, filters, options);
        if (grad != g.output_shape()) {
            fail<shape_error>(name, site,
                              "conv2d maps " + format_shape(output) + " to " + format_shape(g.output_shape()) +
                                  ", not to the input's " + format_shape(grad) + ": " +
                                  describe(output, filters, options));
        }
        return output;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad, const xt::xarray<T>& filters) const
    {
        const conv_geometry g = plan_conv(name, {}, output, filters.shape(), options);
        out.fill(T(0));
        if (grad.size() == 0 || out.size() == 0) {
            return;
        }
        if (by_winograd(g, options, grad, filters)) {
            detail::winograd_conv2d_transpose(g, grad.data(), filters.data(), out.data());
            return;
        }
        column_runs(g).for_each<T>(nullptr, [&](std::size_t, T* columns, std::size_t first, std::size_t rows) {
            gemm(grad.data() + first * g.o, g.o, false, filters.data(), g.o, true, columns, rows, g.patch(), g.o);
            for_each_image_part(g, first, rows, [&](std::size_t image, std::size_t from, std::size_t to, std::size_t row) {
                columns_to_image(g, columns + row * g.patch(), from, to, out.data() + image * g.h * g.w * g.c);
            });
        });
    }
    // conv2d(z, w) for grad, filter_correlation(z, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& grad = args.inputs[0];
        const basic_tensor<T>& filters = args.inputs[1];
        return {args.needed[0] ? conv2d(args.grad, filters, options) : basic_tensor<T>{},
                args.needed[1] ? filter_correlation(args.grad, grad, filters.shape(), options, {})
                               : basic_tensor<T>{}};
    }
};

// The filters' gradient: the sum over images of columns^T times grad.
template <dtype T>
struct filter_correlation_op {
    using value_type = T;
    static constexpr std::string_view name = "conv2d_filter_gradient";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;
    shape_type filters;

    shape_type shape(const std::source_location& site, const shape_type& input, const shape_type& grad) const
    {
        const conv_geometry g = plan_conv(name, site, input, filters, options);
        if (grad != g.output_shape()) {
            fail<shape_error>(name, site,
                              "grad " + format_shape(grad) + " is not conv2d's output " +
                                  format_shape(g.output_shape()) + ": " + describe(input, filters, options));
        }
        return filters;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input, const xt::xarray<T>& grad) const
    {
        const conv_geometry g = plan_conv(name, {}, input.shape(), filters, options);
        out.fill(T(0));
        if (input.size() == 0 || out.size() == 0 || g.positions() == 0) {
            return;
        }
        if (by_winograd(g, options, input, grad)) {
            detail::winograd_filter_gradient(g, input.data(), grad.data(), out.data());
            return;
        }
        const column_runs runs(g);
        detail::thread_sums<T> sums(out.data(), out.size(), runs.workers);
        runs.for_each(input.data(), [&](std::size_t worker, const T* columns, std::size_t first, std::size_t rows) {
            gemm(columns, g.patch(), true, grad.data() + first * g.o, g.o, false, sums.of(worker), g.patch(), g.o,
                 rows, T(1));
        });
        sums.add_up();
    }
    // conv2d_transpose(grad, z) for the input, conv2d(x, z) for grad
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& grad = args.inputs[1];
        return {args.needed[0] ? conv2d_transpose(grad, args.grad, input.shape(), options) : basic_tensor<T>{},
                args.needed[1] ? conv2d(input, args.grad, options) : basic_tensor<T>{}};
    }
};

template <dtype T>
basic_tensor<T> filter_correlation(const basic_tensor<T>& input, const basic_tensor<T>& grad,
                                   const shape_type& filter_shape, const conv2d_options& options,
                                   const std::source_location& site)
{
    return detail::apply(filter_correlation_op<T>{options, filter_shape}, site, input, grad);
}

// A pooling window is a filter of ksize over each channel alone.
conv_geometry plan_pool(std::string_view op, const std::source_location& site, const shape_type& input,
                        const pool2d_options& options)
{
    if (input.size() != 4) {
        fail<shape_error>(op, site, "needs an input of rank 4 (N, H, W, C), got " + format_shape(input));
    }
    for (std::ptrdiff_t size : options.ksize) {
        if (size <= 0) {
            fail<argument_error>(op, site, "ksize must be positive, got (" + std::to_string(options.ksize[0]) + ", " +
                                               std::to_string(options.ksize[1]) + ")");
        }
    }
    return plan_conv(op, site, input, {std::size_t(options.ksize[0]), std::size_t(options.ksize[1]), input[3], input[3]},
                     {.strides = options.strides, .padding = options.padding, .dilations = {1, 1}});
}

// A max pool's values, and for each the flat index into the input of the
// element it took: the first largest of its window, or its first NaN.
// Every window holds at least one element: same padding pads less than a
// kernel.
template <dtype T>
void max_pool_values(const conv_geometry& g, const xt::xarray<T>& input, T* pooled, std::int64_t* routes)
{
    for (std::size_t b = 0; b < g.n; ++b) {
        const std::size_t image = b * g.h * g.w;
        const std::size_t out = b * g.positions();
        for_each_window(g, [&](const window& at) {
            T* best = pooled + (out + at.position) * g.c;
            std::int64_t* from = routes + (out + at.position) * g.c;
            bool first = true;
            for_each_row(g, at, [&](std::size_t, std::size_t pixel, std::size_t taps) {
                for (std::size_t t = 0; t < taps; ++t) {
                    const std::size_t offset = (image + pixel + t) * g.c;
                    const T* candidates = input.data() + offset;
                    if (first) {
                        first = false;
                        std::copy_n(candidates, g.c, best);
                        for (std::size_t k = 0; k < g.c; ++k) {
                            from[k] = std::int64_t(offset + k);
                        }
                        continue;
                    }
                    detail::keep_larger(best, from, candidates, std::int64_t(offset), g.c);
                }
            });
        });
    }
}

// max_pool2d: the routes are found by the forward kernel itself (so that a
// replayed step finds them anew) and kept for the backward rule.
template <dtype T>
struct max_pool_op {
    using value_type = T;
    static constexpr std::string_view name = "max_pool2d";
    static constexpr saved saves = saved::nothing;
    pool2d_options options;
    std::shared_ptr<xt::xarray<std::int64_t>> routes = std::make_shared<xt::xarray<std::int64_t>>();

    shape_type shape(const std::source_location& site, const shape_type& input) const
    {
        return plan_pool(name, site, input, options).output_shape();
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input) const
    {
        const conv_geometry g = plan_pool(name, {}, input.shape(), options);
        routes->resize(g.output_shape());
        max_pool_values(g, input, out.data(), routes->data());
    }
    // grad added where each output came from
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(detail::place_op<T>{routes, args.input_shape(0)}, {}, args.grad)};
    }
};

template <dtype T>
struct avg_pool_gradient_op;

// The mean over each window's elements inside the input.
template <dtype T>
struct avg_pool_op {
    using value_type = T;
    static constexpr std::string_view name = "avg_pool2d";
    static constexpr saved saves = saved::nothing;
    pool2d_options options;

    shape_type shape(const std::source_location& site, const shape_type& input) const
    {
        return plan_pool(name, site, input, options).output_shape();
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input) const
    {
        const conv_geometry g = plan_pool(name, {}, input.shape(), options);
        out.fill(T(0));
        for (std::size_t b = 0; b < g.n; ++b) {
            const T* image = input.data() + b * g.h * g.w * g.c;
            T* pooled = out.data() + b * g.positions() * g.c;
            for_each_window(g, [&](const window& at) {
                T* mean = pooled + at.position * g.c;
                for_each_row(g, at, [&](std::size_t, std::size_t pixel, std::size_t taps) {
                    for (std::size_t t = 0; t < taps; ++t) {
                        for (std::size_t k = 0; k < g.c; ++k) {
                            mean[k] += image[(pixel + t) * g.c + k];
                        }
                    }
                });
                const T count = T(at.taps());
                for (std::size_t k = 0; k < g.c; ++k) {
                    mean[k] /= count;
                }
            });
        }
    }
    // grad / count spread over each window
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(avg_pool_gradient_op<T>{options, args.input_shape(0)}, {}, args.grad)};
    }
};

// avg_pool2d's adjoint: each output's gradient, divided by its window's
// count, added to the window's elements. Its own gradient is avg_pool2d.
template <dtype T>
struct avg_pool_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "avg_pool2d_gradient";
    static constexpr saved saves = saved::nothing;
    pool2d_options options;
    shape_type input;

    shape_type shape(const std::source_location&, const shape_type&) const { return input; }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad) const
    {
        const conv_geometry g = plan_pool(name, {}, input, options);
        out.fill(T(0));
        for (std::size_t b = 0; b < g.n; ++b) {
            const T* spread = grad.data() + b * g.positions() * g.c;
            T* image = out.data() + b * g.h * g.w * g.c;
            for_each_window(g, [&](const window& at) {
                const T count = T(at.taps());
                const T* share = spread + at.position * g.c;
                for_each_row(g, at, [&](std::size_t, std::size_t pixel, std::size_t taps) {
                    for (std::size_t t = 0; t < taps; ++t) {
                        for (std::size_t k = 0; k < g.c; ++k) {
                            image[(pixel + t) * g.c + k] += share[k] / count;
                        }
                    }
                });
            });
        }
    }
    std::array<basic_tensor<T>, 1> backward(const backward_args<T, 1>& args) const
    {
        return {detail::apply(avg_pool_op<T>{options}, {}, args.grad)};
    }
};

// depthwise_conv2d: channel c of the input convolved with filters[..., c,
// m] alone gives output channel c * M + m. Its three ops mirror conv2d's:
// the input's gradient and the filters' are the adjoints, and each is
// linear in both its inputs, so the gradients of all three are the three
// again. The loops add whole rows of channels where the multiplier M is 1.
shape_type depthwise_output(const conv_geometry& g)
{
    return {g.n, g.oh, g.ow, g.c * g.o};
}

// The shape rule the two gradients share: grad must be depthwise_conv2d's
// output for this input and filter.
void check_depthwise_grad(std::string_view op, const std::source_location& site, const shape_type& input,
                          const shape_type& filter, const shape_type& grad, const conv2d_options& options)
{
    const shape_type output = depthwise_output(plan_conv(op, site, input, filter, options));
    if (grad != output) {
        fail<shape_error>(op, site, "grad " + format_shape(grad) + " is not depthwise_conv2d's output " +
                                        format_shape(output) + ": " + describe(input, filter, options));
    }
}

// The threads a depthwise convolution deals its images to: OpenBLAS's
// count, as for the other convolutions, where its multiply-adds reach
// OpenBLAS's own threshold for threading a product, 2^18.
std::size_t depthwise_workers(const conv_geometry& g)
{
    const std::size_t work = g.n * g.positions() * g.kh * g.kw * g.c * g.o;
    return work < (std::size_t{1} << 18) ? 1 : std::clamp<std::size_t>(detail::blas_threads(), 1, g.n);
}

// Calls visit(worker, output row, input pixel, filter tap) for every output
// position and every tap of its window inside the image, as flat offsets of
// channel 0 in the output (N, OH, OW, C * M), the input (N, H, W, C) and the
// filters (KH, KW, C, M), the images dealt to `workers` threads; each image
// is one thread's.
template <class Visit>
void for_each_depthwise_tap(const conv_geometry& g, std::size_t workers, Visit visit)
{
    const std::size_t width = g.c * g.o;
    deal_images(g, workers, [&](std::size_t worker, std::size_t first, std::size_t last) {
        for (std::size_t b = first; b < last; ++b) {
            for_each_window(g, [&](const window& at) {
                for_each_row(g, at, [&](std::size_t tap, std::size_t pixel, std::size_t taps) {
                    for (std::size_t t = 0; t < taps; ++t) {
                        visit(worker, (b * g.positions() + at.position) * width,
                              (b * g.h * g.w + pixel + t * g.dilation_w) * g.c, (tap + t) * width);
                    }
                });
            });
        }
    });
}

template <dtype T>
struct depthwise_input_gradient_op;
template <dtype T>
struct depthwise_filter_gradient_op;

template <dtype T>
struct depthwise_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;

    shape_type shape(const std::source_location& site, const shape_type& input, const shape_type& filter) const
    {
        return depthwise_output(plan_conv(name, site, input, filter, options));
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input, const xt::xarray<T>& filter) const
    {
        const conv_geometry g = plan_conv(name, {}, input.shape(), filter.shape(), options);
        out.fill(T(0));
        const T* x = input.data();
        const T* f = filter.data();
        T* y = out.data();
        for_each_depthwise_tap(g, depthwise_workers(g), [&](std::size_t, std::size_t to, std::size_t from, std::size_t tap) {
            if (g.o == 1) {
                detail::multiply_add(x + from, f + tap, y + to, g.c);
                return;
            }
            for (std::size_t c = 0; c < g.c; ++c) {
                for (std::size_t m = 0; m < g.o; ++m) {
                    y[to + c * g.o + m] += x[from + c] * f[tap + c * g.o + m];
                }
            }
        });
    }
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& filter = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_input_gradient_op<T>{options, input.shape()}, {}, args.grad,
                                               filter)
                               : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_filter_gradient_op<T>{options, filter.shape()}, {}, input,
                                               args.grad)
                               : basic_tensor<T>{}};
    }
};

// The input's gradient: each output channel's gradient times its filter,
// added back where the window read.
template <dtype T>
struct depthwise_input_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d_input_gradient";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;
    shape_type input;

    shape_type shape(const std::source_location& site, const shape_type& grad, const shape_type& filter) const
    {
        check_depthwise_grad(name, site, input, filter, grad, options);
        return input;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& grad, const xt::xarray<T>& filter) const
    {
        const conv_geometry g = plan_conv(name, {}, input, filter.shape(), options);
        out.fill(T(0));
        const T* dy = grad.data();
        const T* f = filter.data();
        T* dx = out.data();
        for_each_depthwise_tap(g, depthwise_workers(g), [&](std::size_t, std::size_t from, std::size_t to, std::size_t tap) {
            if (g.o == 1) {
                detail::multiply_add(dy + from, f + tap, dx + to, g.c);
                return;
            }
            for (std::size_t c = 0; c < g.c; ++c) {
                for (std::size_t m = 0; m < g.o; ++m) {
                    dx[to + c] += dy[from + c * g.o + m] * f[tap + c * g.o + m];
                }
            }
        });
    }
    // depthwise_conv2d(z, w) for grad, the filter gradient of (z, grad) for the filters
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& grad = args.inputs[0];
        const basic_tensor<T>& filter = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_op<T>{options}, {}, args.grad, filter) : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_filter_gradient_op<T>{options, filter.shape()}, {}, args.grad,
                                               grad)
                               : basic_tensor<T>{}};
    }
};

// The filters' gradient: each tap's input channel times its output
// channels' gradients, summed over images and positions.
template <dtype T>
struct depthwise_filter_gradient_op {
    using value_type = T;
    static constexpr std::string_view name = "depthwise_conv2d_filter_gradient";
    static constexpr saved saves = saved::inputs;
    conv2d_options options;
    shape_type filter;

    shape_type shape(const std::source_location& site, const shape_type& input, const shape_type& grad) const
    {
        check_depthwise_grad(name, site, input, filter, grad, options);
        return filter;
    }
    void forward(xt::xarray<T>& out, const xt::xarray<T>& input, const xt::xarray<T>& grad) const
    {
        const conv_geometry g = plan_conv(name, {}, input.shape(), filter, options);
        out.fill(T(0));
        const T* x = input.data();
        const T* dy = grad.data();
        const std::size_t workers = depthwise_workers(g);
        detail::thread_sums<T> sums(out.data(), out.size(), workers);
        for_each_depthwise_tap(g, workers, [&](std::size_t worker, std::size_t from, std::size_t pixel, std::size_t tap) {
            T* df = sums.of(worker);
            if (g.o == 1) {
                detail::multiply_add(x + pixel, dy + from, df + tap, g.c);
                return;
            }
            for (std::size_t c = 0; c < g.c; ++c) {
                for (std::size_t m = 0; m < g.o; ++m) {
                    df[tap + c * g.o + m] += x[pixel + c] * dy[from + c * g.o + m];
                }
            }
        });
        sums.add_up();
    }
    // the input gradient of (grad, z) for the input, depthwise_conv2d(x, z) for grad
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& input = args.inputs[0];
        const basic_tensor<T>& grad = args.inputs[1];
        return {args.needed[0] ? detail::apply(depthwise_input_gradient_op<T>{options, input.shape()}, {}, grad,
                                               args.grad)
                               : basic_tensor<T>{},
                args.needed[1] ? detail::apply(depthwise_op<T>{options}, {}, input, args.grad) : basic_tensor<T>{}};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> max_pool2d(const basic_tensor<T>& input, pool2d_options options, std::source_location site)
{
    return detail::apply(max_pool_op<T>{options}, site, input);
}

template <dtype T>
basic_tensor<T> avg_pool2d(const basic_tensor<T>& input, pool2d_options options, std::source_location site)
{
    return detail::apply(avg_pool_op<T>{options}, site, input);
}

template <dtype T>
basic_tensor<T> conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filters, conv2d_options options,
                       std::source_location site)
{
    return detail::apply(conv2d_op<T>{options}, site, input, filters);
}

template <dtype T>
basic_tensor<T> conv2d_transpose(const basic_tensor<T>& input, const basic_tensor<T>& filters,
                                 const shape_type& output_shape, conv2d_options options, std::source_location site)
{
    if (output_shape.size() != 4) {
        fail<shape_error>("conv2d_transpose", site,
                          "needs an output shape of rank 4 (N, H, W, C), got " + format_shape(output_shape));
    }
    return detail::apply(conv2d_transpose_op<T>{options, output_shape}, site, input, filters);
}

template <dtype T>
basic_tensor<T> depthwise_conv2d(const basic_tensor<T>& input, const basic_tensor<T>& filter,
                                 depthwise_conv2d_options options, std::source_location site)
{
    return detail::apply(
        depthwise_op<T>{{.strides = options.strides, .padding = options.padding, .dilations = options.dilations}}, site,
        input, filter);
}

template <dtype T>
basic_tensor<T> conv1d(const basic_tensor<T>& input, const basic_tensor<T>& filters, conv1d_options options,
                       std::source_location site)
{
    if (input.dimension() != 3 || filters.dimension() != 3) {
        fail<shape_error>("conv1d", site,
                          "needs an input of rank 3 (N, W, C) and filters of rank 3 (K, C, O), got " +
                              format_shape(input.shape()) + " and " + format_shape(filters.shape()));
    }
    const auto& in = input.shape();
    const auto& k = filters.shape();
    const conv2d_options as_2d{.strides = {1, options.stride},
                               .padding = options.padding,
                               .dilations = {1, options.dilation}};
    const basic_tensor<T> image = reshape(input, {std::ptrdiff_t(in[0]), 1, std::ptrdiff_t(in[1]), std::ptrdiff_t(in[2])}, site);
    const basic_tensor<T> kernel = reshape(filters, {1, std::ptrdiff_t(k[0]), std::ptrdiff_t(k[1]), std::ptrdiff_t(k[2])}, site);
    const basic_tensor<T> out = conv2d(image, kernel, as_2d, site);
    return reshape(out, {std::ptrdiff_t(out.shape()[0]), std::ptrdiff_t(out.shape()[2]), std::ptrdiff_t(out.shape()[3])},
                   site);
}

void set_conv_algorithm(conv_algorithm algorithm)
{
    conv_algorithm_setting({}).store(algorithm, std::memory_order_relaxed);
}

conv_algorithm get_conv_algorithm()
{
    return conv_algorithm_setting({}).load(std::memory_order_relaxed);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> conv2d(const basic_tensor<T>&, const basic_tensor<T>&, conv2d_options,                  \
                                    std::source_location);                                                          \
    template basic_tensor<T> conv2d_transpose(const basic_tensor<T>&, const basic_tensor<T>&, const shape_type&,     \
                                              conv2d_options, std::source_location);                                \
    template basic_tensor<T> conv1d(const basic_tensor<T>&, const basic_tensor<T>&, conv1d_options,                  \
                                    std::source_location);                                                          \
    template basic_tensor<T> depthwise_conv2d(const basic_tensor<T>&, const basic_tensor<T>&,                        \
                                              depthwise_conv2d_options, std::source_location);                      \
    template basic_tensor<T> max_pool2d(const basic_tensor<T>&, pool2d_options, std::source_location);              \
    template basic_tensor<T> avg_pool2d(const basic_tensor<T>&, pool2d_options, std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
