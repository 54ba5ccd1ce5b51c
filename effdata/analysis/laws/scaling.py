"""From-scratch scaling laws L(N, D) fitted to any table's from-scratch runs, in two forms.

Kaplan et al. (2020): L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, fitted by least squares
in log loss from a small grid of starts, with a bootstrap over runs for intervals.

Hoffmann et al. (2022, approach 3), as refitted by Besiroglu et al. (2024): L(N, D) = E + A/N^alpha + B/D^beta,
written log L = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b, E = e^e, fitted by the
*summed* Huber loss (delta = 1e-3) of the log-loss residuals from Besiroglu's grid of 4,500 starts.

Why a batched solver for the starts: scipy's L-BFGS-B took 14 ms per start on the 30 points of the CPU
study (3.2 s for 225 starts, so about a minute for 4,500). All starts are instead run at once by a
vectorised Levenberg-Marquardt on the Huber objective (Gauss-Newton with Huber's IRLS weights, damping
adapted per start, a step kept only if the summed Huber loss falls): 0.8 s for 4,500 starts on 30
points, 7 s on 240. The best result is then polished by scipy's L-BFGS-B on the same objective (the
lower objective wins). On the 240 points Besiroglu et al. extracted from the Chinchilla paper this gives
their grid L-BFGS-B optimum to 4 digits (benchmarks/refit_chinchilla.py).

Each law records what the planner needs to use it: the N and D ranges it was fitted on, D's unit, and
the table's characters per token (so a law in tokens can be read in characters and back).

Why one module of ~490 lines: the two forms are fitted, bootstrapped and reported the same way, side by
side; the report and the planner read both from here.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares, minimize
from scipy.special import huber
from tqdm.auto import tqdm

from effdata.analysis.core.fit import INTERVAL_PERCENTILES, jsonable
from effdata.analysis.core.memo import by_content
from effdata.fmt import sig

MIN_KAPLAN_POINTS = 6            # four parameters
KAPLAN_BOUNDS = ([1e-4, 1e-4, -100, -100], [3, 3, 300, 300])   # the box _kaplan_solve searches
KAPLAN_BOOTSTRAP_CAP = 200       # each Kaplan refit is a nonlinear solve; 200 is enough for 5-95%
# Kaplan et al. 2020, early-stopped L(N, D), D in tokens.
PAPER_KAPLAN = {"alpha_n": 0.076, "alpha_d": 0.103, "ratio": 0.74, "n_c": 6.4e13, "d_c": 1.8e13}

MIN_CHINCHILLA_POINTS = 7        # five parameters plus two degrees of freedom
CHINCHILLA_HUBER_DELTA = 1e-3    # Hoffmann et al. and Besiroglu et al.: residuals are log losses (~1e-2)
CHINCHILLA_BOOTSTRAP_CAP = 1000
# Each resample restarts from the optimum and this many other distinct minima of the full grid. Measured on
# the CPU study (300 resamples, 8 minima): another restart beat the optimum's in 10% of resamples, by a median
# 7e-6 of the objective, and the 5-95% interval of alpha moved in the 4th digit; 4 halves the cost of 8.
BOOTSTRAP_STARTS = 4
# L(N, D) = E + A/N^alpha + B/D^beta, D in tokens. Besiroglu et al.'s refit is on the 245 points they
# extracted from the paper's figure 4 (5 highest losses left out), fitted by maximum likelihood.
PAPER_CHINCHILLA = {
    "hoffmann": {"label": "Hoffmann et al. 2022, approach 3", "E": 1.69, "A": 406.4, "B": 410.7,
                 "alpha": 0.34, "beta": 0.28},
    "besiroglu": {"label": "Besiroglu et al. 2024, refit of approach 3", "E": 1.82, "A": 482.01, "B": 2085.43,
                  "alpha": 0.3478, "beta": 0.3658},
}
CHINCHILLA_NAMES = ("E", "A", "B", "alpha", "beta", "n_opt_exponent", "d_opt_exponent")


# --------------------------------------------------------------------------- points and goodness of fit

@dataclass(frozen=True)
class ScratchPoints:
    """The from-scratch points a law is fitted on, in logs, with D's unit and the table's chars/token."""

    log_n: np.ndarray
    log_d: np.ndarray
    log_loss: np.ndarray
    units: str                         # "chars" or "tokens"
    chars_per_token: float | None      # median data_chars / data_tokens of the from-scratch rows

    @classmethod
    def from_frame(cls, scratch: pd.DataFrame, units: str) -> "ScratchPoints":
        """Positive, finite points in `units` (the other unit when that column is missing or incomplete)."""
        columns = {"chars": "data_chars", "tokens": "data_tokens"}
        if columns[units] not in scratch or scratch[columns[units]].isna().any():
            units = "chars" if units == "tokens" else "tokens"
        column = columns[units]
        if column not in scratch or not len(scratch):
            empty = np.empty(0)
            return cls(empty, empty, empty, units, None)
        values = scratch[["n_params", column, "loss"]].to_numpy(float)
        usable = np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)
        logs = np.log(values[usable])
        return cls(logs[:, 0], logs[:, 1], logs[:, 2], units, chars_per_token(scratch))

    def __len__(self) -> int:
        return len(self.log_n)

    def shortfall(self, minimum: int) -> str | None:
        """None if the points can pin down a law, else why not."""
        n_n, n_d = len(np.unique(self.log_n)), len(np.unique(self.log_d))
        if len(self) < minimum or n_n < 2 or n_d < 2:
            return (f"not fitted: need ≥ {minimum} from-scratch points over ≥ 2 N and ≥ 2 D "
                    f"(have {len(self)} points, {n_n} N, {n_d} D)")
        return None

    def ranges(self) -> dict:
        return {"n_range": [float(np.exp(self.log_n.min())), float(np.exp(self.log_n.max()))],
                "d_range": [float(np.exp(self.log_d.min())), float(np.exp(self.log_d.max()))]}

    def subset(self, mask: np.ndarray) -> "ScratchPoints":
        return ScratchPoints(self.log_n[mask], self.log_d[mask], self.log_loss[mask], self.units,
                             self.chars_per_token)


def chars_per_token(scratch: pd.DataFrame) -> float | None:
    """Median characters per token of the rows that have both sizes (None without both columns)."""
    if "data_chars" not in scratch or "data_tokens" not in scratch:
        return None
    ratio = (scratch["data_chars"] / scratch["data_tokens"]).to_numpy(float)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    return float(np.median(ratio)) if len(ratio) else None


@dataclass
class Goodness:
    """How well a law describes its points, and how well it predicts a model size it did not see."""

    rmse_log: float                            # of log loss, on the fitted points
    mean_abs_error: float                      # |L - L_fit| in nats/token
    max_abs_log: float
    heldout_rmse_log: float | None = None      # leave one N out, predict its points
    heldout_mean_abs_error: float | None = None
    heldout_folds: int = 0


def goodness(points: ScratchPoints, predicted_log_loss: np.ndarray) -> Goodness:
    residual = predicted_log_loss - points.log_loss
    return Goodness(rmse_log=float(np.sqrt(np.mean(residual ** 2))),
                    mean_abs_error=float(np.mean(np.abs(np.exp(predicted_log_loss) - np.exp(points.log_loss)))),
                    max_abs_log=float(np.max(np.abs(residual))))


def add_heldout_by_n(score: Goodness, points: ScratchPoints, refit_predict, minimum: int) -> Goodness:
    """Refit without each N in turn (where the rest can still pin the law down); predict that N's points.

    `refit_predict(train, test)` returns the predicted log losses of `test` from a fit to `train`.
    """
    predicted, actual = [], []
    for value in np.unique(points.log_n):
        train, test = points.subset(points.log_n != value), points.subset(points.log_n == value)
        if train.shortfall(minimum) is None:
            predicted.append(refit_predict(train, test))
            actual.append(test.log_loss)
    score.heldout_folds = len(predicted)
    if predicted:
        predicted, actual = np.concatenate(predicted), np.concatenate(actual)
        score.heldout_rmse_log = float(np.sqrt(np.mean((predicted - actual) ** 2)))
        score.heldout_mean_abs_error = float(np.mean(np.abs(np.exp(predicted) - np.exp(actual))))
    return score


# --------------------------------------------------------------------------- Kaplan

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
    n_range: list[float] | None = None            # [min, max] of the fitted points' N
    d_range: list[float] | None = None            # the same for D, in `units`
    chars_per_token: float | None = None
    goodness: Goodness | None = None
    degenerate: list[str] = field(default_factory=list)   # parameters on the edge of their search (kaplan_bounds)

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def kaplan_loss(log_n, log_d, alpha_n, alpha_d, log_n_c, log_d_c):
    # logaddexp keeps the sum of the two terms finite for any parameter values the solver tries.
    return np.exp(alpha_d * np.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d))


def kaplan_residual(log_n, log_d, log_loss):
    """(residual, jacobian) of log L(N, D) − log loss, as functions of (alpha_n, alpha_d, log N_c, log D_c).

    The Jacobian is analytic: with s = logaddexp(u, v), u = (alpha_n/alpha_d)(log N_c − log N), v = log D_c − log D
    and w = e^u / (e^u + e^v), the residual alpha_d·s − log loss has the derivatives below. Finite differences
    cost a third of every Kaplan fit's time (4 of 12.5 s of least_squares in analysis/cpu-fixed-tokens' analysis)."""
    def residual(p):
        alpha_n, alpha_d, log_n_c, log_d_c = p
        return alpha_d * np.logaddexp((alpha_n / alpha_d) * (log_n_c - log_n), log_d_c - log_d) - log_loss

    def jacobian(p):
        alpha_n, alpha_d, log_n_c, log_d_c = p
        gap = log_n_c - log_n
        u, v = (alpha_n / alpha_d) * gap, log_d_c - log_d
        w = 0.5 * (1 + np.tanh((u - v) / 2))       # e^u / (e^u + e^v), finite for any u, v
        return np.column_stack([w * gap, np.logaddexp(u, v) - w * u, w * alpha_n, alpha_d * (1 - w)])

    return residual, jacobian


def _kaplan_runs(log_n, log_d, log_loss, starts, loss: str = "linear", f_scale: float = 1.0) -> list:
    """One least_squares result per start (loss="huber" with f_scale, the Huber threshold on log loss)."""
    residual, jacobian = kaplan_residual(log_n, log_d, log_loss)
    return [least_squares(residual, start, jac=jacobian, bounds=KAPLAN_BOUNDS, x_scale=[0.1, 0.1, 10, 10],
                          loss=loss, f_scale=f_scale) for start in starts]


def _kaplan_solve(log_n, log_d, log_loss, starts):
    """The best of `_kaplan_runs` by least squares (the first, where several tie)."""
    return min(_kaplan_runs(log_n, log_d, log_loss, starts), key=lambda result: result.cost)


def _kaplan_grid(points: "ScratchPoints") -> list[list[float]]:
    """The nine starts every Kaplan fit tries: α_N, α_D in {0.05, 0.1, 0.3}, N_c and D_c that put each term at the
    median loss at the median N and D."""
    median_log_loss = float(np.median(points.log_loss))
    return [[a_n, a_d, float(np.median(points.log_n)) + median_log_loss / a_n,
             float(np.median(points.log_d)) + median_log_loss / a_d]
            for a_n in (0.05, 0.1, 0.3) for a_d in (0.05, 0.1, 0.3)]


def _kaplan_log_loss(x, points: ScratchPoints) -> np.ndarray:
    return np.log(kaplan_loss(points.log_n, points.log_d, *x))


def fit_kaplan(scratch: pd.DataFrame, n_bootstrap: int = KAPLAN_BOOTSTRAP_CAP, seed: int = 0,
               warnings: list[str] | None = None, progress: bool = False) -> KaplanFit:
    """Fit Kaplan's L(N, D) to scratch runs in log loss, D in tokens (Kaplan's unit) when available."""
    fit, said = _fit_kaplan(ScratchPoints.from_frame(scratch, "tokens"), n_bootstrap, seed, progress=progress)
    if warnings is not None:
        warnings.extend(said)
    return fit


@by_content(ignore=("progress",))
def _fit_kaplan(points: ScratchPoints, n_bootstrap: int, seed: int,
                progress: bool = False) -> tuple[KaplanFit, list[str]]:
    """(the fit, its warnings): a function of the points alone, remembered (core/memo.py)."""
    fit = KaplanFit(units=points.units, fitted=False)
    reason = points.shortfall(MIN_KAPLAN_POINTS)
    if reason is not None:
        fit.reason = reason
        return fit, [f"Kaplan L(N, D): {fit.reason}"]
    log_n, log_d, log_loss = points.log_n, points.log_d, points.log_loss
    best = _kaplan_solve(log_n, log_d, log_loss, _kaplan_grid(points))
    alpha_n, alpha_d, log_n_c, log_d_c = best.x
    fit.fitted, fit.n_points = True, len(points)
    fit.alpha_n, fit.alpha_d, fit.ratio = float(alpha_n), float(alpha_d), float(alpha_n / alpha_d)
    fit.n_c, fit.d_c = float(np.exp(min(log_n_c, 700))), float(np.exp(min(log_d_c, 700)))
    fit.rmse_log = float(np.sqrt(np.mean(best.fun ** 2)))
    fit.n_range, fit.d_range = points.ranges()["n_range"], points.ranges()["d_range"]
    fit.chars_per_token = points.chars_per_token
    fit.goodness = add_heldout_by_n(
        goodness(points, _kaplan_log_loss(best.x, points)), points,
        lambda train, test: _kaplan_log_loss(_kaplan_solve(train.log_n, train.log_d, train.log_loss,
                                                           [best.x]).x, test), MIN_KAPLAN_POINTS)

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
    fit.degenerate = kaplan_bounds(fit)
    return fit, []


# --------------------------------------------------------------------------- Chinchilla: the batched solver

@dataclass(frozen=True)
class StartGrid:
    """Starting points (a, b, e, alpha, beta): Hoffmann et al.'s and Besiroglu et al.'s grid, 4,500 starts."""

    a: tuple[float, ...] = (0, 5, 10, 15, 20, 25)
    b: tuple[float, ...] = (0, 5, 10, 15, 20, 25)
    e: tuple[float, ...] = (-1, -0.5, 0, 0.5, 1)
    alpha: tuple[float, ...] = (0, 0.5, 1, 1.5, 2)
    beta: tuple[float, ...] = (0, 0.5, 1, 1.5, 2)

    def points(self) -> np.ndarray:
        return np.array(list(itertools.product(self.a, self.b, self.e, self.alpha, self.beta)), float)


def chinchilla_loss(n, d, E, A, B, alpha, beta):
    """L(N, D) = E + A/N^alpha + B/D^beta (D in the law's unit)."""
    return E + A * np.asarray(n, float) ** -alpha + B * np.asarray(d, float) ** -beta


def _lse_terms(theta: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray):
    """Residuals log L_fit - log L and the softmax weights of the A and B terms, for (P, 5) parameters.

    x, y, t are (P, n) or (1, n) arrays of log N, log D, log L. The max is subtracted before exp so that
    any start (a up to 25, alpha 0) stays finite.
    """
    z1 = theta[:, 0:1] - theta[:, 3:4] * x
    z2 = theta[:, 1:2] - theta[:, 4:5] * y
    z3 = np.broadcast_to(theta[:, 2:3], z1.shape)
    top = np.maximum(np.maximum(z1, z2), z3)
    e1, e2, e3 = np.exp(z1 - top), np.exp(z2 - top), np.exp(z3 - top)
    total = e1 + e2 + e3
    return top + np.log(total) - t, e1 / total, e2 / total


def _summed_huber(residual: np.ndarray, delta: float) -> np.ndarray:
    return huber(delta, residual).sum(axis=-1)


def solve_batched(x, y, t, starts: np.ndarray, delta: float = CHINCHILLA_HUBER_DELTA,
                  max_iter: int = 200, rel_tol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Minimise the summed Huber loss from every start at once: (parameters (P, 5), objective (P,)).

    Levenberg-Marquardt on the Huber objective: the gradient is J^T psi(r) = J^T U r with Huber's weights
    U = min(1, delta/|r|), the curvature J^T U J. A step is kept only if the objective falls (so it never
    rises), the damping shrinks after a kept step and grows after a refused one. A start stops when a
    kept step gains less than rel_tol of its objective or the damping saturates.
    """
    size = len(starts)
    x, y, t = (np.broadcast_to(v, (size, v.shape[-1])) for v in (x, y, t))
    theta = np.array(starts, float)
    residual, w1, w2 = _lse_terms(theta, x, y, t)
    value = _summed_huber(residual, delta)
    damping = np.full(size, 1e-2)
    active = np.arange(size)
    for _ in range(max_iter):
        if not len(active):
            break
        xa, ya, ra = x[active], y[active], residual[active]
        jac = np.stack([w1, w2, 1 - w1 - w2, -w1 * xa, -w2 * ya], axis=1)        # (P, 5, n)
        weighted = jac * (delta / np.maximum(np.abs(ra), delta))[:, None, :]
        curvature = weighted @ jac.transpose(0, 2, 1)
        gradient = (weighted @ ra[..., None])[..., 0]
        diagonal = np.einsum("pii->pi", curvature) + 1e-12 * (1 + np.abs(curvature).max(axis=(1, 2)))[:, None]
        system = curvature + damping[active, None, None] * diagonal[:, :, None] * np.eye(5)
        trial = theta[active] + np.linalg.solve(system, -gradient[..., None])[..., 0]
        trial_residual, t1, t2 = _lse_terms(trial, xa, ya, t[active])
        trial_value = _summed_huber(trial_residual, delta)
        kept = np.isfinite(trial_value) & (trial_value < value[active])
        gain = np.where(kept, value[active] - trial_value, 0.0)
        better = active[kept]
        theta[better], residual[better], value[better] = trial[kept], trial_residual[kept], trial_value[kept]
        w1, w2 = np.where(kept[:, None], t1, w1), np.where(kept[:, None], t2, w2)
        damping[active] = np.clip(np.where(kept, damping[active] / 3, damping[active] * 4), 1e-10, 1e10)
        going = ~((kept & (gain <= rel_tol * value[active])) | (damping[active] >= 1e10))
        active, w1, w2 = active[going], w1[going], w2[going]
    return theta, value


def polish_lbfgs(theta: np.ndarray, x, y, t, delta: float = CHINCHILLA_HUBER_DELTA) -> tuple[np.ndarray, float]:
    """L-BFGS-B on the summed Huber loss from `theta` (the method of METHOD.md §4): (parameters, objective)."""

    def objective(p):
        residual, w1, w2 = _lse_terms(p[None], x[None], y[None], t[None])
        psi = np.clip(residual[0], -delta, delta)
        gradient = np.array([psi @ w1[0], psi @ w2[0], psi @ (1 - w1[0] - w2[0]),
                             -psi @ (w1[0] * x), -psi @ (w2[0] * y)])
        return float(_summed_huber(residual[0], delta)), gradient

    result = minimize(objective, theta, jac=True, method="L-BFGS-B",
                      options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-12})
    return result.x, float(result.fun)


def distinct_minima(theta: np.ndarray, value: np.ndarray, count: int) -> np.ndarray:
    """The `count` best results whose parameters differ at the third decimal, best first."""
    order = np.argsort(value)
    seen, chosen = set(), []
    for index in order:
        if not np.isfinite(value[index]):
            break
        key = tuple(np.round(theta[index], 3))
        if key not in seen:
            seen.add(key)
            chosen.append(theta[index])
        if len(chosen) == count:
            break
    return np.array(chosen)


# --------------------------------------------------------------------------- Chinchilla: the fit

@dataclass
class ChinchillaFit:
    """L(N, D) = E + A/N^alpha + B/D^beta fitted to the from-scratch runs, with the compute-optimal allocation."""

    units: str
    fitted: bool
    reason: str | None = None
    E: float | None = None
    A: float | None = None
    B: float | None = None
    alpha: float | None = None                    # exponent of N
    beta: float | None = None                     # exponent of D
    n_opt_exponent: float | None = None           # a = beta/(alpha+beta): N_opt ∝ C^a
    d_opt_exponent: float | None = None           # b = alpha/(alpha+beta): D_opt ∝ C^b
    intervals: dict[str, list[float]] = field(default_factory=dict)
    interval_percentiles: tuple[float, float] = INTERVAL_PERCENTILES
    n_points: int = 0
    n_range: list[float] | None = None
    d_range: list[float] | None = None            # in `units`
    chars_per_token: float | None = None
    huber_delta: float = CHINCHILLA_HUBER_DELTA
    objective: float | None = None                # summed Huber loss at the optimum
    n_starts: int = 0
    n_starts_at_best: int | None = 0              # starts that ended at the best objective (how easy the landscape
                                                  # is); None where E ran to 0 (settle_e_at_zero)
    n_bootstrap_used: int = 0
    goodness: Goodness | None = None
    paper: dict = field(default_factory=lambda: {k: dict(v) for k, v in PAPER_CHINCHILLA.items()})
    degenerate: list[str] = field(default_factory=list)    # parameters at or against a bound (chinchilla_bounds)
    unidentified: list[str] = field(default_factory=list)  # what a degenerate parameter decides: not findings

    def loss(self, n, d):
        return chinchilla_loss(n, d, self.E, self.A, self.B, self.alpha, self.beta)

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def natural_parameters(theta: np.ndarray) -> np.ndarray:
    """(..., 5) rows (a, b, e, alpha, beta) -> (..., 7) rows (E, A, B, alpha, beta, a_opt, b_opt)."""
    theta = np.asarray(theta, float)
    alpha, beta = theta[..., 3], theta[..., 4]
    total = alpha + beta
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):   # a bootstrap refit may run off
        a_opt = np.where(total > 0, beta / total, np.nan)
        b_opt = np.where(total > 0, alpha / total, np.nan)
        return np.stack([np.exp(theta[..., 2]), np.exp(theta[..., 0]), np.exp(theta[..., 1]), alpha, beta,
                         a_opt, b_opt], axis=-1)


def _best_of(points: ScratchPoints, starts: np.ndarray, delta: float) -> np.ndarray:
    theta, value = solve_batched(points.log_n[None], points.log_d[None], points.log_loss[None], starts, delta)
    return theta[int(np.argmin(value))]


def _lse_log_loss(theta: np.ndarray, points: ScratchPoints) -> np.ndarray:
    residual, _, _ = _lse_terms(np.asarray(theta)[None], points.log_n[None], points.log_d[None],
                                np.zeros((1, len(points))))
    return residual[0]


def fit_chinchilla(scratch: pd.DataFrame, units: str = "chars", n_bootstrap: int = CHINCHILLA_BOOTSTRAP_CAP,
                   seed: int = 0, warnings: list[str] | None = None, progress: bool = False,
                   grid: StartGrid = StartGrid(), delta: float = CHINCHILLA_HUBER_DELTA) -> ChinchillaFit:
    """Fit E + A/N^alpha + B/D^beta to the scratch runs, D in `units` (the transfer law's unit)."""
    fit, said = _fit_chinchilla(ScratchPoints.from_frame(scratch, units), n_bootstrap, seed, grid, delta,
                                progress=progress)
    if warnings is not None:
        warnings.extend(said)
    return fit


@by_content(ignore=("progress",))
def _fit_chinchilla(points: ScratchPoints, n_bootstrap: int, seed: int, grid: StartGrid, delta: float,
                    progress: bool = False) -> tuple[ChinchillaFit, list[str]]:
    """(the fit, its warnings): a function of the points alone, remembered (core/memo.py)."""
    warnings: list[str] = []
    fit = ChinchillaFit(units=points.units, fitted=False, huber_delta=delta)
    reason = points.shortfall(MIN_CHINCHILLA_POINTS)
    if reason is not None:
        fit.reason = reason
        return fit, [f"Chinchilla L(N, D): {fit.reason}"]
    starts = grid.points()
    theta, value = solve_batched(points.log_n[None], points.log_d[None], points.log_loss[None], starts, delta)
    best = int(np.argmin(value))
    polished, polished_value = polish_lbfgs(theta[best], points.log_n, points.log_d, points.log_loss, delta)
    optimum, objective = (polished, polished_value) if polished_value < value[best] else (theta[best], value[best])
    restarts = np.vstack([optimum[None], distinct_minima(theta, value, BOOTSTRAP_STARTS)])
    _set_parameters(fit, natural_parameters(optimum))
    fit.fitted, fit.n_points, fit.objective = True, len(points), float(objective)
    fit.n_starts = len(starts)
    # 1e-12 absolute: an exact law's starts end anywhere between 1e-31 and 1e-20.
    fit.n_starts_at_best = int(np.sum(value <= objective * (1 + 1e-6) + 1e-12))
    fit.n_range, fit.d_range = points.ranges()["n_range"], points.ranges()["d_range"]
    fit.chars_per_token = points.chars_per_token
    fit.goodness = add_heldout_by_n(
        goodness(points, _lse_log_loss(optimum, points)), points,
        lambda train, test: _lse_log_loss(_best_of(train, restarts, delta), test), MIN_CHINCHILLA_POINTS)
    if fit.alpha <= 0 or fit.beta <= 0:
        warnings.append(f"Chinchilla L(N, D): a non-positive exponent (alpha={fit.alpha:.3g}, beta={fit.beta:.3g}): "
                        "loss does not fall with N or D in this fit; the compute-optimal allocation means nothing")
    if n_bootstrap > 0:
        samples = bootstrap_chinchilla(points, restarts, min(n_bootstrap, CHINCHILLA_BOOTSTRAP_CAP), delta,
                                       np.random.default_rng(seed), progress)
        fit.n_bootstrap_used = len(samples)
        if len(samples) >= 10:
            lo, hi = np.nanpercentile(natural_parameters(samples), INTERVAL_PERCENTILES, axis=0)
            fit.intervals = {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(CHINCHILLA_NAMES)}
    fit.degenerate = chinchilla_bounds(fit, float(np.exp(points.log_loss.min())))
    # Every bound the search has (E at 0, an exponent at 0) moves the allocation a = β/(α+β) with it.
    fit.unidentified = ["n_opt_exponent", "d_opt_exponent"] if fit.degenerate else []
    settle_e_at_zero(fit, float(np.exp(points.log_loss.min())))
    return fit, warnings


def _set_parameters(fit: ChinchillaFit, natural: np.ndarray) -> None:
    for name, value in zip(CHINCHILLA_NAMES, natural):
        setattr(fit, name, float(value) if math.isfinite(value) else None)


def bootstrap_chinchilla(points: ScratchPoints, restarts: np.ndarray, n_resamples: int, delta: float,
                         rng: np.random.Generator, progress: bool = False, chunk: int = 100) -> np.ndarray:
    """(used, 5) refits (a, b, e, alpha, beta) on resampled points, each from the optimum and the grid's
    best distinct minima (all resamples x restarts in one batched solve per chunk).

    A resample with a single N or a single D cannot identify the law: dropped.
    """
    count, estimates = len(points), []
    for begin in tqdm(range(0, n_resamples, chunk), desc="Chinchilla bootstrap", unit="chunk",
                      disable=not progress, leave=False):
        index = rng.integers(0, count, size=(min(chunk, n_resamples - begin), count))
        index = index[(np.ptp(points.log_n[index], axis=1) > 0) & (np.ptp(points.log_d[index], axis=1) > 0)]
        if not len(index):
            continue
        repeated = np.repeat(index, len(restarts), axis=0)
        starts = np.tile(restarts, (len(index), 1))
        theta, value = solve_batched(points.log_n[repeated], points.log_d[repeated],
                                     points.log_loss[repeated], starts, delta)
        best = np.argmin(value.reshape(len(index), len(restarts)), axis=1)
        estimates.append(theta.reshape(len(index), len(restarts), 5)[np.arange(len(index)), best])
    return np.concatenate(estimates) if estimates else np.empty((0, 5))


# --------------------------------------------------------------------------- degenerate fits

# E is searched as log E without a bound, so "E at its bound" is E ≈ 0: an irreducible loss below a millionth
# of the smallest loss fitted is the solver running log E to -∞ (the public table of the audit issue: 1e-214).
E_AT_ZERO = 1e-6
# A Kaplan parameter within this fraction of the box it is searched in (KAPLAN_BOUNDS) sits on the box.
AT_BOUND = 1e-3


def chinchilla_bounds(fit: "ChinchillaFit", min_loss: float) -> list[str]:
    """Parameters of a fitted Chinchilla law at or against a bound of their search: E at 0, an exponent at or
    below 0, or an interval that runs into one of them. Names, with why."""
    found = []
    lo_e = fit.intervals.get("E", [None])[0]
    if fit.E is not None and fit.E < E_AT_ZERO * min_loss:
        found.append("E = 0 (at its bound: no irreducible loss is identified)")
    elif lo_e is not None and lo_e < E_AT_ZERO * min_loss:
        found.append("E's interval runs into its bound 0")
    for name in ("alpha", "beta"):
        value, interval = getattr(fit, name), fit.intervals.get(name)
        if value is not None and value <= 0:
            found.append(f"{name} = {sig(value)} (≤ 0: the loss does not fall along it)")
        elif interval is not None and interval[0] <= 0:
            found.append(f"{name}'s interval runs into 0 ([{sig(interval[0])}, {sig(interval[1])}])")
    return found


def settle_e_at_zero(fit: "ChinchillaFit", min_loss: float) -> None:
    """Where the search ran log E towards -∞, write what it ran to, not where it stopped. Where it stopped depends on
    the CPU's floating point (analysis/shape, one table: E = 3.84e-10 on an Intel AVX-512 machine, 2.78e-13 on an AMD
    EPYC), and so do the bootstrap's resamples, which run off with it (α's interval [0.0424, 1.75] on one,
    [0.0417, 1.12] on the other), and how many starts tie at the best objective (2694 and 2691 of 4500): E and any
    interval end below E_AT_ZERO of the smallest loss become 0; where the point estimate ran off, the intervals
    and that count are withheld. The point estimates of A, B, α and β stay: they moved less (α by 5e-10 in
    analysis/shape, by 8e-5 to 0.4 % in others), and with effdata/numerics.py both machines take one path."""
    floor = E_AT_ZERO * min_loss
    if "E" in fit.intervals:
        fit.intervals["E"] = [0.0 if end < floor else end for end in fit.intervals["E"]]
    if fit.E is not None and fit.E < floor:
        fit.E, fit.intervals, fit.n_starts_at_best = 0.0, {}, None


def kaplan_bounds(fit: "KaplanFit") -> list[str]:
    x = (fit.alpha_n, fit.alpha_d, np.log(fit.n_c), np.log(fit.d_c))
    names = ("alpha_n", "alpha_d", "N_c", "D_c")
    found = []
    for name, value, lo, hi in zip(names, x, *KAPLAN_BOUNDS):
        if min(abs(value - lo), abs(value - hi)) <= AT_BOUND * (hi - lo):
            found.append(f"{name} at the edge of its search ({sig(value if name.startswith('alpha') else np.exp(value))})")
    return found



# --------------------------------------------------------------------------- refits the audit asks for



# Starts whose loss is within this relative distance of the best reached the same minimum: a refit whose starts
# end there at exponents more than MIN_SPREAD apart has a valley, not a point (kaplan_valley). The committed tables'
# left-out refits that have one reach it to 7 digits; distinct minima differ in the third.
VALLEY_RTOL = 1e-6
MIN_SPREAD = 0.02


@by_content()
def kaplan_solutions(points: ScratchPoints, start, loss: str = "linear", f_scale: float = 1.0) -> np.ndarray:
    """(starts, 5): (alpha_n, alpha_d, log N_c, log D_c, loss) reached from `start` and the usual starting grid;
    `loss="huber"` with `f_scale` the Huber threshold on log loss gives the other estimator."""
    results = _kaplan_runs(points.log_n, points.log_d, points.log_loss, [list(start)] + _kaplan_grid(points),
                           loss, f_scale)
    return np.array([[*r.x, r.cost] for r in results])


def kaplan_refit(points: ScratchPoints, start, loss: str = "linear", f_scale: float = 1.0) -> np.ndarray:
    """(alpha_n, alpha_d, log N_c, log D_C) of the best of `kaplan_solutions` (the first, where several tie)."""
    solutions = kaplan_solutions(points, start, loss, f_scale)
    return solutions[int(np.argmin(solutions[:, 4])), :4]


def kaplan_valley(points: ScratchPoints, start, loss: str = "linear", f_scale: float = 1.0) -> dict[str, tuple]:
    """{exponent: (lowest, highest)} over the starts that reach the best loss (within VALLEY_RTOL), for each exponent
    they leave more than MIN_SPREAD apart: the points do not pin it, and `kaplan_refit`'s value is where one start
    stopped. A lower bound on the valley's extent (ten starts, not a profile). {} where the refit is a point."""
    solutions = kaplan_solutions(points, start, loss, f_scale)
    best = solutions[:, 4].min()
    near = solutions[solutions[:, 4] <= best + VALLEY_RTOL * abs(best)]
    ranges = {name: (float(near[:, i].min()), float(near[:, i].max())) for i, name in ((0, "alpha_n"), (1, "alpha_d"))}
    return {name: r for name, r in ranges.items() if r[1] - r[0] > MIN_SPREAD}


# The audit refits the law a dozen times per table: from the full fit's optimum and this coarse grid (243 starts
# instead of 4,500; 11-19x faster). On every leave-one-N-out refit of the committed tables (both estimators) it
# reached the full grid's objective to 1e-10; the exponents agreed to 3e-4 except on analysis/quick, whose refits
# keep two sizes, where the objective is flat in α (E + A/N^α is not identified by two N): the audit does not
# refit the Chinchilla form on fewer than three sizes (audit/laws.py). `benchmarks/bench_audit.py` measures both.
REFIT_GRID = StartGrid(a=(0, 10, 20), b=(0, 10, 20), e=(-1, 0, 1), alpha=(0, 0.5, 1.5), beta=(0, 0.5, 1.5))


def chinchilla_start(fit: "ChinchillaFit") -> np.ndarray:
    """The fit's optimum as a start (a, b, e, alpha, beta) for a refit."""
    with np.errstate(divide="ignore"):
        return np.array([np.log(fit.A), np.log(fit.B), max(np.log(max(fit.E, 1e-300)), -700.0), fit.alpha, fit.beta])


@by_content()
def chinchilla_refit(points: ScratchPoints, delta: float = CHINCHILLA_HUBER_DELTA, grid: StartGrid = StartGrid(),
                     start: np.ndarray | None = None) -> np.ndarray:
    """(E, A, B, alpha, beta, a_opt, b_opt) of the best of the starting grid (and `start`) on these points, polished."""
    starts = grid.points() if start is None else np.vstack([start[None], grid.points()])
    theta, value = solve_batched(points.log_n[None], points.log_d[None], points.log_loss[None], starts, delta)
    best = int(np.argmin(value))
    polished, polished_value = polish_lbfgs(theta[best], points.log_n, points.log_d, points.log_loss, delta)
    return natural_parameters(polished if polished_value < value[best] else theta[best])
