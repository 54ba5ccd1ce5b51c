"""From-scratch scaling laws L(N, D) fitted to any table's from-scratch runs.

Kaplan et al. (2020): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, fitted by least squares
in log loss from a small grid of starts, with a bootstrap over runs for intervals.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from tqdm.auto import tqdm

from effdata.analysis.fit import INTERVAL_PERCENTILES, jsonable

MIN_KAPLAN_POINTS = 6            # four parameters
KAPLAN_BOOTSTRAP_CAP = 200       # each Kaplan refit is a nonlinear solve; 200 is enough for 5-95%
# Kaplan et al. 2020, early-stopped L(N, D), D in tokens.
PAPER_KAPLAN = {"alpha_n": 0.076, "alpha_d": 0.103, "ratio": 0.74, "n_c": 6.4e13, "d_c": 1.8e13}



@dataclass
class KaplanFit:
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D fitted to the from-scratch runs."""

    units: str
    fitted: bool
    reason: str | None = None
    alpha_n: float | None = None
    alpha_d: float | None = None
    ratio: float | None = None                    # alpha_N / alpha_D
    n_c: float | None = None
    d_c: float | None = None
    intervals: dict[str, list[float]] = field(default_factory=dict)
    interval_percentiles: tuple[float, float] = INTERVAL_PERCENTILES
    n_points: int = 0
    rmse_log: float | None = None                 # of log loss
    n_bootstrap_used: int = 0
    paper: dict = field(default_factory=lambda: dict(PAPER_KAPLAN))

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def kaplan_loss(log_n, log_d, alpha_n, alpha_d, log_n_c, log_d_c):
    # logaddexp keeps the sum of the two terms finite for any parameter values the solver tries.
    return np.exp(alpha_d * np.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d))


def _kaplan_solve(log_n, log_d, log_loss, starts):
    def residual(p):
        alpha_n, alpha_d, log_n_c, log_d_c = p
        return alpha_d * np.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d) - log_loss

    best = None
    for start in starts:
        result = least_squares(residual, start, bounds=([1e-4, 1e-4, -100, -100], [3, 3, 300, 300]),
                               x_scale=[0.1, 0.1, 10, 10])
        if best is None or result.cost < best.cost:
            best = result
    return best


def fit_kaplan(scratch: pd.DataFrame, n_bootstrap: int = KAPLAN_BOOTSTRAP_CAP, seed: int = 0,
               warnings: list[str] | None = None, progress: bool = False) -> KaplanFit:
    """Fit Kaplan's L(N, D) to scratch runs in log loss, D in tokens (Kaplan's unit) when available."""
    return _fit_kaplan(scratch, n_bootstrap, seed, [] if warnings is None else warnings, progress)


def _fit_kaplan(scratch, n_bootstrap, seed, warnings, progress) -> KaplanFit:
    column, units = ("data_tokens", "tokens")
    if column not in scratch or scratch[column].isna().any():
        column, units = "data_chars", "chars"
    fit = KaplanFit(units=units, fitted=False)
    if column not in scratch:
        fit.reason = "not fitted: no data size column"
        return fit
    points = scratch[np.isfinite(scratch[column].astype(float)) & (scratch[column] > 0)]
    log_n, log_d = np.log(points["n_params"].to_numpy(float)), np.log(points[column].to_numpy(float))
    log_loss = np.log(points["loss"].to_numpy(float))
    if len(points) < MIN_KAPLAN_POINTS or len(np.unique(log_n)) < 2 or len(np.unique(log_d)) < 2:
        fit.reason = (f"not fitted: need ≥ {MIN_KAPLAN_POINTS} from-scratch points over ≥ 2 N and ≥ 2 D "
                      f"(have {len(points)} points, {len(np.unique(log_n))} N, {len(np.unique(log_d))} D)")
        warnings.append(f"Kaplan L(N, D): {fit.reason}")
        return fit
    median_log_loss = float(np.median(log_loss))
    starts = [[a_n, a_d, float(np.median(log_n)) + median_log_loss / a_n,
               float(np.median(log_d)) + median_log_loss / a_d]
              for a_n in (0.05, 0.1, 0.3) for a_d in (0.05, 0.1, 0.3)]
    best = _kaplan_solve(log_n, log_d, log_loss, starts)
    alpha_n, alpha_d, log_n_c, log_d_c = best.x
    fit.fitted, fit.n_points = True, len(points)
    fit.alpha_n, fit.alpha_d, fit.ratio = float(alpha_n), float(alpha_d), float(alpha_n / alpha_d)
    fit.n_c, fit.d_c = float(np.exp(min(log_n_c, 700))), float(np.exp(min(log_d_c, 700)))
    fit.rmse_log = float(np.sqrt(np.mean(best.fun ** 2)))

    rng = np.random.default_rng(seed)
    samples = []
    for _ in tqdm(range(min(n_bootstrap, KAPLAN_BOOTSTRAP_CAP)), desc="Kaplan bootstrap",
                  disable=not progress, leave=False):
        index = rng.integers(0, len(points), len(points))
        if len(np.unique(log_n[index])) < 2 or len(np.unique(log_d[index])) < 2:
            continue
        result = _kaplan_solve(log_n[index], log_d[index], log_loss[index], [best.x])
        samples.append([result.x[0], result.x[1], result.x[0] / result.x[1]])
    fit.n_bootstrap_used = len(samples)
    if len(samples) >= 10:
        lo, hi = np.percentile(np.array(samples), INTERVAL_PERCENTILES, axis=0)
        fit.intervals = {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(("alpha_n", "alpha_d", "ratio"))}
    return fit
