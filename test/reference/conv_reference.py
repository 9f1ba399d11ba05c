"""Reference values of conv2d, conv2d_transpose, depthwise_conv2d, max_pool2d
and avg_pool2d for every padding, stride and dilation combination the tests
take, computed with NumPy from TensorFlow's definitions (padded copies and
strided slices, nothing shared with the library or its C++ tests), written
as test/reference/conv_reference.hpp.

The inputs are small integers from one formula, which test_conv.cpp
repeats: element i (row-major) of a tensor is (i * multiplier) % modulus -
offset. Convolutions of integers are exact in double, so their values are
written as integers; the averages as the nearest double (repr).

Usage: conv_reference.py OUTPUT          writes the header
       conv_reference.py --check HEADER  regenerates it and compares
"""
import os
import sys

try:
    import numpy as np
except ImportError:
    # Debian's interpreter has python3-numpy; another python3 first on PATH
    # may not.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("no python3 with numpy (apt-get install python3-numpy): skipping")
    sys.exit(77)

INPUT_FORMULA = (7, 11, 5)  # multiplier, modulus, offset: values -5..5
FILTER_FORMULA = (5, 7, 3)  # values -3..3


def integers(shape, formula):
    multiplier, modulus, offset = formula
    count = int(np.prod(shape))
    return ((np.arange(count) * multiplier) % modulus - offset).astype(np.float64).reshape(shape)


def extent(size, kernel, stride, dilation, same):
    """Output size and padding before, as TensorFlow's SAME and VALID."""
    span = (kernel - 1) * dilation + 1
    if not same:
        return (size - span) // stride + 1, 0, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2


def window_slices(out_h, out_w, ky, kx, strides, dilations):
    """The rows and columns of a padded input that tap (ky, kx) reads."""
    rows = slice(ky * dilations[0], ky * dilations[0] + (out_h - 1) * strides[0] + 1, strides[0])
    cols = slice(kx * dilations[1], kx * dilations[1] + (out_w - 1) * strides[1] + 1, strides[1])
    return rows, cols


def geometry(input_shape, kh, kw, strides, dilations, same):
    out_h, top, bottom = extent(input_shape[1], kh, strides[0], dilations[0], same)
    out_w, left, right = extent(input_shape[2], kw, strides[1], dilations[1], same)
    return out_h, out_w, ((0, 0), (top, bottom), (left, right), (0, 0))


def conv2d(x, w, strides, dilations, same):
    kh, kw = w.shape[:2]
    out_h, out_w, pads = geometry(x.shape, kh, kw, strides, dilations, same)
    padded = np.pad(x, pads)
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[3]))
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = window_slices(out_h, out_w, ky, kx, strides, dilations)
            out += np.einsum("nhwc,co->nhwo", padded[:, rows, cols, :], w[ky, kx])
    return out


def conv2d_transpose(g, w, input_shape, strides, dilations, same):
    """The adjoint of conv2d: each tap's products added back where it read."""
    kh, kw = w.shape[:2]
    out_h, out_w, pads = geometry(input_shape, kh, kw, strides, dilations, same)
    padded = np.zeros(np.pad(np.zeros(input_shape), pads).shape)
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = window_slices(out_h, out_w, ky, kx, strides, dilations)
            padded[:, rows, cols, :] += np.einsum("nhwo,co->nhwc", g, w[ky, kx])
    (_, _), (top, _), (left, _), (_, _) = pads
    return padded[:, top:top + input_shape[1], left:left + input_shape[2], :]


def depthwise_conv2d(x, w, strides, dilations, same):
    kh, kw, channels, multiplier = w.shape
    out_h, out_w, pads = geometry(x.shape, kh, kw, strides, dilations, same)
    padded = np.pad(x, pads)
    out = np.zeros((x.shape[0], out_h, out_w, channels, multiplier))
    for ky in range(kh):
        for kx in range(kw):
            rows, cols = window_slices(out_h, out_w, ky, kx, strides, dilations)
            out += padded[:, rows, cols, :, None] * w[ky, kx]
    return out.reshape(x.shape[0], out_h, out_w, channels * multiplier)


def pool(x, ksize, strides, same, maximum):
    """Max or mean over each window's elements inside the input only."""
    out_h, out_w, pads = geometry(x.shape, ksize[0], ksize[1], strides, (1, 1), same)
    inside = np.pad(np.ones(x.shape), pads)
    padded = np.pad(x, pads, constant_values=-np.inf if maximum else 0.0)
    best = np.full((x.shape[0], out_h, out_w, x.shape[3]), -np.inf)
    total = np.zeros(best.shape)
    count = np.zeros(best.shape)
    for ky in range(ksize[0]):
        for kx in range(ksize[1]):
            rows, cols = window_slices(out_h, out_w, ky, kx, strides, (1, 1))
            best = np.maximum(best, padded[:, rows, cols, :])
            total += padded[:, rows, cols, :]
            count += inside[:, rows, cols, :]
    return best if maximum else total / count


