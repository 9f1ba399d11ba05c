"""Winograd's F(4, 3) and F(4, 5) matrices, derived here with exact fractions
by Toom-Cook interpolation at the points 0, 1, -1, 2, -2 (and 1/2, -1/2 for
F(4, 5)) and infinity, checked against the definition, and looked for in the
sources that use them.

For 1-D correlation y[i] = sum_q g[q] d[i + q], i < m, q < r, over a tile
of n = m + r - 1 inputs: y = A^T ((G g) * (B^T d)). A^T evaluates the
product polynomial's coefficients at the points, G evaluates the filter's
divided by the Lagrange denominators, and B^T follows from the identity
(solved here exactly, column by column).

Usage: winograd_matrices.py KERNEL_SOURCE OPS_SOURCE
"""
import re
import sys
from fractions import Fraction

POINTS = [Fraction(p) for p in (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))]


def solve(rows, rhs):
    """The solution of a consistent linear system, by exact elimination."""
    rows = [list(r) + [b] for r, b in zip(rows, rhs)]
    unknowns = len(rows[0]) - 1
    pivot_row = 0
    pivots = []
    for column in range(unknowns):
        pick = next((i for i in range(pivot_row, len(rows)) if rows[i][column] != 0), None)
        if pick is None:
            continue
        rows[pivot_row], rows[pick] = rows[pick], rows[pivot_row]
        lead = rows[pivot_row][column]
        rows[pivot_row] = [v / lead for v in rows[pivot_row]]
        for i in range(len(rows)):
            if i != pivot_row and rows[i][column] != 0:
                factor = rows[i][column]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[pivot_row])]
        pivots.append(column)
        pivot_row += 1
    assert all(all(v == 0 for v in row) for row in rows[pivot_row:]), "inconsistent system"
    solution = [Fraction(0)] * unknowns
    for i, column in enumerate(pivots):
        solution[column] = rows[i][-1]
    return solution


def matrices(m, r):
    n = m + r - 1
    a = POINTS[: n - 1]
    at = [[p**i for p in a] + [Fraction(int(i == m - 1))] for i in range(m)]

    def denominator(j):
        out = Fraction(1)
        for l, p in enumerate(a):
            if l != j:
                out *= a[j] - p
        return out

    g = [[a[j] ** k / denominator(j) for k in range(r)] for j in range(n - 1)]
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    bt = [[None] * n for _ in range(n)]
    for t in range(n):
        equations = [[at[i][k] * g[k][q] for k in range(n)] for i in range(m) for q in range(r)]
        wanted = [Fraction(int(t == i + q)) for i in range(m) for q in range(r)]
        column = solve(equations, wanted)
        for k in range(n):
            bt[k][t] = column[k]
    for i in range(m):
        for q in range(r):
            for t in range(n):
                total = sum(at[i][k] * g[k][q] * bt[k][t] for k in range(n))
                assert total == int(t == i + q), (m, r, i, q, t, total)
    return at, g, bt


def written(value):
    """A matrix entry as the sources write it: 4, -5, 1.0 / 90, -21.0 / 4."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}.0 / {value.denominator}"


def squeezed(text):
    return re.sub(r"\s+", "", text)


def main():
    kernel_source = squeezed(open(sys.argv[1]).read())
    ops_source = squeezed(open(sys.argv[2]).read())
    missing = []
    for m, r in ((4, 3), (4, 5)):
        at, g, bt = matrices(m, r)
        for row in at + bt:
            text = squeezed("{" + ",".join(written(v) for v in row) + "}")
            if text not in kernel_source:
                missing.append(f"F({m}, {r}) row {text} not in {sys.argv[1]}")
        for row in g:
            text = squeezed(",".join(written(v) for v in row) + ",")
            if text not in ops_source:
                missing.append(f"F({m}, {r}) G row {text} not in {sys.argv[2]}")
    for line in missing:
        print(line)
    if missing:
        sys.exit(1)
    print("F(4, 3) and F(4, 5): exact, and as written in the sources")


if __name__ == "__main__":
    main()
