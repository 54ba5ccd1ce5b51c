"""The critical batch at fixed loss (Kaplan et al. 2020 §5.1): steps and tokens to reach one loss at several
batch sizes. With S = S_min·(1 + B_crit/B) and E = B·S = E_min·(1 + B/B_crit) (their eq. 5.4-5.5), S is linear
in 1/B: S = S_min + E_min/B, and B_crit = E_min/S_min. A check of the noise scale's B_crit (`noise.py`),
which McCandlish et al. predict to be about the same.

Steps to reach a loss: the first evaluation at which the run's best-so-far held-out loss is at or below it,
interpolated linearly in log step between that evaluation and the one before (evaluations are 5 % of a run
apart, so without it S would be quantised to that). The target: the highest of the runs' best losses, so
that every run reaches it (a lower one leaves the small batches out). Fitted per N holding ≥ MIN_BATCHES
batch sizes, by least squares on log S (the steps differ by 10× across batches).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from effdata.analysis.dynamics.history import CurveTable
from effdata.analysis.dynamics.law import batch_tokens

MIN_BATCHES = 3


@dataclass
class BatchTradeoff:
    n_params: float
    target: float
    runs: pd.DataFrame                 # run_id, batch_tokens, steps, tokens (to reach the target)
    fitted: bool
    reason: str = ""
    s_min: float = float("nan")
    e_min: float = float("nan")        # tokens
    notes: list[str] = field(default_factory=list)

    @property
    def b_crit(self) -> float:
        return self.e_min / self.s_min


def steps_to_reach(curve: pd.DataFrame, target: float) -> float:
    """Steps at which the best-so-far held-out loss first reaches `target` (interpolated in log step); nan if never."""
    steps = curve["step"].to_numpy(float)
    best = np.minimum.accumulate(curve["valid_loss"].to_numpy(float))
    hit = np.flatnonzero(best <= target)
    if not len(hit):
        return float("nan")
    i = int(hit[0])
    if i == 0 or steps[i - 1] <= 0 or best[i - 1] == best[i]:
        return float(steps[i])
    share = (best[i - 1] - target) / (best[i - 1] - best[i])
    return float(np.exp(np.log(steps[i - 1]) + share * (np.log(steps[i]) - np.log(steps[i - 1]))))


def batch_tradeoffs(curves: CurveTable, target: float | None = None) -> list[BatchTradeoff]:
    """One BatchTradeoff per N of the from-scratch runs that holds ≥ MIN_BATCHES batch sizes."""
    runs = curves.runs[curves.runs["mode"] == "scratch"].assign(batch_tokens=batch_tokens(curves))
    results = []
    for n, group in runs.groupby("n_params"):
        if group["batch_tokens"].nunique() < MIN_BATCHES:
            continue
        by_run = {r: curves.points[curves.points["run_id"] == r] for r in group.index}
        goal = target if target is not None else max(float(c["valid_loss"].min()) for c in by_run.values())
        table = pd.DataFrame({"run_id": list(by_run), "batch_tokens": group["batch_tokens"].to_numpy(float),
                              "steps": [steps_to_reach(by_run[r], goal) for r in by_run]})
        table["tokens"] = table["steps"] * table["batch_tokens"]
        results.append(_fit(float(n), goal, table))
    return results


def _fit(n: float, target: float, table: pd.DataFrame) -> BatchTradeoff:
    """S = S_min + E_min/B by least squares on log S, both positive (their logarithms are the parameters)."""
    usable = table[np.isfinite(table["steps"]) & (table["steps"] > 0)]
    if usable["batch_tokens"].nunique() < MIN_BATCHES:
        return BatchTradeoff(n, target, table, False, f"needs ≥ {MIN_BATCHES} batch sizes reaching {target:.4g}")
    b, s = usable["batch_tokens"].to_numpy(float), usable["steps"].to_numpy(float)

    def residual(p):
        return np.log(np.exp(p[0]) + np.exp(p[1]) / b) - np.log(s)

    start = np.log([max(s.min() / 2, 1.0), float(np.median(s * b)) / 2])
    result = least_squares(residual, start)
    return BatchTradeoff(n, target, table, True, s_min=float(np.exp(result.x[0])), e_min=float(np.exp(result.x[1])))
