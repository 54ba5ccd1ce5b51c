"""From-scratch curves for many resamples at once: monotone fit, PCHIP inversion and the per-N law.

The bootstrap re-builds every N's from-scratch curve in every resample (1,000 resamples x 5 N) and reads
every fine-tuned loss off it. One scipy object per curve (PchipInterpolator, brentq, least_squares from six
starts) costs about 10 ms per curve, 50 s for such a bootstrap; the same algorithms on arrays of shape
(B, m), B curves of one N (the same data sizes, different losses), take a few milliseconds per N.
`effective.ScratchCurve` (the point estimate) calls these functions with B = 1, so the estimate and its
resamples are computed the same way.

* `isotonic_decreasing`: the weighted least-squares non-increasing fit (what pool-adjacent-violators
  gives), by the min-max formula g_i = min_{j<=i} max_{k>=i} mean(y_j..y_k), in O(B m^2).
* `pchip_slopes`: scipy's PchipInterpolator derivatives (Fritsch-Butland), batched.
* `invert_curves`: D_E with loss(D_E) = target: bisection on the monotone Hermite cubic of the segment
  that brackets the target; outside the nodes, the per-N law re-anchored at the nearest end node.
* `fit_laws`: L = l_inf + a (D/d_ref)^(-b), least squares with 0 <= l_inf < min(loss): for fixed b the
  problem is linear in (l_inf, a), so the fit profiles b over a grid and refines it by golden section.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

B_BOUNDS = (1e-3, 5.0)           # exponent b of the per-N law
LOG_A_BOUNDS = (-30.0, 30.0)
B_GRID = np.geomspace(*B_BOUNDS, 80)
GOLDEN_STEPS = 40                # bracket of two grid steps (x1.24) shrunk by 0.618^40: b to ~1e-9
BISECTION_STEPS = 50             # position within a segment to 2^-50


@dataclass(frozen=True)
class Laws:
    """Per-curve law parameters, arrays of shape (B,); nan where a curve has no law."""

    l_inf: np.ndarray
    a: np.ndarray
    b: np.ndarray
    d_ref: float


def isotonic_decreasing(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, m) -> (B, m): the weighted least-squares non-increasing fit of each row."""
    y = np.atleast_2d(np.asarray(y, float))
    w = np.broadcast_to(np.asarray(weights, float), y.shape)
    zero = np.zeros((y.shape[0], 1))
    cum_wy = np.concatenate([zero, np.cumsum(w * y, axis=1)], axis=1)
    cum_w = np.concatenate([zero, np.cumsum(w, axis=1)], axis=1)
    # mean[b, j, k] = weighted mean of y_j..y_k (j <= k); -inf elsewhere so that max ignores it.
    j, k = np.triu_indices(y.shape[1])
    mean = np.full((y.shape[0], y.shape[1], y.shape[1]), -np.inf)
    mean[:, j, k] = (cum_wy[:, k + 1] - cum_wy[:, j]) / (cum_w[:, k + 1] - cum_w[:, j])
    upper_max = np.maximum.accumulate(mean[:, :, ::-1], axis=2)[:, :, ::-1]   # max over k >= i
    lower_min = np.minimum.accumulate(upper_max, axis=1)                        # min over j <= i
    return np.diagonal(lower_min, axis1=1, axis2=2).copy()


def block_starts(fitted: np.ndarray) -> np.ndarray:
    """(B, m) bool: True where a pooled block begins (the fitted value drops)."""
    drop = fitted[:, 1:] < fitted[:, :-1] - 1e-12 * np.abs(fitted[:, :-1])
    return np.concatenate([np.ones((fitted.shape[0], 1), bool), drop], axis=1)


