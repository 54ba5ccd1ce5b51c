"""The learning-curve law L(N, S) of Kaplan et al. (2020, eq. 1.6), fitted to learning curves.

    L(N, S) = (N_c / N)^α_N + (S_c / S)^α_S

S is the plain step count, or S_min = S / (1 + B_crit(L)/B) (Kaplan's eq. 5.4) where the critical batch
was measured (runs with the `noise_scale` option, `noise.py` fits B_crit(L)); the fit says which (`steps`).
Fitted as log L = log(A·N^(−α_N) + B·S^(−α_S)) with A = N_c^α_N, B = S_c^α_S (the natural parameters
N_c and S_c are read off A and B: A and B are what the data pin down, N_c alone moves by decades along
the valley of α_N at these sizes), each run weighted equally (a run's points are 1/points each).

Which points: from-scratch runs only (a fine-tune starts from a checkpoint, and a pretraining run's
held-out loss is another distribution's); of each N, the runs with the most data, because the law has no
data term (Kaplan fitted it to runs that never repeat data), and the smaller-data runs of a study flatten
and overfit early; of each run, the evaluations after its warm-up (the law is not meant for it) up to its
best one (after it the held-out loss rises: overfitting, which the law does not describe). A run that
searched its length (`length_search = "branches"`) is evaluated held-out only at the ends of the lengths it
tried, each decayed (`decayed` in the curve table): those are its points, the loss of a run of S steps.

Intervals: the bootstrap over runs (a run's points move together: a seed's offset is shared by its whole
curve), its spread scaled by Student's t (`_intervals` says why and what it measured). Held-out error: each N left out in turn, the law fitted on the others predicts its points.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.stats import t as student_t

from effdata.analysis.core.fit import MIN_RESAMPLES
from effdata.analysis.dynamics.history import CurveTable

PAPER_LEARNING_CURVE = {"alpha_n": 0.076, "n_c": 8.8e13, "alpha_s": 0.76, "s_c": 2.1e3}   # Kaplan eq. 1.6, S_min
MIN_RUN_POINTS = 3        # evaluations of a run after its warm-up, up to its best, for the run to count
MIN_SIZES = 2             # α_N needs two N
LAW_BOOTSTRAP = 200       # each resample is a nonlinear solve; 200 is enough for 5-95 %
NAMES = ("alpha_n", "alpha_s", "log_a", "log_b", "n_c", "s_c")


@dataclass
class CurvePoints:
    """The points a law is fitted to: one per evaluation, with its run."""

    run: np.ndarray      # run id per point
    n: np.ndarray
    s: np.ndarray
    loss: np.ndarray

    def subset(self, mask: np.ndarray) -> CurvePoints:
        return CurvePoints(self.run[mask], self.n[mask], self.s[mask], self.loss[mask])

    def of_runs(self, runs) -> CurvePoints:
        """The points of `runs` in that order, a run drawn twice giving its points twice (the bootstrap)."""
        parts = [np.flatnonzero(self.run == r) for r in runs]
        index = np.concatenate(parts) if parts else np.array([], int)
        return CurvePoints(self.run[index], self.n[index], self.s[index], self.loss[index])


@dataclass
class LearningCurveFit:
    fitted: bool
    reason: str = ""
    steps: str = "S"                      # "S" (plain steps) or "S_min" (steps at the critical batch)
    alpha_n: float = float("nan")
    alpha_s: float = float("nan")
    log_a: float = float("nan")
    log_b: float = float("nan")
    n_c: float = float("nan")
    s_c: float = float("nan")
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    n_runs: int = 0
    n_points: int = 0
    sizes: list[float] = field(default_factory=list)
    rms_log: float = float("nan")         # in-sample root mean square of log-loss residuals
    step_range: tuple[float, float] = (float("nan"), float("nan"))   # S (or S_min) of the points fitted
    loss_range: tuple[float, float] = (float("nan"), float("nan"))
    batch_tokens: float = float("nan")    # the runs' batch (median), what plain S is counted at
    held_out: dict[float, float] = field(default_factory=dict)   # N -> RMS relative error, that N left out
    runs: list[str] = field(default_factory=list)

    def loss(self, n, s) -> np.ndarray:
        return law_loss(np.asarray(n, float), np.asarray(s, float), self.alpha_n, self.alpha_s, self.log_a, self.log_b)

    def to_dict(self) -> dict:
        return {"fitted": self.fitted, "reason": self.reason, "steps": self.steps, "alpha_n": self.alpha_n,
                "alpha_s": self.alpha_s, "n_c": self.n_c, "s_c": self.s_c, "A": float(np.exp(self.log_a)),
                "B": float(np.exp(self.log_b)), "intervals": {k: list(v) for k, v in self.intervals.items()},
                "n_runs": self.n_runs, "n_points": self.n_points, "sizes": self.sizes, "rms_log": self.rms_log,
                "step_range": list(self.step_range), "loss_range": list(self.loss_range),
                "batch_tokens": self.batch_tokens,
                "held_out_rms_relative": {str(int(k)): v for k, v in self.held_out.items()},
                "paper": PAPER_LEARNING_CURVE}


def law_loss(n, s, alpha_n, alpha_s, log_a, log_b) -> np.ndarray:
    return np.exp(log_a - alpha_n * np.log(n)) + np.exp(log_b - alpha_s * np.log(s))


def law_points(curves: CurveTable) -> CurvePoints:
    """The evaluations the law is fitted to (module docstring): from-scratch runs, the most data of each N,
    after warm-up, up to the run's best held-out loss; runs with fewer than MIN_RUN_POINTS left out."""
    runs = curves.runs[curves.runs["mode"] == "scratch"]
    data = next((c for c in ("data_tokens", "data_chars") if c in runs and runs[c].notna().all()), None)
    if data is not None:
        runs = runs[runs[data] == runs.groupby("n_params")[data].transform("max")]
    keep = []
    for run_id, points in curves.points[curves.points["run_id"].isin(runs.index)].groupby("run_id"):
        best = points["step"].iloc[int(np.argmin(points["valid_loss"].to_numpy()))]
        warmup = runs.at[run_id, "warmup_steps"]
        start = warmup if np.isfinite(warmup) else 0.0
        chosen = points[(points["step"] > start) & (points["step"] <= best)]
        if len(chosen) >= MIN_RUN_POINTS:
            keep.append(chosen.assign(n_params=runs.at[run_id, "n_params"]))
    if not keep:
        return CurvePoints(*(np.array([]) for _ in range(4)))
    table = pd.concat(keep)
    return CurvePoints(table["run_id"].to_numpy(str), table["n_params"].to_numpy(float),
                       table["step"].to_numpy(float), table["valid_loss"].to_numpy(float))


