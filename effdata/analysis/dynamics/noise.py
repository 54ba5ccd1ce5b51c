"""The critical batch size against loss, B_crit(L) = B* / L^(1/α_B) (Kaplan et al. 2020, eq. 5.3), across runs.

Each evaluation of a run trained with the `noise_scale` option records the simple noise scale B_simple =
tr(Σ)/|G|² in sequences (McCandlish et al. 2018, appendix A: training/noise.py). Kaplan take B_crit ≈ B_noise;
here B_crit is B_simple in tokens (× the run's context), read against the held-out loss at the same
evaluation (Kaplan read it against the training loss, which on their data of one epoch is the same), of
from-scratch runs only: a pretraining run's held-out loss is another distribution's than the one its
gradients are, and a fine-tune's noise scale belongs to its pretrained start as much as to its loss.
The fit is log B_crit = log B* − (1/α_B)·log L by least squares, each run weighted equally; evaluations
where the estimate is ≤ 0 (|G|² estimated below zero: the noise dominates, B_simple is then unbounded) and the
step-0 point are left out and counted. Intervals: the bootstrap over runs, 5-95 %.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.core.fit import INTERVAL_PERCENTILES, MIN_RESAMPLES
from effdata.analysis.dynamics.history import CurveTable

PAPER_CRITICAL_BATCH = {"b_star": 2e8, "alpha_b": 0.21}   # tokens; Kaplan et al. 2020, eq. 5.3
MIN_POINTS = 4


@dataclass
class NoiseScaleFit:
    fitted: bool
    reason: str = ""
    b_star: float = float("nan")          # tokens
    alpha_b: float = float("nan")
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    points: pd.DataFrame = field(default_factory=pd.DataFrame)   # run_id, n_params, loss, b_crit (tokens)
    left_out: int = 0

    def b_crit(self, loss) -> np.ndarray:
        return self.b_star / np.asarray(loss, float) ** (1 / self.alpha_b)

    def to_dict(self) -> dict:
        return {"fitted": self.fitted, "reason": self.reason, "b_star_tokens": self.b_star, "alpha_b": self.alpha_b,
                "intervals": {k: list(v) for k, v in self.intervals.items()}, "points": len(self.points),
                "left_out": self.left_out, "paper": PAPER_CRITICAL_BATCH}


def noise_points(curves: CurveTable) -> tuple[pd.DataFrame, int]:
    """(evaluations with a positive B_simple and held-out loss after step 0, in tokens; how many were left out)."""
    p = curves.points
    p = p[p["run_id"].isin(curves.runs.index[curves.runs["mode"] == "scratch"])]
    measured = p[p["b_simple"].notna() & (p["step"] > 0)] if "b_simple" in p else p.iloc[:0]
    usable = measured[measured["b_simple"] > 0]
    n_ctx = curves.runs["n_ctx"].reindex(usable["run_id"]).to_numpy(float)
    if "tokens" in usable and "batch_size" in curves.runs:   # a table without n_ctx: tokens per sequence from the curve
        per_seq = usable["tokens"].to_numpy(float) / usable["step"].to_numpy(float) / \
            curves.runs["batch_size"].reindex(usable["run_id"]).to_numpy(float)
        n_ctx = np.where(np.isfinite(n_ctx), n_ctx, per_seq)
    table = pd.DataFrame({"run_id": usable["run_id"].to_numpy(),
                          "n_params": curves.runs["n_params"].reindex(usable["run_id"]).to_numpy(float),
                          "loss": usable["valid_loss"].to_numpy(float),
                          "b_crit": usable["b_simple"].to_numpy(float) * n_ctx})
    table = table[np.isfinite(table["b_crit"])]
    return table.reset_index(drop=True), int(len(measured) - len(table))


def _solve(table: pd.DataFrame) -> tuple[float, float]:
    """(B*, α_B) of the run-weighted least-squares line log B = log B* − k·log L, k = 1/α_B."""
    weight = 1.0 / table.groupby("run_id")["loss"].transform("size").to_numpy(float)
    x, y = np.log(table["loss"].to_numpy()), np.log(table["b_crit"].to_numpy())
    design = np.column_stack([np.ones_like(x), -x]) * np.sqrt(weight)[:, None]
    (log_b_star, k), *_ = np.linalg.lstsq(design, y * np.sqrt(weight), rcond=None)
    return float(np.exp(log_b_star)), float(1 / k) if k > 0 else float("nan")


def fit_critical_batch(curves: CurveTable, n_bootstrap: int = 200, seed: int = 0) -> NoiseScaleFit:
    table, left_out = noise_points(curves)
    runs = sorted(set(table["run_id"]))
    if len(table) < MIN_POINTS or table["loss"].nunique() < 2:
        return NoiseScaleFit(False, f"needs ≥ {MIN_POINTS} evaluations with a positive noise scale (have "
                                    f"{len(table)}, {left_out} left out)", points=table, left_out=left_out)
    b_star, alpha_b = _solve(table)
    fit = NoiseScaleFit(True, b_star=b_star, alpha_b=alpha_b, points=table, left_out=left_out)
    rng = np.random.default_rng(seed)
    draws = []
    by_run = {r: table[table["run_id"] == r] for r in runs}
    for _ in range(n_bootstrap if len(runs) >= 2 else 0):
        sample = pd.concat([by_run[r].assign(run_id=f"{r}#{i}") for i, r in enumerate(rng.choice(runs, len(runs)))])
        if sample["loss"].nunique() >= 2:
            draws.append(_solve(sample))
    values = np.array(draws, float).reshape(-1, 2)
    values = values[np.isfinite(values).all(axis=1)]
    if len(values) >= MIN_RESAMPLES:
        low, high = np.percentile(values, INTERVAL_PERCENTILES, axis=0)
        fit.intervals = {"b_star": (float(low[0]), float(high[0])), "alpha_b": (float(low[1]), float(high[1]))}
    return fit
