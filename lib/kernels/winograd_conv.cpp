// Winograd's minimal filtering (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016) for stride-1 convolutions: F(4x4,
// 3x3) over 6x6 input tiles and F(4x4, 5x5) over 8x8 ones. Per tile and
// channel,
//   output tile = A^T [(G g G^T) . (B^T d B)] A
// so that a convolution becomes one independent product per point of the
// tile's transform (36 or 64) of the tiles' transformed inputs, as (tiles,
// C), and the transformed filters, as (C, O). Per 4x4 outputs, a 3x3
// convolution takes 36 products of C x O where im2col takes 16 x 9: 4 times
// fewer; a 5x5 one takes 64 against 16 x 25: 6.25 times fewer.
//
// The input's gradient and the filters' gradient run the same steps
// adjoint, in reverse: exact adjoints of the forward computation, which is
// exactly the convolution in exact arithmetic. Rounding grows with the
// transforms' entries (from 1/90 to 8) and with the largest value of a
// tile's whole patch (README, "Convolutions").
//
// The matrices come from Toom-Cook interpolation at the points 0, 1, -1, 2,
// -2, infinity and, for 8x8 tiles, 1/2 and -1/2 (3 and -3 would give
// entries of hundreds). test/kernels/winograd_matrices.py derives them with
// exact fractions, checks the identity above for every output, filter tap
// and input, and checks that the sources write them so.
#include <algorithm>
#include <array>
#include <cstddef>
#include <span>

#include "core/dtypes.hpp"
#include "kernels/arithmetic.hpp"
#include "kernels/winograd.hpp"
#include "kernels/conv.hpp"
#include "kernels/gemm.hpp"
#include "kernels/threads.hpp"
#include "kernels/workspace.hpp"

namespace gradtape::detail {

namespace {

// The side of every output tile.
constexpr std::size_t output_side = 4;

// G (tile x r) of F(4, r), which takes the filters to their transform; the
// tile transforms' matrices are the kernels' (kernels/winograd.cpp).
constexpr std::array<double, 6 * 3> filter_matrix_3{
    1.0 / 4,  0,         0,        //
    -1.0 / 6, -1.0 / 6,  -1.0 / 6,  //
    -1.0 / 6, 1.0 / 6,   -1.0 / 6,  //
    1.0 / 24, 1.0 / 12,  1.0 / 6,   //
    1.0 / 24, -1.0 / 12, 1.0 / 6,   //
    0,        0,         1,
};
constexpr std::array<double, 8 * 5> filter_matrix_5{
    -1,        0,          0,         0,          0,         //
    -2.0 / 9,  -2.0 / 9,   -2.0 / 9,  -2.0 / 9,   -2.0 / 9,  //
    -2.0 / 9,  2.0 / 9,    -2.0 / 9,  2.0 / 9,    -2.0 / 9,  //
    1.0 / 90,  1.0 / 45,   2.0 / 45,  4.0 / 45,   8.0 / 45,  //
    1.0 / 90,  -1.0 / 45,  2.0 / 45,  -4.0 / 45,  8.0 / 45,  //
    32.0 / 45, 16.0 / 45,  8.0 / 45,  4.0 / 45,   2.0 / 45,  //
    32.0 / 45, -16.0 / 45, 8.0 / 45,  -4.0 / 45,  2.0 / 45,  //
    0,         0,          0,         0,          1,
};

// A matrix in T, and its transpose, row-major: at most 8 x 5.
template <class T>
struct matrix {
    std::array<T, 40> values{}, transposed{};