def pooled_nodes(log_d: np.ndarray, fitted: np.ndarray, weights: np.ndarray):
    """Yield (rows, node_log_d, node_loss) for the curves with the same number of pooled blocks.

    A block's node sits at the weighted mean log D of its members, at the block's fitted loss.
    """
    starts = block_starts(fitted)
    block = np.cumsum(starts, axis=1) - 1
    count = block[:, -1] + 1
    w = np.broadcast_to(np.asarray(weights, float), fitted.shape)
    for k in np.unique(count):
        rows = np.flatnonzero(count == k)
        onehot = block[rows][:, :, None] == np.arange(k)                     # (Bk, m, k)
        total = (onehot * w[rows][:, :, None]).sum(axis=1)
        node_log_d = (onehot * (w[rows] * log_d)[:, :, None]).sum(axis=1) / total
        node_loss = (onehot * fitted[rows][:, :, None]).sum(axis=1) / onehot.sum(axis=1)
        yield rows, node_log_d, node_loss


def _edge_slope(h0, h1, m0, m1):
    """scipy's one-sided three-point end derivative with its shape-preserving corrections."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    wrong_sign = np.sign(d) != np.sign(m0)
    too_steep = (np.sign(m0) != np.sign(m1)) & (np.abs(d) > 3 * np.abs(m0))
    d = np.where(wrong_sign, 0.0, d)
    return np.where(~wrong_sign & too_steep, 3 * m0, d)


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(B, k) nodes -> (B, k) derivatives, as scipy.interpolate.PchipInterpolator computes them."""
    h = np.diff(x, axis=1)
    m = np.diff(y, axis=1) / h
    if x.shape[1] == 2:
        return np.concatenate([m, m], axis=1)
    sign = np.sign(m)
    flat = (sign[:, 1:] != sign[:, :-1]) | (m[:, 1:] == 0) | (m[:, :-1] == 0)
    w1, w2 = 2 * h[:, 1:] + h[:, :-1], h[:, 1:] + 2 * h[:, :-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 / m[:, :-1] + w2 / m[:, 1:]) / (w1 + w2)
        inner = np.where(flat, 0.0, 1.0 / harmonic)
    first = _edge_slope(h[:, 0], h[:, 1], m[:, 0], m[:, 1])
    last = _edge_slope(h[:, -1], h[:, -2], m[:, -1], m[:, -2])
    return np.concatenate([first[:, None], inner, last[:, None]], axis=1)


