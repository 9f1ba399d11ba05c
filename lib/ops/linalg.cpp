// Matrix products, through BLAS (xtensor-blas's cxxblas over OpenBLAS).
// Transposed operands are passed to gemm as flags, never materialised.
#include <xtensor-blas/xblas.hpp>

#include "op.hpp"

namespace gradtape {

using detail::fail;
using detail::format_shape;

namespace {

// One row-major gemm: c (m x n) = op(a) op(b), with a stored as a_rows x a_cols.
template <dtype T>
void gemm(const T* a, std::size_t a_cols, bool transpose_a, const T* b, std::size_t b_cols, bool transpose_b, T* c,
          std::size_t m, std::size_t n, std::size_t k)
{
    using index = xt::blas_index_t;
    const auto flag = [](bool transposed) { return transposed ? cxxblas::Trans : cxxblas::NoTrans; };
    cxxblas::gemm<index>(cxxblas::StorageOrder::RowMajor, flag(transpose_a), flag(transpose_b), index(m), index(n),
                         index(k), T(1), a, index(a_cols), b, index(b_cols), T(0), c, index(n));
}

// The 2-D core, with batch dimensions broadcast as NumPy's matmul does.
template <dtype T>
basic_tensor<T> batched_matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options,
                               const std::source_location& site)
{
    const auto describe = [&] {
        return format_shape(a.shape()) + (options.transpose_a ? "^T" : "") + " x " + format_shape(b.shape()) +
               (options.transpose_b ? "^T" : "");
    };
    const shape_type& sa = a.shape();
    const shape_type& sb = b.shape();
    const std::size_t ra = sa.size();
    const std::size_t rb = sb.size();
    const std::size_t m = options.transpose_a ? sa[ra - 1] : sa[ra - 2];
    const std::size_t k = options.transpose_a ? sa[ra - 2] : sa[ra - 1];
    const std::size_t k_b = options.transpose_b ? sb[rb - 1] : sb[rb - 2];
    const std::size_t n = options.transpose_b ? sb[rb - 2] : sb[rb - 1];
    if (k != k_b) {
        fail<shape_error>("matmul", site, "inner dimensions differ: " + describe());
    }
    const shape_type batch_a(sa.begin(), sa.end() - 2);
    const shape_type batch_b(sb.begin(), sb.end() - 2);
    shape_type batch(std::max(batch_a.size(), batch_b.size()));
    for (std::size_t i = 1; i <= batch.size(); ++i) {
        const std::size_t da = i <= batch_a.size() ? batch_a[batch_a.size() - i] : 1;
        const std::size_t db = i <= batch_b.size() ? batch_b[batch_b.size() - i] : 1;
        if (da != db && da != 1 && db != 1) {
            fail<shape_error>("matmul", site, "batch dimensions do not broadcast: " + describe());
        }
        batch[batch.size() - i] = std::max(da, db);
    }

    shape_type out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    detail::check_allocatable("matmul", site, out_shape, sizeof(T));
    auto product = xt::xarray<T>::from_shape(out_shape);
    const std::size_t batches = m * n == 0 ? 0 : product.size() / (m * n);
    if (k == 0) {
        product.fill(T(0));
    } else {
        // Walk the broadcast batch index and find each operand's matrix by its own (broadcast) index.
        std::vector<std::size_t> index(batch.size(), 0);
        const auto offset_in = [&](const shape_type& own) {
            std::size_t offset = 0;
            for (std::size_t i = 0; i < own.size(); ++i) {
                const std::size_t dim = own[i];
                offset = offset * dim + (dim == 1 ? 0 : index[index.size() - own.size() + i]);
            }
            return offset;
        };
        for (std::size_t step = 0; step < batches; ++step) {
            gemm(a.value().data() + offset_in(batch_a) * m * k, sa[ra - 1], options.transpose_a,
                 b.value().data() + offset_in(batch_b) * k * n, sb[rb - 1], options.transpose_b,
                 product.data() + step * m * n, m, n, k);
            for (std::size_t i = index.size(); i-- > 0;) {
                if (++index[i] < batch[i]) {
                    break;
                }
                index[i] = 0;
            }
        }
    }

    // With C = op(A) op(B): dA = g op(B)^T and dB = op(A)^T g, each one gemm
    // by choosing the operand order and flags, then summed over the batch
    // dimensions that broadcasting added.
    return detail::record_op<T>(
        "matmul", site, std::move(product),
        [a, b, ta = options.transpose_a, tb = options.transpose_b](const basic_tensor<T>& grad,
                                                                   detail::input_mask needed) {
            basic_tensor<T> grad_a;
            basic_tensor<T> grad_b;
            if (needed[0]) {
                grad_a = detail::sum_to_shape(ta ? matmul(b, grad, {.transpose_a = tb, .transpose_b = true})
                                                 : matmul(grad, b, {.transpose_a = false, .transpose_b = !tb}),
                                              a.shape());
            }
            if (needed[1]) {
                grad_b = detail::sum_to_shape(tb ? matmul(grad, a, {.transpose_a = true, .transpose_b = ta})
                                                 : matmul(a, grad, {.transpose_a = !ta, .transpose_b = false}),
                                              b.shape());
            }
            return std::array{std::move(grad_a), std::move(grad_b)};
        },
        a, b);
}

}  // namespace

template <dtype T>
basic_tensor<T> matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options,
                       std::source_location site)
{
    if (a.dimension() == 0 || b.dimension() == 0) {
        fail<shape_error>("matmul", site,
                          "needs operands of rank 1 or more, got " + format_shape(a.shape()) + " x " +
                              format_shape(b.shape()));
    }
    if (a.dimension() >= 2 && b.dimension() >= 2) {
        return batched_matmul(a, b, options, site);
    }
    if ((options.transpose_a && a.dimension() == 1) || (options.transpose_b && b.dimension() == 1)) {
        fail<argument_error>("matmul", site, "transpose flags need operands of rank 2 or more");
    }
    const std::size_t k = a.dimension() == 1 ? a.shape()[0] : a.shape()[a.dimension() - 1];
    const std::size_t k_b = b.dimension() == 1 ? b.shape()[0] : b.shape()[b.dimension() - 2];
    if (k != k_b && !options.transpose_a && !options.transpose_b) {
        fail<shape_error>("matmul", site,
                          "inner dimensions differ: " + format_shape(a.shape()) + " x " + format_shape(b.shape()));
    }
    // NumPy's rule for vectors: a is a row (1, k), b a column (k, 1), and the
    // added dimension is dropped from the result.
    const basic_tensor<T> a2 = a.dimension() == 1 ? reshape(a, {1, -1}, site) : a;
    const basic_tensor<T> b2 = b.dimension() == 1 ? reshape(b, {-1, 1}, site) : b;
    const basic_tensor<T> product = batched_matmul(a2, b2, options, site);
    auto shape = detail::signed_shape(product.shape());
    shape.erase(shape.end() - (b.dimension() == 1 ? 1 : 0), shape.end());
    if (a.dimension() == 1) {
        shape.erase(shape.end() - (b.dimension() == 1 ? 1 : 2));
    }
    return reshape(product, shape, site);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> matmul(const basic_tensor<T>&, const basic_tensor<T>&, matmul_options,                 \
                                    std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