    template <std::size_t N>
    matrix(const std::array<double, N>& entries, std::size_t rows, std::size_t cols)
    {
        static_assert(N <= 40);
        std::copy(entries.begin(), entries.end(), values.begin());
        for (std::size_t i = 0; i < rows; ++i) {
            for (std::size_t j = 0; j < cols; ++j) {
                transposed[j * rows + i] = values[i * cols + j];
            }
        }
    }
};

// What each thread working on a convolution's chunks keeps, in its
// workspace: the chunk's planes of transformed inputs (tiles, C) and of
// products or gradients (tiles, O), and one tile's patch and output values.
template <class T>
struct chunk_scratch {
    T* inputs;
    T* products;
    std::span<T> patch;
    std::span<T> values;
};

// One convolution's tiling: each image's output in m x m tiles, each read
// from the tile x tile input patch at (tile row * m - pad_top, tile column *
// m - pad_left), images taken a chunk at a time, the chunks dealt to threads.
template <class T>
struct winograd_plan {
    const conv_geometry& g;
    std::size_t m, r, tile;
    winograd_matrix input, input_back, output, output_back;
    matrix<T> filter;
    std::size_t tiles_y, tiles_x;
    std::size_t chunk;    // images per chunk
    std::size_t workers;  // threads for the chunks
    // The distance between two points' planes of transformed inputs, and of
    // products: a whole chunk's plane rounded up to 4 KiB, plus a cache line.
    // At a multiple of 4 KiB, one tile's values at every point would share a
    // cache set, and a transform touching 64 of them would evict its own lines.
    std::size_t inputs_plane, products_plane;

    explicit winograd_plan(const conv_geometry& geometry)
        : g(geometry),
          m(output_side),
          r(geometry.kh),
          tile(m + r - 1),
          input(r == 3 ? winograd_matrix::input_6 : winograd_matrix::input_8),
          input_back(r == 3 ? winograd_matrix::input_6_back : winograd_matrix::input_8_back),
          output(r == 3 ? winograd_matrix::output_6 : winograd_matrix::output_8),
          output_back(r == 3 ? winograd_matrix::output_6_back : winograd_matrix::output_8_back),
          filter(r == 3 ? matrix<T>(filter_matrix_3, tile, 3) : matrix<T>(filter_matrix_5, tile, 5)),
          tiles_y((g.oh + m - 1) / m),
          tiles_x((g.ow + m - 1) / m)
    {
        // Half a million transformed inputs and products per chunk (2 MiB in
        // float): larger chunks give the products longer matrices, smaller
        // ones stay in cache.
        const std::size_t per_image = points() * tiles() * (g.c + g.o);
        chunk = std::clamp<std::size_t>((std::size_t{1} << 19) / std::max<std::size_t>(per_image, 1), 1, g.n);
        workers = 1;
        // With more threads, OpenBLAS splits a product of m * n * k at least
        // 2^18 (its SMP threshold) over them, which for these short products
        // costs more in synchronisation than it gains. Chunks whose products
        // stay under the threshold run on the calling thread, so that threads
        // of ours can take whole chunks instead. Where one image's products
        // exceed it, they are long enough for OpenBLAS's threads.
        const std::size_t threads = blas_threads();
        const std::size_t per_image_product = tiles() * g.c * g.o;
        if (threads > 1 && g.n > 1 && per_image_product < (std::size_t{1} << 18)) {
            chunk = std::min(chunk, ((std::size_t{1} << 18) - 1) / per_image_product);
            workers = std::min(threads, (g.n + chunk - 1) / chunk);
        }
        inputs_plane = plane_stride(g.c);
        products_plane = plane_stride(g.o);
    }

    // Calls work(worker, scratch, first image, images) for every chunk, the
    // chunks dealt in turn to `workers` threads (this one among them), each
    // with its own scratch.
    template <class Work>
    void for_each_chunk(Work work) const
    {
        on_threads(workers, [&](std::size_t worker) {
            workspace scratch;
            chunk_scratch<T> mine{scratch.take<T>(points() * inputs_plane), scratch.take<T>(points() * products_plane),
                                  {scratch.take<T>(points() * g.c), points() * g.c},
                                  {scratch.take<T>(m * m * g.o), m * m * g.o}};
            for (std::size_t first = worker * chunk; first < g.n; first += workers * chunk) {
                work(worker, mine, first, std::min(chunk, g.n - first));
            }
        });
    }

    [[nodiscard]] std::size_t tiles() const { return tiles_y * tiles_x; }
    [[nodiscard]] std::size_t points() const { return tile * tile; }

