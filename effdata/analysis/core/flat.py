"""Where the Huber fit's minimum is not one point: a flat face of the summed loss, and the point we report on it.

The summed Huber loss is quadratic for residuals within ±δ and linear beyond. When the points inside ±δ do not
pin every parameter (their rows of the design have rank below p), the loss is flat along the directions they
leave free for as long as every point beyond ±δ stays beyond it on its own side: the minimisers form a
polytope, not a point. Then which minimiser an optimiser returns depends on where it started.

Measured on the committed tables (6 December, twelfth session): 21 laws in 11 reports have a face along α, all
checkpoint laws (text+code@3tpp, text@10tpp, ...: 5–11 points, two D_F per N) but one headline (text in
analysis/cpu-pretrain-lr, −0.28 to −0.16), as wide as −0.078 to 0.139 (analysis/cpu, text+code@3tpp) and −1.39 to
−0.30 (analysis/cpu-replicates, text@10tpp), β the same at every point of it. The fit kept the best of 27
starts, so the α it reported was an accident of the start grid and of float rounding: three starts gave other
values on the same tables, with the same loss to ten digits.

So the fit reports one minimiser chosen by a rule, the one with the least sum of squared residuals (the face is
convex and the squares strictly convex along it, so that point is unique), and the audit gives the face's
range of each exponent (docs/METHOD.md §6).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog, minimize

# A residual this close to ±δ counts as inside: the constraint it adds can only shrink the face.
BOUNDARY = 1e-7
RANK_TOL = 1e-10


@dataclass(frozen=True)
class FlatFace:
    """The minimisers θ + null·u with a_ub·u ≤ b_ub (every point beyond ±δ stays beyond it, on its side)."""

    theta: np.ndarray          # (p,) one minimiser
    null: np.ndarray           # (p, m) the directions the points inside ±δ leave free
    a_ub: np.ndarray           # (k, m)
    b_ub: np.ndarray           # (k,)
    residual: np.ndarray       # (n,) the residuals at theta
    along: np.ndarray          # (n, m) design @ null: how each residual moves along the face

    def least_squares_point(self) -> np.ndarray:
        """The minimiser with the least sum of squared residuals."""
        if self.null.shape[1] == 1:
            return self.theta + self.null[:, 0] * self._clip(self._free_optimum())
        start = np.zeros(self.null.shape[1])
        result = minimize(lambda u: np.sum((self.residual - self.along @ u) ** 2), start, method="SLSQP",
                          constraints=[{"type": "ineq", "fun": lambda u: self.b_ub - self.a_ub @ u}])
        return self.theta + self.null @ result.x

    def _free_optimum(self) -> float:
        column = self.along[:, 0]
        return float(column @ self.residual / (column @ column))

    def _clip(self, u: float) -> float:
        a, b = self.a_ub[:, 0], self.b_ub
        high = np.min(b[a > 0] / a[a > 0]) if (a > 0).any() else np.inf
        low = np.max(b[a < 0] / a[a < 0]) if (a < 0).any() else -np.inf
        return float(np.clip(u, low, high))

    def range_of(self, index: int) -> tuple[float, float]:
        """The lowest and highest value of parameter `index` over the face."""
        ends = []
        for sign in (1.0, -1.0):
            found = linprog(sign * self.null[index], A_ub=self.a_ub, b_ub=self.b_ub, bounds=(None, None))
            ends.append(float(self.theta[index] + self.null[index] @ found.x) if found.success else np.nan)
        return ends[0], ends[1]


def flat_face(design: np.ndarray, target: np.ndarray, delta: float, theta: np.ndarray) -> FlatFace | None:
    """The face of minimisers through `theta` (a minimiser of the summed Huber loss of target − design·θ), or
    None where the minimum is one point."""
    residual = target - design @ theta
    inside = np.abs(residual) <= delta * (1 + BOUNDARY)
    width = design.shape[1]
    if inside.any():
        _, singular, vt = np.linalg.svd(design[inside])
        rank = int((singular > RANK_TOL * max(singular.max(), 1.0)).sum())
    else:
        rank, vt = 0, np.eye(width)
    if rank >= width:
        return None
    null = vt[rank:].T
    side = np.sign(residual[~inside])
    along = design @ null
    # Beyond +δ stays ≥ δ: r − along·u ≥ δ, i.e. along·u ≤ r − δ; beyond −δ: −along·u ≤ −r − δ.
    return FlatFace(theta, null, side[:, None] * along[~inside], side * residual[~inside] - delta, residual, along)