def _invert_inside(x, y, slopes, targets) -> np.ndarray:
    """log D where the monotone PCHIP through (x, y) reaches each target; nan outside [y_last, y_first]."""
    inside = (targets <= y[:, :1]) & (targets >= y[:, -1:])
    segment = np.clip((y[:, None, :] > targets[:, :, None]).sum(axis=2) - 1, 0, x.shape[1] - 2)
    take = lambda a, offset: np.take_along_axis(a, segment + offset, axis=1)  # noqa: E731
    x0, x1, y0, y1, d0, d1 = take(x, 0), take(x, 1), take(y, 0), take(y, 1), take(slopes, 0), take(slopes, 1)
    h = x1 - x0
    lo, hi = np.zeros_like(targets), np.ones_like(targets)
    for _ in range(BISECTION_STEPS):   # the cubic falls monotonically on [0, 1]: keep the bracket
        s = 0.5 * (lo + hi)
        s2, s3 = s * s, s * s * s
        value = ((2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * h * d0
                 + (3 * s2 - 2 * s3) * y1 + (s3 - s2) * h * d1)
        above = value > targets
        lo, hi = np.where(above, s, lo), np.where(above, hi, s)
    return np.where(inside, x0 + 0.5 * (lo + hi) * h, np.nan)


def _invert_law(x, y, laws: Laws, rows, targets) -> np.ndarray:
    """log D_E from the law re-anchored at the nearest end node; +inf below l_inf, nan without a law."""
    low_end = targets > y[:, :1]
    anchor_x = np.where(low_end, x[:, :1], x[:, -1:])
    anchor_y = np.where(low_end, y[:, :1], y[:, -1:])
    l_inf, b = laws.l_inf[rows][:, None], laws.b[rows][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_d = anchor_x - np.log((targets - l_inf) / (anchor_y - l_inf)) / b
    usable = np.isfinite(l_inf) & (anchor_y > l_inf)
    log_d = np.where(targets <= l_inf, np.inf, log_d)
    return np.where(usable, log_d, np.nan)


def invert_curves(log_d: np.ndarray, loss: np.ndarray, weights: np.ndarray, laws: Laws,
                  targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(D_E, extrapolated), each (B, T): the same-N curve of row b read at targets[b].

    log_d (m,) sorted data sizes; loss (B, m) from-scratch losses; weights (m,) for pooling.
    """
    fitted = isotonic_decreasing(loss, weights)
    log_d_e = np.full(targets.shape, np.nan)
    extrapolated = np.ones(targets.shape, bool)
    for rows, x, y in pooled_nodes(log_d, fitted, weights):
        t = targets[rows]
        inside = np.full(t.shape, np.nan)
        if x.shape[1] >= 2:
            inside = _invert_inside(x, y, pchip_slopes(x, y), t)
        is_inside = np.isfinite(inside)
        log_d_e[rows] = np.where(is_inside, inside, _invert_law(x, y, laws, rows, t))
        extrapolated[rows] = ~is_inside
    with np.errstate(over="ignore"):
        return np.exp(log_d_e), extrapolated


def _profile(z: np.ndarray, y: np.ndarray, upper: np.ndarray):
    """Least squares of y ~ l_inf + a z for fixed z, with 0 <= l_inf <= upper: (l_inf, a, sse).

    The problem is a convex quadratic in (l_inf, a): if the free optimum breaks the bound on l_inf,
    the constrained one lies on that bound, with a refitted there.
    """
    z_mean, y_mean = z.mean(axis=-1, keepdims=True), y.mean(axis=-1, keepdims=True)
    a = ((z - z_mean) * (y - y_mean)).sum(axis=-1) / ((z - z_mean) ** 2).sum(axis=-1)
    l_inf = y_mean[..., 0] - a * z_mean[..., 0]
    clamped = np.clip(l_inf, 0.0, upper)
    on_bound = clamped != l_inf
    a_bound = (z * (y - clamped[..., None])).sum(axis=-1) / (z * z).sum(axis=-1)
    a = np.clip(np.where(on_bound, a_bound, a), np.exp(LOG_A_BOUNDS[0]), np.exp(LOG_A_BOUNDS[1]))
    sse = ((clamped[..., None] + a[..., None] * z - y) ** 2).sum(axis=-1)
    return clamped, a, sse


def fit_laws(d: np.ndarray, loss: np.ndarray) -> Laws:
    """Fit L = l_inf + a (D/d_ref)^(-b) to each row of loss (B, m) at the data sizes d (m,)."""
    d, y = np.asarray(d, float), np.atleast_2d(np.asarray(loss, float))
    d_ref = float(np.exp(np.mean(np.log(d))))
    log_x = np.log(d / d_ref)
    upper = y.min(axis=1) * (1 - 1e-9)
    grid_z = np.exp(-B_GRID[:, None] * log_x)                                   # (G, m)
    _, _, sse = _profile(grid_z[None], y[:, None, :], upper[:, None])          # (B, G)
    best = np.argmin(sse, axis=1)
    log_grid = np.log(B_GRID)
    lo = log_grid[np.maximum(best - 1, 0)]
    hi = log_grid[np.minimum(best + 1, len(B_GRID) - 1)]
    log_b = _golden_section(lambda lb: _profile(np.exp(-np.exp(lb)[:, None] * log_x), y, upper)[2], lo, hi)
    l_inf, a, _ = _profile(np.exp(-np.exp(log_b)[:, None] * log_x), y, upper)
    return Laws(l_inf=l_inf, a=a, b=np.exp(log_b), d_ref=d_ref)


def _golden_section(objective, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Minimiser of a unimodal objective (B,) -> (B,) on each [lo, hi], all rows at once."""
    ratio = (np.sqrt(5) - 1) / 2
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f_c, f_d = objective(c), objective(d)
    for _ in range(GOLDEN_STEPS):
        left = f_c < f_d               # the minimum lies in [lo, d]
        lo, hi = np.where(left, lo, c), np.where(left, d, hi)
        new = np.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        f_new = objective(new)
        c, d, f_c, f_d = (np.where(left, new, d), np.where(left, c, new),
                          np.where(left, f_new, f_d), np.where(left, f_c, f_new))
    return np.where(f_c < f_d, c, d)
