// Matrix products, through BLAS (xtensor-blas over OpenBLAS). Transposed
// operands are passed to gemm as flags, never materialised.
#include <xtensor-blas/xblas.hpp>

#include "op.hpp"

namespace gradtape {

using detail::fail;
using detail::format_shape;

template <dtype T>
basic_tensor<T> matmul(const basic_tensor<T>& a, const basic_tensor<T>& b, matmul_options options,
                       std::source_location site)
{
    const auto describe = [&] {
        return format_shape(a.shape()) + (options.transpose_a ? "^T" : "") + " x " + format_shape(b.shape()) +
               (options.transpose_b ? "^T" : "");
    };
    if (a.dimension() != 2 || b.dimension() != 2) {
        fail<shape_error>("matmul", site, "expects two 2-D operands, got " + describe());
    }
    const auto& sa = a.shape();
    const auto& sb = b.shape();
    const std::size_t rows = options.transpose_a ? sa[1] : sa[0];
    const std::size_t inner = options.transpose_a ? sa[0] : sa[1];
    const std::size_t inner_b = options.transpose_b ? sb[1] : sb[0];
    const std::size_t cols = options.transpose_b ? sb[0] : sb[1];
    if (inner != inner_b) {
        fail<shape_error>("matmul", site, "inner dimensions differ: " + describe());
    }
    // gemm with an empty operand would read leading dimensions of zero; the product is all zeros.
    auto product = xt::xarray<T>::from_shape({rows, cols});
    if (inner == 0) {
        product.fill(T(0));
    } else if (product.size() != 0) {
        xt::blas::gemm(a.value(), b.value(), product, options.transpose_a, options.transpose_b);
    }

    // With C = op(A) op(B): dA = g op(B)^T and dB = op(A)^T g, each written as
    // one gemm by choosing the operand order and flags.
    return detail::record_op<T>(
        "matmul", site, std::move(product),
        [a, b, ta = options.transpose_a, tb = options.transpose_b](const basic_tensor<T>& grad,
                                                                   detail::input_mask needed) {
            basic_tensor<T> grad_a;
            basic_tensor<T> grad_b;
            if (needed[0]) {
                grad_a = ta ? matmul(b, grad, {.transpose_a = tb, .transpose_b = true})
                            : matmul(grad, b, {.transpose_a = false, .transpose_b = !tb});
            }
            if (needed[1]) {
                grad_b = tb ? matmul(grad, a, {.transpose_a = true, .transpose_b = ta})
                            : matmul(a, grad, {.transpose_a = !ta, .transpose_b = false});
            }
            return std::array{std::move(grad_a), std::move(grad_b)};
        },
        a, b);
}

#define GRADTAPE_INSTANTIATE(T)                                                                                        \
    template basic_tensor<T> matmul(const basic_tensor<T>&, const basic_tensor<T>&, matmul_options,                 \
                                    std::source_location);
GRADTAPE_FOR_EACH_DTYPE(GRADTAPE_INSTANTIATE)

}  // namespace gradtape
