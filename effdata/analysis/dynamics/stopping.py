"""Stopping runs by forecast, simulated on finished curves: what a study would save, and what it would lose.

A sweep or grid runs several settings of one (N, data) point to keep the best; the universality of training
(Kaplan et al. 2020, §5) says a run's end can be read off its start, so a run whose forecast best loss is
clearly worse than its group's best forecast could be stopped. The rule simulated here, at a fraction f of
each run's planned steps: stop a run when its `law` forecast (forecast.py; its `own` where the law has no
shape for it, e.g. a sweep at one N) exceeds the group's lowest
forecast by more than `margin` (relative; default: the 90th percentile of the forecasts' absolute error at
that fraction, measured on the same runs: an optimistic margin, since it is in-sample). Reported: the share
of the group's planned steps saved, and how many stopped runs were their group's best in truth (a wrong
stop). Groups: from-scratch runs sharing N and data size (a sweep's points; seeds of one setting are
separate members, which a real rule would average).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from effdata.analysis.dynamics.forecast import ForecastResult
from effdata.analysis.dynamics.history import CurveTable


@dataclass(frozen=True)
class StopCheck:
    fraction: float
    margin: float
    groups: int                # groups with ≥ 2 runs forecast
    runs: int
    stopped: int
    wrong: int                 # stopped runs that were their group's best
    saved: float               # share of the groups' planned steps not run

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def _groups(curves: CurveTable) -> pd.Series:
    runs = curves.runs[curves.runs["mode"] == "scratch"]
    data = next((c for c in ("data_tokens", "data_chars") if c in runs), None)
    keys = runs["n_params"].astype(str) + ("/" + runs[data].astype(str) if data else "")
    return keys


def simulate_stopping(curves: CurveTable, forecasts: ForecastResult, fraction: float,
                      margin: float | None = None) -> StopCheck | None:
    """The rule at `fraction` (module docstring); None when no group holds two runs forecast there."""
    at = forecasts.table[forecasts.table["fraction"] == fraction]
    by_method = {m: rows.set_index("run_id") for m, rows in at.groupby("method")}
    if "law" not in by_method:
        return None
    table = by_method["law"].copy()
    if "own" in by_method:   # a run the law cannot forecast (one N: no shape from other sizes) uses its own curve
        own = by_method["own"].reindex(table.index)
        for column in ("forecast", "error"):
            table[column] = table[column].fillna(own[column])
    table = table.dropna(subset=["forecast"])
    if margin is None:
        errors = table["error"].abs().dropna()
        margin = float(np.percentile(errors, 90)) if len(errors) else 0.0
    group = _groups(curves).reindex(table.index)
    planned = curves.runs["total_steps"].reindex(table.index)
    planned = planned.fillna(curves.points.groupby("run_id")["step"].max().reindex(table.index))
    counted = stopped = wrong = groups = 0
    saved = total = 0.0
    for _, members in table.groupby(group):
        if len(members) < 2:
            continue
        groups += 1
        counted += len(members)
        best_forecast, best_truth = members["forecast"].min(), members["truth"].idxmin()
        stop = members.index[members["forecast"] > best_forecast * (1 + margin)]
        stopped += len(stop)
        wrong += int(best_truth in stop)
        saved += float(((1 - fraction) * planned[stop]).sum())
        total += float(planned[members.index].sum())
    if not groups:
        return None
    return StopCheck(fraction, margin, groups, counted, stopped, wrong, saved / total if total else 0.0)
