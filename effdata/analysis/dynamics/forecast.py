"""Forecasts of a run's best held-out loss from the start of its curve, and their error.

Kaplan et al. (2020, §5) found training "universal": curves of different N have one shape in S, so a run's
end can be read off its start. Two forecasts from the evaluations up to a fraction f of the run (its steps
up to f × its planned steps, `total_steps`, known before it runs; the curve's last step when the table
lacks it), each of the loss at the planned end:

* `law`: L(N, S) fitted on the *other* runs (`law.solve` on their law points) gives the shape in S,
  B·S^(−α_S); the run's own level is the mean of (seen loss − B·S^(−α_S)) over its seen points after
  warm-up (one number: Kaplan's universality), else the law's A·N^(−α_N);
* `own`: the run's seen points after warm-up alone, fitted by L = c + b·S^(−a) (three numbers; needs
  MIN_OWN_POINTS points), which assumes nothing of other runs.

The truth is the run's best held-out loss (the minimum of its curve: what the results table reports for
an early-stopped run). The error is relative, (forecast − truth)/truth. Forecasts are made for every
from-scratch run with a curve; runs with less data than the law's (which overfit and stop early, where a
power law in S keeps falling) are reported apart, since the law is not meant for them.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.dynamics.history import CurveTable
from effdata.analysis.dynamics.law import law_points, solve
from effdata.forecast import MARGINS, MIN_POINTS, own_forecast

FRACTIONS = (0.1, 0.2, 0.5)
MIN_OWN_POINTS = MIN_POINTS
METHODS = ("law", "own")


@dataclass
class ForecastResult:
    table: pd.DataFrame                       # run_id, n_params, in_law, fraction, method, forecast, truth, error
    summary: pd.DataFrame                     # per (fraction, method, in_law): runs forecast, median |error|, p90
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"fractions": list(FRACTIONS), "summary": self.summary.to_dict(orient="records"), "notes": self.notes}


def forecast_runs(curves: CurveTable, fractions=FRACTIONS) -> ForecastResult:
    """Both forecasts of every from-scratch run with a curve, at each fraction (module docstring)."""
    points = law_points(curves)
    in_law = set(points.run)
    runs = _with_truth(curves.runs[curves.runs["mode"] == "scratch"])
    rows = []
    for run_id, curve in curves.points[curves.points["run_id"].isin(runs.index)].groupby("run_id"):
        info = runs.loc[run_id]
        others = points.subset(points.run != run_id)
        shape = solve(others)[0] if len(set(others.n)) >= 2 else None
        end = info["total_steps"] if np.isfinite(info["total_steps"]) else curve["step"].max()
        warmup = info["warmup_steps"] if np.isfinite(info["warmup_steps"]) else 0.0
        truth = float(curve["valid_loss"].min())
        for f in fractions:
            seen = curve[(curve["step"] <= f * end) & (curve["step"] > warmup)]
            for method, value in (("law", _by_law(shape, info["n_params"], seen, end)), ("own", _by_own(seen, end))):
                rows.append({"run_id": run_id, "n_params": info["n_params"], "in_law": run_id in in_law,
                             "fraction": f, "method": method, "seen": len(seen), "forecast": value, "truth": truth,
                             "error": value / truth - 1 if np.isfinite(value) else np.nan})
    table = pd.DataFrame(rows, columns=["run_id", "n_params", "in_law", "fraction", "method", "seen", "forecast",
                                        "truth", "error"])
    return ForecastResult(table, summarize(table))


def _with_truth(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose best loss is known: not those stopped by forecast (`stop_reason = forecast`), whose curve
    ends before their best."""
    return runs[runs["stop_reason"].astype(str) != "forecast"] if "stop_reason" in runs else runs


def _by_law(theta: np.ndarray | None, n: float, seen: pd.DataFrame, end: float) -> float:
    """The law's shape in S from other runs, the run's own level from its seen points."""
    if theta is None:
        return np.nan
    alpha_n, alpha_s, log_a, log_b = theta
    s_term = lambda s: np.exp(log_b - alpha_s * np.log(s))
    if len(seen):
        level = float(np.mean(seen["valid_loss"].to_numpy() - s_term(seen["step"].to_numpy(float))))
    else:
        level = float(np.exp(log_a - alpha_n * np.log(n)))
    return level + float(s_term(end))


def _by_own(seen: pd.DataFrame, end: float) -> float:
    """c + b·S^(−a) fitted to the seen points alone, read at the end (effdata.forecast: the fit the training
    loop stops runs by); NaN with fewer than MIN_OWN_POINTS."""
    return own_forecast(seen["step"].to_numpy(float), seen["valid_loss"].to_numpy(float), end)


def own_errors(curves: CurveTable, fractions=tuple(f for f, _ in MARGINS)) -> pd.DataFrame:
    """The `own` forecast's relative error for every from-scratch run and fine-tune with a curve, at each
    fraction: what effdata.forecast.MARGINS is measured from (a run stopped by forecast has no truth: left out)."""
    runs = _with_truth(curves.runs[curves.runs["mode"].isin(["scratch", "finetune"])])
    rows = []
    for run_id, curve in curves.points[curves.points["run_id"].isin(runs.index)].groupby("run_id"):
        info = runs.loc[run_id]
        end = info["total_steps"] if np.isfinite(info["total_steps"]) else curve["step"].max()
        warmup = info["warmup_steps"] if np.isfinite(info["warmup_steps"]) else 0.0
        truth = float(curve["valid_loss"].min())
        for f in fractions:
            seen = curve[(curve["step"] <= f * end) & (curve["step"] > warmup)]
            value = _by_own(seen, end)
            rows.append({"run_id": run_id, "mode": info["mode"], "fraction": f, "forecast": value, "truth": truth,
                         "error": value / truth - 1})
    return pd.DataFrame(rows, columns=["run_id", "mode", "fraction", "forecast", "truth", "error"])


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Per (fraction, method, in_law): runs forecast of runs tried, median and 90th percentile |error|, mean error."""
    rows = []
    for (f, method, in_law), group in table.groupby(["fraction", "method", "in_law"]):
        errors = group["error"].dropna().to_numpy()
        rows.append({"fraction": f, "method": method, "in_law": bool(in_law), "runs": len(group),
                     "forecast": len(errors),
                     "median_abs_error": float(np.median(np.abs(errors))) if len(errors) else np.nan,
                     "p90_abs_error": float(np.percentile(np.abs(errors), 90)) if len(errors) else np.nan,
                     "mean_error": float(np.mean(errors)) if len(errors) else np.nan})
    return pd.DataFrame(rows, columns=["fraction", "method", "in_law", "runs", "forecast", "median_abs_error",
                                       "p90_abs_error", "mean_error"])

