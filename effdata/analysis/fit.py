"""Fit D_T = k * D_F^alpha * N^beta (Hernandez et al. 2021), with intervals.

The transfer law is fitted in log space, log D_T = log k + alpha log D_F + beta log N, by
minimising the *summed* Huber loss of the log residuals (docs/METHOD.md §4) with L-BFGS-B from a grid
of starts. Regressors are centred first (log k is recovered afterwards): that removes the strong
correlation between log k and the slopes that otherwise makes L-BFGS stop early.

The model is linear in (log k, alpha, beta), so the Huber objective is convex: every start reaches
the same minimum, and iteratively reweighted least squares (IRLS, Huber's own algorithm) minimises
exactly the same objective. We use IRLS, vectorised over all resamples at once, for the bootstrap
(1,000 resamples in well under a second) and as a check on L-BFGS (the better objective is kept).

Huber delta: docs/METHOD.md quotes delta ~ 1e-3 from the Chinchilla fit, where residuals are in log
*loss* (~1e-2). Residuals in log D_T are ~10-100x larger, so 1e-3 would make the fit plain L1
(median) regression. We default to delta = 0.1 (residuals beyond ~10% count linearly); it is a
parameter (`huber_delta`, CLI `--huber-delta`).

Intervals are bootstrap percentile intervals, 5th to 95th percentile (a 90% interval), over
resampled runs (grid points), refitted each time.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import huber
from tqdm.auto import tqdm

DEFAULT_HUBER_DELTA = 0.1
DEFAULT_BOOTSTRAP = 1000
INTERVAL_PERCENTILES = (5.0, 95.0)
MIN_FIT_POINTS = 5               # three parameters plus at least two degrees of freedom

# Hernandez et al. 2021, Table 1 / Fig. 1 (D in characters, N non-embedding).
PAPER_TRANSFER = {
    "text": {"label": "text → Python", "k": 1.9e4, "alpha": 0.18, "beta": 0.38},
    "text+code": {"label": "50% text + 50% non-Python code → Python", "k": 2.1e5, "alpha": 0.096, "beta": 0.38},
}

# --------------------------------------------------------------------------- Huber regression core

def huber_minimize_lbfgs(design: np.ndarray, target: np.ndarray, delta: float,
                         starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Best (params, summed Huber loss) over L-BFGS-B runs from `starts`."""

    def objective(theta):
        residual = target - design @ theta
        gradient = -design.T @ np.clip(residual, -delta, delta)
        return float(huber(delta, residual).sum()), gradient

    best_theta, best_value = None, math.inf
    for start in starts:
        result = minimize(objective, start, jac=True, method="L-BFGS-B",
                          options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-12})
        if result.fun < best_value:
            best_theta, best_value = result.x, float(result.fun)
    return best_theta, best_value


def huber_irls(design: np.ndarray, target: np.ndarray, delta: float, start: np.ndarray,
               max_iter: int = 300, tol: float = 1e-9) -> np.ndarray:
    """Huber regression by IRLS, batched: design (B, n, p), target (B, n), start (B, p) -> (B, p).

    Each step solves a weighted least-squares problem with weights min(1, delta/|r|); this is a
    majorise-minimise step, so the summed Huber loss never increases.
    """
    theta = start.copy()
    ridge = 1e-12 * np.eye(design.shape[-1])
    for _ in range(max_iter):
        residual = target - (design @ theta[..., None])[..., 0]
        weight = delta / np.maximum(np.abs(residual), delta)
        weighted_t = (design * weight[..., None]).transpose(0, 2, 1)      # (B, p, n)
        normal = weighted_t @ design + ridge
        rhs = weighted_t @ target[..., None]
        new_theta = np.linalg.solve(normal, rhs)[..., 0]
        converged = np.max(np.abs(new_theta - theta)) < tol
        theta = new_theta
        if converged:
            break
    return theta


# --------------------------------------------------------------------------- transfer law