    [[nodiscard]] std::size_t plane_stride(std::size_t columns) const
    {
        constexpr std::size_t page = 4096 / sizeof(T);
        constexpr std::size_t line = 64 / sizeof(T);
        return (chunk * tiles() * columns + page - 1) / page * page + line;
    }

    // Calls visit(tile index within the chunk, image, tile row, tile column)
    // for every tile of images first..first + count.
    template <class Visit>
    void for_each_tile(std::size_t first, std::size_t count, Visit visit) const
    {
        for (std::size_t b = 0; b < count; ++b) {
            for (std::size_t ty = 0; ty < tiles_y; ++ty) {
                for (std::size_t tx = 0; tx < tiles_x; ++tx) {
                    visit((b * tiles_y + ty) * tiles_x + tx, first + b, ty, tx);
                }
            }
        }
    }

    // The rows of the input patch of tile (ty, tx) that lie in the image: patch
    // rows [y_first, y_last) and columns [x_first, x_last), at image row
    // ty * m - pad_top + y and column tx * m - pad_left + x.
    struct window {
        std::size_t y_first, y_last, x_first, x_last;
        std::ptrdiff_t top, left;
    };
    [[nodiscard]] window patch_window(std::size_t ty, std::size_t tx) const
    {
        const auto side = std::ptrdiff_t(tile);
        const auto inside = [side](std::ptrdiff_t origin, std::size_t extent) {
            const std::ptrdiff_t first = std::clamp<std::ptrdiff_t>(-origin, 0, side);
            const std::ptrdiff_t last = std::clamp<std::ptrdiff_t>(std::ptrdiff_t(extent) - origin, first, side);
            return std::pair{std::size_t(first), std::size_t(last)};
        };
        const std::ptrdiff_t top = std::ptrdiff_t(ty * m) - std::ptrdiff_t(g.pad_top);
        const std::ptrdiff_t left = std::ptrdiff_t(tx * m) - std::ptrdiff_t(g.pad_left);
        const auto [y_first, y_last] = inside(top, g.h);
        const auto [x_first, x_last] = inside(left, g.w);
        return {y_first, y_last, x_first, x_last, top, left};
    }

    // B^T d B of one tile's patch of C channels, its rows `row_stride` apart,
    // into the planes of (tiles, C) at row `at`, one per point.
    void transform_input(const T* patch, std::size_t row_stride, T* planes, std::size_t at) const
    {
        winograd_transform(input, patch, row_stride, g.c, planes + at * g.c, tile * inputs_plane, inputs_plane, g.c);
    }
    // Its adjoint: the planes' rows `at` back to a patch of C channels.
    void transform_input_back(const T* planes, std::size_t at, T* patch) const
    {
        winograd_transform(input_back, planes + at * g.c, tile * inputs_plane, inputs_plane, patch, tile * g.c, g.c,
                           g.c);
    }
    // A^T M A of the planes of (tiles, O) at row `at` into an m x m x O
    // tile, its rows `row_stride` apart.
    void transform_output(const T* planes, std::size_t at, T* out, std::size_t row_stride) const
    {
        winograd_transform(output, planes + at * g.o, tile * products_plane, products_plane, out, row_stride, g.o, g.o);
    }
    // Its adjoint: an m x m x O tile to the planes' rows `at`.
    void transform_output_back(const T* values, std::size_t row_stride, T* planes, std::size_t at) const
    {
        winograd_transform(output_back, values, row_stride, g.o, planes + at * g.o, tile * products_plane,
                           products_plane, g.o);
    }
    // G g G^T: the filters (r, r, C, O) to a plane of (C, O) per point, in
    // `planes` (points() * C * O values).
    void transform_filters(const T* filters, T* planes) const
    {
        const std::size_t block = g.c * g.o;
        workspace room;
        T* const rows = room.take<T>(tile * r * block);
        combine_rows(filter.values.data(), tile, r, filters, r * block, rows, r * block, r * block);
        for (std::size_t xi = 0; xi < tile; ++xi) {
            combine_rows(filter.values.data(), tile, r, rows + xi * r * block, block, planes + xi * tile * block,
                         block, block);
        }
    }
    // Its adjoint: the planes of (C, O) to filters (r, r, C, O).
    void transform_filters_back(const T* planes, T* filters) const
    {
        const std::size_t block = g.c * g.o;
        workspace room;
        T* const rows = room.take<T>(tile * r * block);
        for (std::size_t xi = 0; xi < tile; ++xi) {
            combine_rows(filter.transposed.data(), r, tile, planes + xi * tile * block, block, rows + xi * r * block,
                         block, block);
        }
        combine_rows(filter.transposed.data(), r, tile, rows, r * block, filters, r * block, r * block);
    }

