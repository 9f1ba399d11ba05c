// The convolutions' and pools' kernels (conv.hpp): the walk over each output
// position's window inside the image, im2col and its adjoint with one BLAS
// product per run of rows, and the direct loops of the pools and the
// depthwise convolution. The images are dealt to the library's threads
// where OpenBLAS's would not pay (threads.hpp).
#include "kernels/conv.hpp"

#include <algorithm>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "core/dtypes.hpp"
#include "kernels/arithmetic.hpp"
#include "kernels/gemm.hpp"
#include "kernels/threads.hpp"
#include "kernels/workspace.hpp"

namespace gradtape::detail {

namespace {

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
    // Each column's taps, worked out once per call; on the stack for images up
    // to 256 columns wide, so that a kernel allocates nothing.
    xt::svector<std::size_t, 256> column_first(g.ow);
    xt::svector<std::size_t, 256> column_last(g.ow);
    for (std::size_t ox = 0; ox < g.ow; ++ox) {
        std::tie(column_first[ox], column_last[ox]) = taps_inside(ox, g.stride_w, g.dilation_w, g.pad_left, g.kw, g.w);
    }
    for (std::size_t oy = first / std::max<std::size_t>(g.ow, 1); oy * g.ow < last; ++oy) {
        const auto [ky_first, ky_last] = taps_inside(oy, g.stride_h, g.dilation_h, g.pad_top, g.kh, g.h);
        const std::size_t ox_last = std::min(g.ow, last - oy * g.ow);
        for (std::size_t ox = oy * g.ow < first ? first - oy * g.ow : 0; ox < ox_last; ++ox) {
            const std::size_t kx_first = column_first[ox];
            const std::size_t kx_last = column_last[ox];
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
template <class T>
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
template <class T>
void columns_to_image(const conv_geometry& g, const T* columns, std::size_t first, std::size_t last, T* image)
{
    for_each_window(g, first, last, [&](const window& at) {
        const T* row = columns + (at.position - first) * g.patch();
        for_each_row(g, at, [&](std::size_t tap, std::size_t pixel, std::size_t taps) {
            if (g.dilation_w == 1) {
                T* to = image + pixel * g.c;
                arithmetic_same(arithmetic::add, to, row + tap * g.c, to, taps * g.c);
                return;
            }
            for (std::size_t t = 0; t < taps; ++t) {
                T* to = image + (pixel + t * g.dilation_w) * g.c;
                arithmetic_same(arithmetic::add, to, row + (tap + t) * g.c, to, g.c);
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

// How im2col takes a convolution's rows: in runs whose columns fit in 2 MiB,
// so that they stay in cache between their writing and the BLAS product.
// With more than one OpenBLAS thread, where runs of 128 rows make products
// under OpenBLAS's threading threshold (m * n * k < 2^18), the images are
// dealt in contiguous shares to threads of our own, each running products of
// up to that many rows on its own, as Winograd's chunks do
// (winograd_conv.cpp): OpenBLAS's threads would split such short products at
// a loss. Each image is one thread's.
struct column_runs {
    const conv_geometry& g;
    std::size_t run;      // rows per run
    std::size_t workers;  // threads for the images

    explicit column_runs(const conv_geometry& geometry) : g(geometry), workers(1)
    {
        const std::size_t per_row = std::max<std::size_t>(g.patch(), 1);
        run = std::clamp<std::size_t>((std::size_t{1} << 19) / per_row, 1, std::max<std::size_t>(g.n * g.positions(), 1));
        const std::size_t threshold_rows = ((std::size_t{1} << 18) - 1) / (per_row * std::max<std::size_t>(g.o, 1));
        const std::size_t threads = blas_threads();
        if (threads > 1 && g.n > 1 && threshold_rows >= 128) {
            run = std::min(run, threshold_rows);
            workers = std::min(threads, g.n);
        }
    }

    // Calls visit(worker, columns, first row, rows) for each run, with the
    // run's columns made from `input` when it is given, and otherwise left
    // for a product to write.
    template <class T, class Visit>
    void for_each(const T* input, Visit visit) const
    {
        deal(g.n, workers, [&](std::size_t worker, std::size_t first_image, std::size_t last_image) {
            workspace scratch;
            T* const columns = scratch.take<T>(run * g.patch());
            const std::size_t end = last_image * g.positions();
            for (std::size_t first = first_image * g.positions(); first < end; first += run) {
                const std::size_t rows = std::min(run, end - first);
                if (input != nullptr) {
                    for_each_image_part(g, first, rows, [&](std::size_t image, std::size_t from, std::size_t to,
                                                            std::size_t row) {
                        image_to_columns(g, input + image * g.h * g.w * g.c, from, to, columns + row * g.patch());
                    });
                }
                visit(worker, columns, first, rows);
            }
        });
    }
};


// Note [Winograd and non-finite values]
// Winograd's input transform mixes every pixel of a tile's patch into every
// point, and its output transform every point into every output of the
// tile: a NaN or an infinity anywhere in a patch would reach all the tile's
// outputs, and an infinity would become NaN, where a direct convolution
// confines it to the windows that hold it. A convolution whose operands hold
// either goes by im2col: one scan of both, which leaves finite data's results
// as they are.
template <class T>
bool by_winograd(const conv_plan& plan, const T* a, std::size_t a_size, const T* b, std::size_t b_size)
{
    const conv_geometry& g = plan.g;
    // Winograd's transforms pay only with enough channels on both sides.
    const bool wanted = plan.algorithm == conv_algorithm::winograd
                            ? winograd_applies(g)
                            : plan.algorithm == conv_algorithm::automatic && winograd_applies(g) && g.c >= 16 &&
                                  g.o >= 16;
    return wanted && all_finite(a, a_size) && all_finite(b, b_size);
}

// The threads a depthwise convolution deals its images to: OpenBLAS's
// count, as for the other convolutions, where its multiply-adds reach
// OpenBLAS's own threshold for threading a product, 2^18.
std::size_t depthwise_workers(const conv_geometry& g)
{
    const std::size_t work = g.n * g.positions() * g.kh * g.kw * g.c * g.o;
    return work < (std::size_t{1} << 18) ? 1 : std::clamp<std::size_t>(blas_threads(), 1, g.n);
}

// Calls visit(worker, output, pixel, tap) for every output position and every
// tap of its window inside the image, as flat offsets of channel 0 in the
// output (N, OH, OW, C * M), the input (N, H, W, C) and the filters (KH, KW,
// C, M), the images dealt to `workers` threads; each image is one thread's.
template <class Visit>
void for_each_depthwise_tap(const conv_geometry& g, std::size_t workers, Visit visit)
{
    const std::size_t width = g.c * g.o;
    deal(g.n, workers, [&](std::size_t worker, std::size_t first, std::size_t last) {
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

// The depthwise products at one tap: acc[c * M + m] (or acc[c], `to_input`)
// += from[...] * filter[c * M + m], over the C channels and M multipliers;
// a row of C multiply-adds where M is 1.
template <class T>
void depthwise_products(const conv_geometry& g, const T* input, const T* per_channel, T* out, bool to_input)
{
    if (g.o == 1) {
        multiply_add(input, per_channel, out, g.c);
        return;
    }
    for (std::size_t c = 0; c < g.c; ++c) {
        for (std::size_t m = 0; m < g.o; ++m) {
            T& sum = to_input ? out[c] : out[c * g.o + m];
            sum += (to_input ? input[c * g.o + m] : input[c]) * per_channel[c * g.o + m];
        }
    }
}

}  // namespace

bool winograd_applies(const conv_geometry& g)
{
    return g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.kh == g.kw &&
           (g.kh == 3 || g.kh == 5);
}

// Each image's columns times the filters, seen as (KH * KW * C, O).
template <class T>
void conv2d(const conv_plan& plan, const T* input, const T* filters, T* out)
{
    const conv_geometry& g = plan.g;
    const std::size_t outputs = g.n * g.positions() * g.o;
    if (outputs == 0) {
        return;
    }
    if (g.patch() == 0) {
        std::fill_n(out, outputs, T(0));
        return;
    }
    if (by_winograd(plan, input, g.n * g.h * g.w * g.c, filters, g.patch() * g.o)) {
        winograd_conv2d(g, input, filters, out);
        return;
    }
    column_runs(g).for_each(input, [&](std::size_t, const T* columns, std::size_t first, std::size_t rows) {
        gemm(columns, g.patch(), false, filters, g.o, false, out + first * g.o, rows, g.o, g.patch());
    });
}

// grad times the filters transposed, added back into the image.
template <class T>
void conv2d_transpose(const conv_plan& plan, const T* grad, const T* filters, T* out)
{
    const conv_geometry& g = plan.g;
    std::fill_n(out, g.n * g.h * g.w * g.c, T(0));
    const std::size_t grads = g.n * g.positions() * g.o;
    if (grads == 0 || g.n * g.h * g.w * g.c == 0) {
        return;
    }
    if (by_winograd(plan, grad, grads, filters, g.patch() * g.o)) {
        winograd_conv2d_transpose(g, grad, filters, out);
        return;
    }
    column_runs(g).for_each<T>(nullptr, [&](std::size_t, T* columns, std::size_t first, std::size_t rows) {
        gemm(grad + first * g.o, g.o, false, filters, g.o, true, columns, rows, g.patch(), g.o);
        for_each_image_part(g, first, rows, [&](std::size_t image, std::size_t from, std::size_t to, std::size_t row) {
            columns_to_image(g, columns + row * g.patch(), from, to, out + image * g.h * g.w * g.c);
        });
    });
}

// The sum over images of columns^T times grad.
template <class T>
void conv2d_filter_gradient(const conv_plan& plan, const T* input, const T* grad, T* out)
{
    const conv_geometry& g = plan.g;
    const std::size_t size = g.patch() * g.o;
    std::fill_n(out, size, T(0));
    const std::size_t inputs = g.n * g.h * g.w * g.c;
    if (inputs == 0 || size == 0 || g.positions() == 0) {
        return;
    }
    if (by_winograd(plan, input, inputs, grad, g.n * g.positions() * g.o)) {
        winograd_filter_gradient(g, input, grad, out);
        return;
    }
    const column_runs runs(g);
    thread_sums<T> sums(out, size, runs.workers);
    runs.for_each(input, [&](std::size_t worker, const T* columns, std::size_t first, std::size_t rows) {
        gemm(columns, g.patch(), true, grad + first * g.o, g.o, false, sums.of(worker), g.patch(), g.o, rows, T(1));
    });
    sums.add_up();
}

// Every window holds at least one element: same padding pads less than a
// kernel.
template <class T>
void max_pool(const conv_geometry& g, const T* input, T* pooled, std::int64_t* routes)
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
                    const T* candidates = input + offset;
                    if (first) {
                        first = false;
                        std::copy_n(candidates, g.c, best);
                        for (std::size_t k = 0; k < g.c; ++k) {
                            from[k] = std::int64_t(offset + k);
                        }
                        continue;
                    }
                    keep_larger(best, from, candidates, std::int64_t(offset), g.c);
                }
            });
        });
    }
}

template <class T>
void avg_pool(const conv_geometry& g, const T* input, T* out)
{
    std::fill_n(out, g.n * g.positions() * g.c, T(0));
    for (std::size_t b = 0; b < g.n; ++b) {
        const T* image = input + b * g.h * g.w * g.c;
        T* pooled = out + b * g.positions() * g.c;
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

// Each output's gradient, divided by its window's count, added to the window's elements.
template <class T>
void avg_pool_gradient(const conv_geometry& g, const T* grad, T* out)
{
    std::fill_n(out, g.n * g.h * g.w * g.c, T(0));
    for (std::size_t b = 0; b < g.n; ++b) {
        const T* spread = grad + b * g.positions() * g.c;
        T* image = out + b * g.h * g.w * g.c;
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

template <class T>
void depthwise_conv2d(const conv_geometry& g, const T* input, const T* filter, T* out)
{
    std::fill_n(out, g.n * g.positions() * g.c * g.o, T(0));
    for_each_depthwise_tap(g, depthwise_workers(g), [&](std::size_t, std::size_t to, std::size_t from, std::size_t tap) {
        depthwise_products(g, input + from, filter + tap, out + to, false);
    });
}

// Each output channel's gradient times its filter, added back where the window read.
template <class T>
void depthwise_input_gradient(const conv_geometry& g, const T* grad, const T* filter, T* out)
{
    std::fill_n(out, g.n * g.h * g.w * g.c, T(0));
    for_each_depthwise_tap(g, depthwise_workers(g), [&](std::size_t, std::size_t from, std::size_t to, std::size_t tap) {
        depthwise_products(g, grad + from, filter + tap, out + to, true);
    });
}

// Each tap's input channel times its output channels' gradients, summed over
// images and positions, per thread (thread_sums).
template <class T>
void depthwise_filter_gradient(const conv_geometry& g, const T* input, const T* grad, T* out)
{
    const std::size_t size = g.kh * g.kw * g.c * g.o;
    std::fill_n(out, size, T(0));
    const std::size_t workers = depthwise_workers(g);
    thread_sums<T> sums(out, size, workers);
    for_each_depthwise_tap(g, workers, [&](std::size_t worker, std::size_t from, std::size_t pixel, std::size_t tap) {
        depthwise_products(g, input + pixel, grad + from, sums.of(worker) + tap, false);
    });
    sums.add_up();
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void conv2d(const conv_plan&, const T*, const T*, T*);                                                   \
    template void conv2d_transpose(const conv_plan&, const T*, const T*, T*);                                         \
    template void conv2d_filter_gradient(const conv_plan&, const T*, const T*, T*);                                   \
    template void max_pool(const conv_geometry&, const T*, T*, std::int64_t*);                                        \
    template void avg_pool(const conv_geometry&, const T*, T*);                                                       \
    template void avg_pool_gradient(const conv_geometry&, const T*, T*);                                              \
    template void depthwise_conv2d(const conv_geometry&, const T*, const T*, T*);                                     \
    template void depthwise_input_gradient(const conv_geometry&, const T*, const T*, T*);                             \
    template void depthwise_filter_gradient(const conv_geometry&, const T*, const T*, T*);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)
#undef GRADTAPE_INSTANTIATE

}  // namespace gradtape::detail