@dataclass
class HeldOut:
    """Leave-one-group-out prediction of log D_T."""

    group: str                                    # "n_params" or "d_f"
    folds: int                                    # groups held out that could be predicted
    n_predicted: int
    mean_abs_log_error: float | None              # natural log
    error_factor: float | None                    # exp(mean_abs_log_error): "off by a factor of"
    per_fold: list[dict] = field(default_factory=list)


@dataclass
class TransferFit:
    """The fitted D_T = k D_F^alpha N^beta for one pretraining distribution."""

    pretrain: str
    units: str
    fitted: bool
    reason: str | None = None                     # why not fitted, when fitted is False
    k: float | None = None
    alpha: float | None = None
    beta: float | None = None
    intervals: dict[str, list[float]] = field(default_factory=dict)   # name -> [lo, hi]
    interval_percentiles: tuple[float, float] = INTERVAL_PERCENTILES
    regime: str | None = None                     # "low_data" or "all_positive"
    n_points: int = 0
    n_distinct_n: int = 0
    n_distinct_d_f: int = 0
    n_extrapolated: int = 0                       # of the points used
    n_ossified: int = 0                           # D_T <= 0, reported, not fitted
    n_excluded_other: int = 0                     # beyond reach / no scratch / outside regime
    r2_log: float | None = None
    rmse_log: float | None = None
    huber_delta: float = DEFAULT_HUBER_DELTA
    objective: float | None = None                # summed Huber loss at the optimum
    n_bootstrap: int = 0
    n_bootstrap_used: int = 0                     # resamples that were not degenerate
    heldout: dict[str, HeldOut] = field(default_factory=dict)
    samples: np.ndarray | None = field(default=None, repr=False)   # bootstrap (log k, alpha, beta)

    def predict(self, d_f, n_params):
        return self.k * np.asarray(d_f, float) ** self.alpha * np.asarray(n_params, float) ** self.beta

    def paper(self) -> dict | None:
        return PAPER_TRANSFER.get(self.pretrain)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("samples")
        return jsonable(out)