def cases():
    """(op, input shape, window shape, strides, dilations, same, values)."""
    out = []
    for same in (False, True):
        for stride in (1, 2, 3):
            for dilation in (1, 2):
                strides, dilations = (stride, stride), (dilation, dilation)
                out.append(("conv2d", (2, 7, 6, 3), (3, 2, 3, 4), strides, dilations, same))
                out.append(("conv2d_transpose", (2, 7, 6, 3), (3, 2, 3, 4), strides, dilations, same))
                out.append(("depthwise_conv2d", (1, 7, 6, 3), (3, 2, 3, 2), strides, dilations, same))
        for op in ("conv2d", "conv2d_transpose"):
            out.append((op, (1, 8, 5, 2), (2, 3, 2, 3), (2, 1), (1, 2), same))
            out.append((op, (1, 4, 4, 1), (4, 4, 1, 1), (1, 1), (1, 1), same))
        for strides in ((1, 1), (2, 2), (3, 2), (2, 3)):
            for op in ("max_pool2d", "avg_pool2d"):
                out.append((op, (1, 7, 6, 2), (3, 2, 1, 1), strides, (1, 1), same))
    return out


def values(op, input_shape, window, strides, dilations, same):
    x = integers(input_shape, INPUT_FORMULA)
    w = integers(window, FILTER_FORMULA)
    if op == "conv2d":
        return conv2d(x, w, strides, dilations, same)
    if op == "conv2d_transpose":
        # The op's input is conv2d's output gradient; its output is x's shape.
        out_h, out_w, _ = geometry(input_shape, window[0], window[1], strides, dilations, same)
        g = integers((input_shape[0], out_h, out_w, window[3]), INPUT_FORMULA)
        return conv2d_transpose(g, w, input_shape, strides, dilations, same)
    if op == "depthwise_conv2d":
        return depthwise_conv2d(x, w, strides, dilations, same)
    return pool(x, window[:2], strides, same, op == "max_pool2d")


def number(value):
    if value == int(value):
        return str(int(value))
    return repr(float(value))


def header():
    lines = [
        "// Generated by conv_reference.py from NumPy; do not edit (the meson test",
        "// conv_reference regenerates it and compares).",
        "#pragma once",
        "",
        "#include <array>",
        "#include <cstddef>",
        "#include <string_view>",
        "#include <vector>",
        "",
        "namespace reference {",
        "",
        "// Inputs: element i is (i * multiplier) % modulus - offset.",
        f"constexpr std::array<int, 3> input_formula{{{', '.join(map(str, INPUT_FORMULA))}}};",
        f"constexpr std::array<int, 3> filter_formula{{{', '.join(map(str, FILTER_FORMULA))}}};",
        "",
        "// window: the filters' shape, or a pool's ksize followed by 1, 1.",
        "struct conv_value {",
        "    std::string_view op;",
        "    std::array<std::size_t, 4> input, window, output;",
        "    std::array<std::ptrdiff_t, 2> strides, dilations;",
        "    bool same;",
        "    std::vector<double> values;",
        "};",
        "",
        "inline const std::vector<conv_value> conv_values{",
    ]
    for op, input_shape, window, strides, dilations, same in cases():
        result = values(op, input_shape, window, strides, dilations, same)
        shape = ", ".join(map(str, result.shape))
        lines.append(
            f'    {{"{op}", {{{", ".join(map(str, input_shape))}}}, {{{", ".join(map(str, window))}}}, {{{shape}}}, '
            f'{{{strides[0]}, {strides[1]}}}, {{{dilations[0]}, {dilations[1]}}}, {"true" if same else "false"},')
        lines.append("     {" + ", ".join(number(v) for v in result.ravel()) + "}},")
    lines += ["};", "", "}  // namespace reference", ""]
    return "\n".join(lines)


def main():
    text = header()
    if sys.argv[1] == "--check":
        if open(sys.argv[2]).read() != text:
            print(f"{sys.argv[2]} differs from what conv_reference.py generates now")
            sys.exit(1)
        print(f"{sys.argv[2]}: as NumPy computes it")
        return
    with open(sys.argv[1], "w") as out:
        out.write(text)


if __name__ == "__main__":
    main()