    // The transformed input patches of images first..first + count: a plane
    // of (tiles, C) per point.
    void transform_inputs(const T* input_values, std::size_t first, std::size_t count, T* planes,
                          std::span<T> patch) const
    {
        const std::size_t c = g.c;
        for_each_tile(first, count, [&](std::size_t at, std::size_t image, std::size_t ty, std::size_t tx) {
            const window inside = patch_window(ty, tx);
            const auto at_pixel = [&](std::size_t row, std::size_t column) {
                return input_values + ((image * g.h + row) * g.w + column) * c;
            };
            if (inside.y_last - inside.y_first == tile && inside.x_last - inside.x_first == tile) {
                transform_input(at_pixel(std::size_t(inside.top), std::size_t(inside.left)), g.w * c, planes, at);
                return;
            }
            std::fill(patch.begin(), patch.end(), T(0));
            for (std::size_t y = inside.y_first; y < inside.y_last; ++y) {
                const std::size_t row = std::size_t(inside.top + std::ptrdiff_t(y));
                const std::size_t column = std::size_t(inside.left + std::ptrdiff_t(inside.x_first));
                std::copy_n(at_pixel(row, column), (inside.x_last - inside.x_first) * c,
                            patch.data() + (y * tile + inside.x_first) * c);
            }
            transform_input(patch.data(), tile * c, planes, at);
        });
    }

