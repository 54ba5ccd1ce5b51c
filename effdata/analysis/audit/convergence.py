"""Did each from-scratch run reach the best loss its N can reach on its D? (docs/METHOD.md §6)

A from-scratch point is the best loss N reaches on D only when its run stopped because the held-out loss
stopped improving. A run that ended on a step cap, an epoch or token budget has not told us that: its loss
is an upper bound, the curve is too high there, and a D_E read off that stretch is too large. Tables written
by effdata say why each run stopped (`stop_reason`, or `stopped` in tables before v3); a table without either
is analysed as before, with one line saying convergence could not be checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.fmt import compact

CONVERGED = {"stop_reason": {"early_stop"}, "stopped": {"early"}}
LIMITS = {"step_cap": "a step cap (`max_steps`)", "step_floor": "a step floor (`min_steps`)",
          "epoch_budget": "an epoch budget (`max_epochs`)", "token_budget": "a token budget",
          "budget": "a step cap or epoch budget (`max_steps`, `max_epochs`)", "diverged": "divergence",
          "forecast": "a forecast (`stop_by_forecast`)"}
FIX = ("let each run find its best length (`length_search = \"branches\"` under [train], docs/training.md), or "
       "raise the limit it hit")


@dataclass
class Convergence:
    """The from-scratch runs that did not converge, and the points and D_E they touch."""

    column: str | None                                   # the column that says why runs stopped (None: unchecked)
    not_converged: pd.DataFrame = field(default_factory=pd.DataFrame)   # one row per run
    n_runs: int = 0                                      # from-scratch runs checked
    point_converged: pd.Series | None = None             # per from-scratch point (the scratch frame's index)
    at_first: pd.DataFrame = field(default_factory=pd.DataFrame)   # searches that kept their shortest length

    @property
    def checked(self) -> bool:
        return self.column is not None


def _best_is_last(runs: pd.DataFrame) -> pd.Series:
    """The column if the table has it, else: the best evaluation within one evaluation interval of the end."""
    if "best_is_last" in runs:
        return runs["best_is_last"].astype(str).str.lower().isin({"true", "1", "1.0"})
    if {"best_step", "steps", "eval_interval"} <= set(runs.columns):
        return (runs["steps"] - runs["best_step"]) < runs["eval_interval"]
    return pd.Series(False, index=runs.index)


def check_convergence(seed_runs: pd.DataFrame, scratch: pd.DataFrame, data_column: str) -> Convergence:
    """Every from-scratch run (all seeds) checked; a point is converged when all its seeds are."""
    runs = seed_runs[seed_runs["mode"] == "scratch"]
    column = next((c for c in CONVERGED if c in runs and runs[c].notna().any()), None)
    if column is None:
        return Convergence(None)
    converged = runs[column].astype(str).isin(CONVERGED[column])
    keys = ["n_params", data_column] + (["shape"] if "shape" in runs and "shape" in scratch else [])
    bad = runs[~converged].copy()
    bad["why"] = bad[column].map(lambda v: LIMITS.get(str(v), str(v)))
    bad["best_is_last"] = _best_is_last(runs)[~converged]
    shown = [c for c in ("run_id", "size", "n_params", data_column, "steps", "epochs", "best_step", "why",
                         "best_is_last") if c in bad]
    first = _at_first(seed_runs)
    bad_keys = set(map(tuple, pd.concat([bad, first[first["mode"] == "scratch"]])[keys].to_numpy().tolist()))
    point = pd.Series([tuple(row) not in bad_keys for row in scratch[keys].to_numpy().tolist()], index=scratch.index)
    first_shown = [c for c in ("run_id", "mode", "pretrain", "size", "n_params", data_column, "best_step") if c in first]
    return Convergence(column, bad[shown].reset_index(drop=True), len(runs), point,
                       first[first_shown].reset_index(drop=True))


def _at_first(seed_runs: pd.DataFrame) -> pd.DataFrame:
    """From-scratch runs and fine-tunes whose length search kept its shortest length or its starting model
    (`best_is_first`): the best run may be shorter than any tried, so the loss is an upper bound. A fine-tune's
    D_T is then too small; a from-scratch point is too high (docs/METHOD.md §5e)."""
    if "best_is_first" not in seed_runs:
        return seed_runs.iloc[:0]
    flag = seed_runs["best_is_first"].astype(str).str.lower().isin({"true", "1", "1.0"})
    return seed_runs[flag & seed_runs["mode"].isin(["scratch", "finetune"])]


def fine_tunes_at_first(effective: pd.DataFrame, convergence: Convergence, data_column: str) -> pd.Series:
    """Per fine-tuned point: did one of its runs keep the shortest length its search tried?"""
    first = convergence.at_first
    if first.empty or "pretrain" not in first:
        return pd.Series(False, index=effective.index)
    keys = set(zip(first["pretrain"], first["n_params"].astype(float), first[data_column].astype(float)))
    return pd.Series([(p, float(n), float(d)) in keys for p, n, d in
                      zip(effective["pretrain"], effective["n_params"], effective["d_f"])], index=effective.index)


def d_e_on_unconverged(effective: pd.DataFrame, scratch: pd.DataFrame, data_column: str,
                       convergence: Convergence) -> pd.Series:
    """Per fine-tune: was its D_E read between (or past) from-scratch points one of which did not converge?"""
    marked = pd.Series(False, index=effective.index)
    if not convergence.checked or convergence.point_converged is None:
        return marked
    for index, row in effective.iterrows():
        curve = scratch[scratch["n_params"] == row["n_params"]]
        if "shape" in curve and "shape" in row:
            curve = curve[curve["shape"] == row["shape"]]
        d, ok = curve[data_column].to_numpy(float), convergence.point_converged[curve.index].to_numpy(bool)
        if not len(d) or not np.isfinite(row["d_e"]):
            continue
        above, below = d >= row["d_e"], d <= row["d_e"]
        touching = ([np.argmin(np.where(above, d, np.inf))] if above.any() else [np.argmax(d)]) + \
                   ([np.argmax(np.where(below, d, -np.inf))] if below.any() else [])
        marked[index] = not ok[touching].all()
    return marked


def first_length_warnings(convergence: Convergence) -> list[str]:
    first = convergence.at_first
    if first.empty:
        return []
    count = first["mode"].value_counts()
    return [f"{count.get('finetune', 0)} fine-tunes and {count.get('scratch', 0)} from-scratch runs kept the "
            "shortest length their search tried, or their starting model (`best_is_first`): the best run may be "
            "shorter, so their losses are upper bounds (a fine-tune's D_T too small, a from-scratch point too "
            "high). To fix: a shorter first length (`min_steps`)"]


def convergence_warnings(convergence: Convergence, marked: int) -> list[str]:
    if not convergence.checked:
        return []
    bad = convergence.not_converged
    if bad.empty:
        return first_length_warnings(convergence)
    sizes = ", ".join(sorted({str(s) for s in bad.get("size", bad["n_params"].map(compact))}))
    text = (f"{len(bad)} of {convergence.n_runs} from-scratch runs did not converge (stopped on "
            f"{', '.join(sorted(set(bad['why'])))}, not by early stopping; sizes {sizes}): their losses are upper "
            f"bounds and the curve is too high there")
    if marked:
        text += f"; {marked} D_E are read on such a stretch (too large: marked in the audit)"
    return [text + f". To fix: {FIX}"] + first_length_warnings(convergence)
