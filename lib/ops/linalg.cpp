// Matrix products, through BLAS (xtensor-blas's cxxblas over OpenBLAS).
// Transposed operands are passed to gemm as flags, never materialised.
#include <optional>

#include "kernels/gemm.hpp"
#include "ops/op.hpp"

namespace gradtape {

using detail::backward_args;
using detail::fail;
using detail::format_shape;
using detail::gemm;
using detail::saved;

namespace {

// The product of matrices, with batch dimensions broadcast as NumPy's matmul
// does; both operands of rank 2 or more.
template <dtype T>
struct matmul_op {
    using value_type = T;
    static constexpr std::string_view name = "matmul";
    static constexpr saved saves = saved::inputs;
    static constexpr auto tangent = detail::tangent_family::multilinear;
    matmul_options options;

    shape_type shape(const source_location& site, const shape_type& sa, const shape_type& sb) const
    {
        const auto describe = [&] {
            return format_shape(sa) + (options.transpose_a ? "^T" : "") + " x " + format_shape(sb) +
                   (options.transpose_b ? "^T" : "");
        };
        const auto [m, k] = rows_and_columns(sa, options.transpose_a);
        const auto [k_b, n] = rows_and_columns(sb, options.transpose_b);
        if (k != k_b) {
            fail<shape_error>(name, site, "inner dimensions differ: " + describe());
        }
        std::optional<shape_type> batch =
            detail::broadcast_of(shape_type(sa.begin(), sa.end() - 2), shape_type(sb.begin(), sb.end() - 2));
        if (!batch) {
            fail<shape_error>(name, site, "batch dimensions do not broadcast: " + describe());
        }
        shape_type out = std::move(*batch);
        out.push_back(m);
        out.push_back(n);
        return out;
    }

    void forward(xt::xarray<T>& product, const xt::xarray<T>& a, const xt::xarray<T>& b) const
    {
        const auto [m, k] = rows_and_columns(a.shape(), options.transpose_a);
        const std::size_t n = product.shape().back();
        if (k == 0) {
            product.fill(T(0));
            return;
        }
        // Walk the broadcast batch index and find each operand's matrix by its own (broadcast) index.
        const shape_type batch(product.shape().begin(), product.shape().end() - 2);
        const shape_type batch_a(a.shape().begin(), a.shape().end() - 2);
        const shape_type batch_b(b.shape().begin(), b.shape().end() - 2);
        std::vector<std::size_t> index(batch.size(), 0);
        const auto offset_in = [&](const shape_type& own) {
            std::size_t offset = 0;
            for (std::size_t i = 0; i < own.size(); ++i) {
                const std::size_t dim = own[i];
                offset = offset * dim + (dim == 1 ? 0 : index[index.size() - own.size() + i]);
            }
            return offset;
        };
        const std::size_t batches = m * n == 0 ? 0 : product.size() / (m * n);
        for (std::size_t step = 0; step < batches; ++step) {
            gemm(a.data() + offset_in(batch_a) * m * k, a.shape().back(), options.transpose_a,
                 b.data() + offset_in(batch_b) * k * n, b.shape().back(), options.transpose_b,
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
    // by choosing the operand order and flags:
    //   dA = op(A) == A^T ? op(B) g^T : g op(B)^T,   dB = op(B) == B^T ? g^T op(A) : op(A)^T g.
    std::array<basic_tensor<T>, 2> backward(const backward_args<T, 2>& args) const
    {
        const basic_tensor<T>& a = args.inputs[0];
        const basic_tensor<T>& b = args.inputs[1];
        const basic_tensor<T>& grad = args.grad;
        const bool ta = options.transpose_a;
        const bool tb = options.transpose_b;
        basic_tensor<T> grad_a;
        basic_tensor<T> grad_b;
        if (args.needed[0]) {
            grad_a = ta ? matmul(b, grad, {.transpose_a = tb, .transpose_b = true})
                        : matmul(grad, b, {.transpose_a = false, .transpose_b = !tb});
        }
        if (args.needed[1]) {
            grad_b = tb ? matmul(grad, a, {.transpose_a = true, .transpose_b = ta})
                        : matmul(a, grad, {.transpose_a = !ta, .transpose_b = false});
        }
        return {std::move(grad_a), std::move(grad_b)};
    }

private:
    // The rows and columns of op(matrix), from the last two dimensions of its shape.
    static std::pair<std::size_t, std::size_t> rows_and_columns(const shape_type& shape, bool transposed)
    {
        const std::size_t rows = shape[shape.size() - 2];
        const std::size_t columns = shape[shape.size() - 1];
        return transposed ? std::pair{columns, rows} : std::pair{rows, columns};
    }
};

}  // namespace

template <dtype T>
basic_tensor<T> matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options,
                       source_location site)
{
    if (a.dimension() == 0 || b.dimension() == 0) {
        fail<shape_error>("matmul", site,
                          "needs operands of rank 1 or more, got " + format_shape(a.shape()) + " x " +
                              format_shape(b.shape()));
    }
    if (a.dimension() >= 2 && b.dimension() >= 2) {
        return detail::apply(matmul_op<T>{options}, site, a, b);
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
    const basic_tensor<T> product = detail::apply(matmul_op<T>{options}, site, a2, b2);
    auto shape = detail::signed_shape(product.shape());
    shape.erase(shape.end() - (b.dimension() == 1 ? 1 : 0), shape.end());
    if (a.dimension() == 1) {
        shape.erase(shape.end() - (b.dimension() == 1 ? 1 : 2));
    }
    return reshape(product, shape, site);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> matmul(const basic_tensor<T>&, const basic_tensor<T>&, matmul_options,                 \
                                    source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