STARTS = [(a_n, a_s) for a_n in (0.05, 0.3, 1.0) for a_s in (0.3, 0.8, 1.5)]


def solve(points: CurvePoints, start: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(α_N, α_S, log A, log B) minimising the run-weighted squared log-loss residuals; and the weighted RMS."""
    _, inverse, counts = np.unique(points.run, return_inverse=True, return_counts=True)
    weight = 1.0 / np.sqrt(counts[inverse])
    log_n, log_s, log_l = np.log(points.n), np.log(points.s), np.log(points.loss)

    def residual(p):
        return weight * (np.logaddexp(p[2] - p[0] * log_n, p[3] - p[1] * log_s) - log_l)

    def jacobian(p):
        # Analytic: finite differences were 67 of 417 profiled CPU-seconds over every committed report's analysis,
        # these fits and Kaplan's together (laws/scaling.kaplan_residual).
        share = 0.5 * (1 + np.tanh((p[2] - p[0] * log_n - p[3] + p[1] * log_s) / 2))   # the N term's share of L
        return weight[:, None] * np.column_stack([-share * log_n, -(1 - share) * log_s, share, 1 - share])

    level = float(np.log(np.min(points.loss)))
    starts = [start] if start is not None else [
        np.array([a_n, a_s, level + a_n * np.mean(log_n), level + a_s * np.median(log_s)]) for a_n, a_s in STARTS]
    best = None
    for x0 in starts:
        result = least_squares(residual, x0, jac=jacobian, bounds=([1e-4, 1e-4, -50, -50], [3, 3, 100, 100]),
                               method="trf")
        if best is None or result.cost < best.cost:
            best = result
    rms = float(np.sqrt(2 * best.cost / np.sum(weight ** 2)))
    return best.x, rms


def fit_learning_curve(curves: CurveTable, n_bootstrap: int = LAW_BOOTSTRAP, seed: int = 0,
                       b_crit: Callable[[np.ndarray], np.ndarray] | None = None) -> LearningCurveFit:
    """L(N, S) on the curves' law points (`law_points`), with the bootstrap over runs and the held-out error by N;
    with `b_crit` (the critical batch in tokens against loss), L(N, S_min) (`law_points_min`)."""
    steps = "S" if b_crit is None else "S_min"
    points = law_points(curves) if b_crit is None else law_points_min(curves, b_crit)
    runs = sorted(set(points.run))
    sizes = sorted(set(points.n))
    if len(sizes) < MIN_SIZES:
        return LearningCurveFit(False, f"needs from-scratch curves at ≥ {MIN_SIZES} N with ≥ {MIN_RUN_POINTS} "
                                       f"evaluations after warm-up (have {len(sizes)} N, {len(runs)} runs)", steps)
    theta, rms = solve(points)
    fit = LearningCurveFit(True, steps=steps, n_runs=len(runs), n_points=len(points.loss), sizes=sizes, rms_log=rms,
                           step_range=(float(points.s.min()), float(points.s.max())),
                           loss_range=(float(points.loss.min()), float(points.loss.max())),
                           runs=runs, batch_tokens=float(batch_tokens(curves).reindex(runs).median()),
                           **_natural(theta))
    fit.intervals = _intervals(points, runs, theta, n_bootstrap, seed)
    if len(sizes) >= 3:
        for n in sizes:
            held, rest = points.subset(points.n == n), points.subset(points.n != n)
            other, _ = solve(rest, theta)
            predicted = law_loss(held.n, held.s, *other)
            fit.held_out[n] = float(np.sqrt(np.mean((predicted / held.loss - 1) ** 2)))
    return fit


def law_points_min(curves: CurveTable, b_crit: Callable[[np.ndarray], np.ndarray]) -> CurvePoints:
    """The law points with S replaced by S_min = S/(1 + B_crit(L)/B) (Kaplan eq. 5.4): B_crit(L) the fitted
    critical-batch law in tokens (as Kaplan do: one evaluation's noise scale scatters by 2-10x about it in
    jobs/dynamics.toml, which S_min would inherit), B the run's batch in tokens."""
    points = law_points(curves)
    batch = batch_tokens(curves).reindex(points.run).to_numpy(float)
    usable = np.isfinite(batch)
    s_min = points.s / (1 + b_crit(points.loss) / batch)
    return CurvePoints(points.run[usable], points.n[usable], s_min[usable], points.loss[usable])


def batch_tokens(curves: CurveTable) -> pd.Series:
    """Each run's tokens per step: batch × context from the results table, else the curve's tokens / step."""
    runs = curves.runs
    direct = runs["batch_size"] * runs["n_ctx"]
    p = curves.points
    if "tokens" in p:
        later = p[(p["step"] > 0) & p["tokens"].notna()]
        direct = direct.fillna((later["tokens"] / later["step"]).groupby(later["run_id"]).median())
    return direct


def _natural(theta: np.ndarray) -> dict[str, float]:
    alpha_n, alpha_s, log_a, log_b = (float(v) for v in theta)
    return {"alpha_n": alpha_n, "alpha_s": alpha_s, "log_a": log_a, "log_b": log_b,
            "n_c": float(np.exp(log_a / alpha_n)), "s_c": float(np.exp(log_b / alpha_s))}


# Which degrees of freedom each parameter's interval has: the N term is pinned by the sizes, the S term by the runs.
N_TERM, S_TERM = ("alpha_n", "log_a", "n_c"), ("alpha_s", "log_b", "s_c")


def _intervals(points: CurvePoints, runs: list[str], theta: np.ndarray, n_bootstrap: int,
               seed: int) -> dict[str, tuple[float, float]]:
    """90 % intervals: the estimate ± Student's t(0.95, dof) × the bootstrap-over-runs standard deviation ×
    √(G/(G−1)), G runs; dof = sizes − 2 for the N term, runs − 2 for the S term; N_c and S_c in log space.

    Why not the bootstrap's percentiles: with a handful of runs they are too narrow. Measured on 20 synthetic
    studies (10 runs at 5 N, 0.5 % noise per point and per run, tests/test_dynamics.py's generator), the
    5-95 % percentiles held the truth 65 % (α_N) to 80 % (α_S) of the time, their width 0.67-0.84 of the
    estimates' real spread; the t-scaled intervals held it 85-90 %. None with < MIN_RESAMPLES usable draws
    (a resample with fewer than MIN_SIZES N is skipped)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):
        sample = points.of_runs(rng.choice(runs, size=len(runs), replace=True))
        if len(set(sample.n)) >= MIN_SIZES:
            draws.append(_loggable(_natural(solve(sample, theta)[0])))
    if len(draws) < MIN_RESAMPLES:
        return {}
    centre = _loggable(_natural(theta))
    spread = np.std(np.array(draws), axis=0, ddof=1) * np.sqrt(len(runs) / (len(runs) - 1))
    sizes = len(set(points.n))
    intervals = {}
    for name, c, sd in zip(NAMES, centre, spread):
        dof = max(1, sizes - 2) if name in N_TERM else max(1, len(runs) - 2)
        low, high = c - student_t.ppf(0.95, dof) * sd, c + student_t.ppf(0.95, dof) * sd
        intervals[name] = (float(np.exp(low)), float(np.exp(high))) if name in ("n_c", "s_c") else (low, high)
    return intervals


def _loggable(natural: dict[str, float]) -> list[float]:
    """The parameters in NAMES order, N_c and S_c as logarithms (their spread is multiplicative)."""
    return [float(np.log(v)) if k in ("n_c", "s_c") else v for k, v in natural.items()]