def jsonable(value):
    """Replace nan/inf by None and numpy scalars by Python ones, recursively (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _enough(d_f: np.ndarray, n_params: np.ndarray, minimum: int) -> str | None:
    """None if the points can pin down three parameters, else the reason."""
    if len(d_f) < minimum:
        return f"need ≥ {minimum} points with D_T > 0 (have {len(d_f)})"
    if len(np.unique(n_params)) < 2:
        return "need ≥ 2 distinct N to fit beta (have 1)"
    if len(np.unique(d_f)) < 2:
        return "need ≥ 2 distinct D_F to fit alpha (have 1)"
    return None


class _LogLinearDesign:
    """log D_T = c + alpha (x - x_mean) + beta (y - y_mean), x = log D_F, y = log N."""

    def __init__(self, d_f: np.ndarray, n_params: np.ndarray):
        self.x, self.y = np.log(d_f), np.log(n_params)
        self.x_mean, self.y_mean = float(self.x.mean()), float(self.y.mean())
        self.matrix = np.column_stack([np.ones_like(self.x), self.x - self.x_mean, self.y - self.y_mean])

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """(c, alpha, beta) -> (log k, alpha, beta); works on (..., 3) arrays."""
        theta = np.asarray(theta, float)
        log_k = theta[..., 0] - theta[..., 1] * self.x_mean - theta[..., 2] * self.y_mean
        return np.stack([log_k, theta[..., 1], theta[..., 2]], axis=-1)

    def rows(self, d_f, n_params) -> np.ndarray:
        return np.column_stack([np.ones(len(d_f)), np.log(d_f) - self.x_mean, np.log(n_params) - self.y_mean])


def fit_log_linear(d_f, n_params, d_t, delta: float = DEFAULT_HUBER_DELTA) -> tuple[np.ndarray, float]:
    """((log k, alpha, beta), summed Huber loss): multi-start L-BFGS-B, checked against IRLS."""
    d_f, n_params, d_t = (np.asarray(a, float) for a in (d_f, n_params, d_t))
    design = _LogLinearDesign(d_f, n_params)
    target = np.log(d_t)
    centre = float(np.median(target))
    starts = [np.array([centre + dc, a, b]) for dc in (-1.0, 0.0, 1.0) for a in (0.0, 0.5, 1.0)
              for b in (0.0, 0.5, 1.0)]
    theta, value = huber_minimize_lbfgs(design.matrix, target, delta, starts)
    polished = huber_irls(design.matrix[None], target[None], delta, theta[None])[0]
    polished_value = float(huber(delta, target - design.matrix @ polished).sum())
    if polished_value < value:   # convex objective: both should agree; keep the better one
        theta, value = polished, polished_value
    return design.to_natural(theta), value


def bootstrap_log_linear(d_f, n_params, d_t, theta_natural: np.ndarray, n_resamples: int,
                         delta: float, rng: np.random.Generator, chunk: int = 250,
                         progress: bool = False) -> np.ndarray:
    """(used, 3) bootstrap estimates of (log k, alpha, beta); degenerate resamples are dropped.

    A resample whose points have a single D_F or a single N cannot identify alpha or beta.
    """
    d_f, n_params, d_t = (np.asarray(a, float) for a in (d_f, n_params, d_t))
    design = _LogLinearDesign(d_f, n_params)
    target = np.log(d_t)
    c0 = theta_natural[0] + theta_natural[1] * design.x_mean + theta_natural[2] * design.y_mean
    start_centred = np.array([c0, theta_natural[1], theta_natural[2]])
    estimates = []
    n = len(d_f)
    for begin in tqdm(range(0, n_resamples, chunk), desc="bootstrap", unit="chunk",
                      disable=not progress, leave=False):
        size = min(chunk, n_resamples - begin)
        index = rng.integers(0, n, size=(size, n))
        identifiable = (np.ptp(design.x[index], axis=1) > 0) & (np.ptp(design.y[index], axis=1) > 0)
        index = index[identifiable]
        if len(index) == 0:
            continue
        theta = huber_irls(design.matrix[index], target[index], delta,
                           np.broadcast_to(start_centred, (len(index), 3)))
        estimates.append(design.to_natural(theta))
    return np.concatenate(estimates) if estimates else np.empty((0, 3))


def _held_out(d_f, n_params, d_t, group: str, delta: float) -> HeldOut:
    """Fit without each value of `group` in turn and predict the held-out D_T."""
    keys = n_params if group == "n_params" else d_f
    errors, per_fold = [], []
    for value in np.unique(keys):
        train, test = keys != value, keys == value
        if _enough(d_f[train], n_params[train], minimum=3) is not None:
            continue   # the rest cannot identify the law (e.g. only one other N)
        design = _LogLinearDesign(d_f[train], n_params[train])
        theta = huber_irls(design.matrix[None], np.log(d_t[train])[None], delta,
                           np.zeros((1, 3)))[0]
        log_k, alpha, beta = design.to_natural(theta)
        predicted = log_k + alpha * np.log(d_f[test]) + beta * np.log(n_params[test])
        fold_errors = np.abs(predicted - np.log(d_t[test]))
        errors.extend(fold_errors)
        per_fold.append({group: float(value), "n": int(test.sum()),
                         "mean_abs_log_error": float(fold_errors.mean())})
    mean = float(np.mean(errors)) if errors else None
    return HeldOut(group=group, folds=len(per_fold), n_predicted=len(errors), mean_abs_log_error=mean,
                   error_factor=math.exp(mean) if mean is not None else None, per_fold=per_fold)


def select_fit_points(effective: pd.DataFrame, warnings: list[str], pretrain: str) -> tuple[pd.DataFrame, str | None, str | None]:
    """(points, regime, reason-not-fitted): low-data points if enough, else all with D_T > 0."""
    usable = effective[np.isfinite(effective["d_t"]) & (effective["d_t"] > 0)
                       & ~effective["beyond_reach"] & ~effective["no_scratch"]]
    low = usable[usable["low_data"]]
    if _enough(low["d_f"].to_numpy(), low["n_params"].to_numpy(), MIN_FIT_POINTS) is None:
        return low, "low_data", None
    reason = _enough(usable["d_f"].to_numpy(), usable["n_params"].to_numpy(), MIN_FIT_POINTS)
    if reason is None:
        warnings.append(f"fit '{pretrain}': only {len(low)} usable point(s) in the low-data regime "
                        f"(D_F ≤ 10% of D(N)); fitted on all {len(usable)} points with D_T > 0 instead")
        return usable, "all_positive", None
    return usable, None, reason


def fit_transfer(effective: pd.DataFrame, pretrain: str, units: str, n_bootstrap: int = DEFAULT_BOOTSTRAP,
                 huber_delta: float = DEFAULT_HUBER_DELTA, seed: int = 0, warnings: list[str] | None = None,
                 progress: bool = False) -> TransferFit:
    """Fit the transfer law to the fine-tuned runs of one pretraining name (rows of EffectiveResult.table)."""
    return _fit_transfer(effective, pretrain, units, n_bootstrap, huber_delta, seed,
                         [] if warnings is None else warnings, progress)


def _fit_transfer(effective, pretrain, units, n_bootstrap, huber_delta, seed, warnings, progress) -> TransferFit:
    rows = effective[effective["pretrain"] == pretrain]
    points, regime, reason = select_fit_points(rows, warnings, pretrain)
    fit = TransferFit(pretrain=pretrain, units=units, fitted=False, huber_delta=huber_delta,
                      n_ossified=int(rows["ossified"].sum()), n_bootstrap=n_bootstrap)
    if reason is not None:
        fit.reason = f"not fitted: {reason}"
        warnings.append(f"fit '{pretrain}': {fit.reason}")
        return fit
    d_f, n_params, d_t = (points[c].to_numpy(float) for c in ("d_f", "n_params", "d_t"))
    theta, objective = fit_log_linear(d_f, n_params, d_t, huber_delta)
    log_residual = np.log(d_t) - (theta[0] + theta[1] * np.log(d_f) + theta[2] * np.log(n_params))
    total = np.sum((np.log(d_t) - np.log(d_t).mean()) ** 2)
    fit.fitted, fit.regime, fit.objective = True, regime, objective
    fit.k, fit.alpha, fit.beta = float(np.exp(theta[0])), float(theta[1]), float(theta[2])
    fit.n_points, fit.n_extrapolated = len(points), int(points["extrapolated"].sum())
    fit.n_distinct_n, fit.n_distinct_d_f = len(np.unique(n_params)), len(np.unique(d_f))
    fit.n_excluded_other = len(rows) - len(points) - fit.n_ossified
    fit.r2_log = float(1 - np.sum(log_residual ** 2) / total) if total > 0 else None
    fit.rmse_log = float(np.sqrt(np.mean(log_residual ** 2)))

    if n_bootstrap > 0:
        samples = bootstrap_log_linear(d_f, n_params, d_t, theta, n_bootstrap, huber_delta,
                                       np.random.default_rng(seed), progress=progress)
        fit.samples, fit.n_bootstrap_used = samples, len(samples)
        if len(samples) >= 10:
            lo, hi = np.percentile(samples, INTERVAL_PERCENTILES, axis=0)
            fit.intervals = {"k": [float(np.exp(lo[0])), float(np.exp(hi[0]))],
                             "alpha": [float(lo[1]), float(hi[1])], "beta": [float(lo[2]), float(hi[2])]}
        else:
            warnings.append(f"fit '{pretrain}': only {len(samples)} usable bootstrap resamples: no intervals")
    else:
        warnings.append(f"fit '{pretrain}': bootstrap disabled: the fit has no intervals")
    fit.heldout = {group: _held_out(d_f, n_params, d_t, group, huber_delta) for group in ("n_params", "d_f")}
    return fit