    // The transformed output gradients of images first..first + count: a
    // plane of (tiles, O) per point, zero beyond the output's edge.
    void transform_grads(const T* grad, std::size_t first, std::size_t count, T* planes, std::span<T> values) const
    {
        const std::size_t o = g.o;
        for_each_tile(first, count, [&](std::size_t at, std::size_t image, std::size_t ty, std::size_t tx) {
            const std::size_t rows = std::min(m, g.oh - ty * m);
            const std::size_t columns = std::min(m, g.ow - tx * m);
            const T* corner = grad + ((image * g.oh + ty * m) * g.ow + tx * m) * o;
            if (rows == m && columns == m) {
                transform_output_back(corner, g.ow * o, planes, at);
                return;
            }
            std::fill(values.begin(), values.end(), T(0));
            for (std::size_t i = 0; i < rows; ++i) {
                std::copy_n(corner + i * g.ow * o, columns * o, values.data() + i * m * o);
            }
            transform_output_back(values.data(), m * o, planes, at);
        });
    }
};

}  // namespace

template <class T>
void winograd_conv2d(const conv_geometry& g, const T* input, const T* filters, T* out)
{
    const winograd_plan<T> plan(g);
    workspace room;
    T* const weights = room.take<T>(plan.points() * g.c * g.o);
    plan.transform_filters(filters, weights);
    plan.for_each_chunk([&](std::size_t, chunk_scratch<T>& scratch, std::size_t first, std::size_t count) {
        const std::size_t tiles = count * plan.tiles();
        plan.transform_inputs(input, first, count, scratch.inputs, scratch.patch);
        for (std::size_t p = 0; p < plan.points(); ++p) {
            gemm(scratch.inputs + p * plan.inputs_plane, g.c, false, weights + p * g.c * g.o, g.o, false,
                 scratch.products + p * plan.products_plane, tiles, g.o, g.c);
        }
        plan.for_each_tile(first, count, [&](std::size_t at, std::size_t image, std::size_t ty, std::size_t tx) {
            const std::size_t rows_inside = std::min(plan.m, g.oh - ty * plan.m);
            const std::size_t columns_inside = std::min(plan.m, g.ow - tx * plan.m);
            T* corner = out + ((image * g.oh + ty * plan.m) * g.ow + tx * plan.m) * g.o;
            if (rows_inside == plan.m && columns_inside == plan.m) {
                plan.transform_output(scratch.products, at, corner, g.ow * g.o);
                return;
            }
            plan.transform_output(scratch.products, at, scratch.values.data(), plan.m * g.o);
            for (std::size_t i = 0; i < rows_inside; ++i) {
                std::copy_n(scratch.values.data() + i * plan.m * g.o, columns_inside * g.o, corner + i * g.ow * g.o);
            }
        });
    });
}

// Each chunk adds into its own images only, so threads never share a pixel.
template <class T>
void winograd_conv2d_transpose(const conv_geometry& g, const T* grad, const T* filters, T* out)
{
    const winograd_plan<T> plan(g);
    workspace room;
    T* const weights = room.take<T>(plan.points() * g.c * g.o);
    plan.transform_filters(filters, weights);
    std::fill_n(out, g.n * g.h * g.w * g.c, T(0));
    plan.for_each_chunk([&](std::size_t, chunk_scratch<T>& scratch, std::size_t first, std::size_t count) {
        const std::size_t tiles = count * plan.tiles();
        plan.transform_grads(grad, first, count, scratch.products, scratch.values);
        for (std::size_t p = 0; p < plan.points(); ++p) {
            gemm(scratch.products + p * plan.products_plane, g.o, false, weights + p * g.c * g.o, g.o, true,
                 scratch.inputs + p * plan.inputs_plane, tiles, g.c, g.o);
        }
        plan.for_each_tile(first, count, [&](std::size_t at, std::size_t image, std::size_t ty, std::size_t tx) {
            plan.transform_input_back(scratch.inputs, at, scratch.patch.data());
            const auto inside = plan.patch_window(ty, tx);
            for (std::size_t y = inside.y_first; y < inside.y_last; ++y) {
                const std::size_t row = std::size_t(inside.top + std::ptrdiff_t(y));
                const std::size_t column = std::size_t(inside.left + std::ptrdiff_t(inside.x_first));
                T* to = out + ((image * g.h + row) * g.w + column) * g.c;
                arithmetic_same(arithmetic::add, to, scratch.patch.data() + (y * plan.tile + inside.x_first) * g.c, to,
                                (inside.x_last - inside.x_first) * g.c);
            }
        });
    });
}

// Each thread sums its chunks' gradients (thread_sums).
template <class T>
void winograd_filter_gradient(const conv_geometry& g, const T* input, const T* grad, T* out)
{
    const winograd_plan<T> plan(g);
    const std::size_t planes = plan.points() * g.c * g.o;
    workspace room;
    T* const total = room.take<T>(planes);
    std::fill_n(total, planes, T(0));
    thread_sums<T> sums(total, planes, plan.workers);
    plan.for_each_chunk([&](std::size_t worker, chunk_scratch<T>& mine, std::size_t first, std::size_t count) {
        const std::size_t tiles = count * plan.tiles();
        T* sum = sums.of(worker);
        plan.transform_inputs(input, first, count, mine.inputs, mine.patch);
        plan.transform_grads(grad, first, count, mine.products, mine.values);
        for (std::size_t p = 0; p < plan.points(); ++p) {
            gemm(mine.inputs + p * plan.inputs_plane, g.c, true, mine.products + p * plan.products_plane, g.o, false,
                 sum + p * g.c * g.o, g.c, g.o, tiles, T(1));
        }
    });
    sums.add_up();
    plan.transform_filters_back(total, out);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template void winograd_conv2d(const conv_geometry&, const T*, const T*, T*);                                      \
    template void winograd_conv2d_transpose(const conv_geometry&, const T*, const T*, T*);                            \
    template void winograd_filter_gradient(const conv_geometry&, const T*, const T*, T*);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape::detail
