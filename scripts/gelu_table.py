"""Writes csrc/gelu_table.inc: the engine GELU's Phi(a) = P(|x| <= a) for a in [0, 8) as 32
polynomials of degree 4, one per quarter, each fitted in float64 (Chebyshev least squares) and stored in
float32. Off Phi by under 7e-8 when evaluated in float32 (the check below); GELU(x) = x Phi(x), and
Phi(8) is 1 to within 7e-16.

  python scripts/gelu_table.py      (needs numpy and scipy)
"""
from pathlib import Path

import numpy as np
from scipy.special import ndtr

SEGMENTS, STEPS_PER_UNIT, DEGREE = 32, 4, 4


def fitted(segment: int) -> np.ndarray:
    """float32 coefficients, lowest first, of Phi((segment + u) / STEPS_PER_UNIT) for u in [0, 1]."""
    t = np.cos(np.linspace(0, np.pi, 400))  # Chebyshev points in [-1, 1], u = (t + 1) / 2
    chebyshev = np.polynomial.chebyshev.chebfit(t, ndtr((segment + (t + 1) / 2) / STEPS_PER_UNIT), DEGREE)
    in_t = np.polynomial.Polynomial(np.polynomial.chebyshev.cheb2poly(chebyshev))
    return in_t(np.polynomial.Polynomial([-1.0, 2.0])).coef.astype(np.float32)


def worst_error(table: np.ndarray) -> float:
    """The largest |Phi - table's polynomial| over a fine grid, Horner in float32 as the engine does."""
    u = np.linspace(0, 1, 4001, dtype=np.float32)
    worst = 0.0
    for segment in range(SEGMENTS):
        p = np.full_like(u, table[DEGREE, segment])
        for k in range(DEGREE - 1, -1, -1):
            p = (p.astype(np.float64) * u + table[k, segment]).astype(np.float32)
        worst = max(worst, np.abs(p - ndtr((segment + u.astype(np.float64)) / STEPS_PER_UNIT)).max())
    return worst


def main() -> None:
    table = np.stack([fitted(s) for s in range(SEGMENTS)], axis=1)  # [degree + 1, segment]
    error = worst_error(table)
    assert error < 1e-7, error
    rows = ",\n".join("    {" + ", ".join(f"{c:.9e}f" for c in row) + "}" for row in table)
    Path(__file__).parents[1].joinpath("csrc", "gelu_table.inc").write_text(
        "// Made by scripts/gelu_table.py (do not edit): Phi(x) = P(Z <= x) for x in [0, 8) as polynomials of\n"
        f"// degree {DEGREE} in u = 4 x - i on each quarter i, coefficient k of quarter i at kGeluPhi[k][i]. Off Phi\n"
        f"// by under {error:.1e} evaluated in float32. Included inside a kernels file's variant namespace.\n"
        f"constexpr int kGeluSegments = {SEGMENTS}, kGeluDegree = {DEGREE};\n"
        f"constexpr float kGeluStepsPerUnit = {STEPS_PER_UNIT}.f, kGeluEnd = {SEGMENTS // STEPS_PER_UNIT}.f;\n"
        f"constexpr float kGeluPhi[kGeluDegree + 1][kGeluSegments] = {{\n{rows}}};\n")


if __name__ == "__main__":
    main()
