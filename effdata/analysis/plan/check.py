"""How well does the planner predict runs it has not seen? A held-out check on a results table.

For each fine-tuning size D_F (or each model size N) in turn, the runs at that value are left out: the
fine-tuned runs at that D_F (from-scratch runs stay: they are what a practitioner has before fine-tuning),
or every run of that N (a size never trained). The from-scratch law and the transfer laws are refitted on
the rest exactly as effdata.analyze fits them (no bootstrap), put in fits.json's shape, read by the
planner, and the planner's own prediction path gives the left-out fine-tuned losses. The error is
reported in loss (nats/token) and relative to the loss, beside a baseline that ignores transfer (the
from-scratch law at D_F), so one sees what the transfer law adds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from effdata.analysis.core.effective import compute_effective
from effdata.analysis.core.fit import fit_transfer
from effdata.analysis.core.table import ResultsTable, load_results
from effdata.analysis.laws.scaling import StartGrid, fit_chinchilla, fit_kaplan
from effdata.analysis.plan.planner import (
    PlanError,
    extrapolation,
    load_laws,
    planning_fits,
    predict,
)
from effdata.analysis.shape.groups import find_groups, ladder_table

GROUPS = {"d_f": "D_F", "n_params": "N"}


@dataclass
class PlannerCheck:
    """Every held-out prediction, and the folds that could not be predicted with the reason."""

    source: str
    law: str
    predictions: pd.DataFrame          # group, left_out, pretrain, n_params, d_f, loss, predicted, baseline, extrapolated
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> pd.DataFrame:
        """Per group: runs predicted, mean |error| (nats/token), mean relative error, the no-transfer baseline."""
        rows = []
        for group, part in self.predictions.groupby("group", sort=False):
            error = (part["predicted"] - part["loss"]).abs()
            rows.append({"group": group, "folds": part["left_out"].nunique(), "runs": len(part),
                         "extrapolated": int((part["extrapolated"] != "").sum()),
                         "mean_abs_error": float(error.mean()),
                         "mean_rel_error": float((error / part["loss"]).mean()),
                         "max_abs_error": float(error.max()),
                         "baseline_mean_abs_error": float((part["baseline"] - part["loss"]).abs().mean())})
        return pd.DataFrame(rows)


def heldout_check(results, groups=("d_f", "n_params"), law: str = "chinchilla",
                  grid: StartGrid = StartGrid()) -> PlannerCheck:
    """Leave each D_F and each N out in turn, refit, predict the left-out fine-tuned losses (see above)."""
    table = load_results(results, units="chars", warnings=[])
    if table.units != "chars":
        raise PlanError("the held-out check needs `data_chars` (the planner works in characters)")
    source = "DataFrame" if isinstance(results, pd.DataFrame) else str(results)
    check = PlannerCheck(source=source, law=law, predictions=pd.DataFrame())
    shapes, _ = find_groups([table.runs, table.pretraining])
    if shapes:   # laws across N read one shape per N, as effdata.analyze fits them
        table, _ = ladder_table(table, shapes)
        check.skipped.append("several shapes at one N: the laws are refitted on each N's reference shape only ("
                             + ", ".join(g.reference.name for g in shapes) + "), as effdata.analyze fits them")
    frames = []
    for group in groups:
        column = "data_chars" if group == "d_f" else "n_params"
        for value in sorted(table.finetuned[column].unique()):
            predicted = _fold(table, group, column, value, law, grid, check.skipped)
            if predicted is not None:
                frames.append(predicted)
    check.predictions = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["group", "left_out", "pretrain", "n_params", "d_f", "loss", "predicted", "baseline", "extrapolated"])
    return check


def _refit(train: ResultsTable, law: str, grid: StartGrid) -> dict:
    """fits.json's planner keys from `train`, fitted as effdata.analyze does (without the bootstrap)."""
    quiet: list[str] = []
    effective = compute_effective(train, quiet)
    transfer = {name: fit_transfer(effective.table, name, train.units, n_bootstrap=0, warnings=quiet)
                for name in sorted(effective.table["pretrain"].unique())}
    kaplan = fit_kaplan(train.scratch, n_bootstrap=0, warnings=quiet) if law == "kaplan" else None
    chinchilla = fit_chinchilla(train.scratch, train.units, n_bootstrap=0, warnings=quiet, grid=grid) \
        if law != "kaplan" else None
    fits = planning_fits("held-out fold", train.units, transfer, effective.table,
                         kaplan or _absent("kaplan"), chinchilla or _absent("chinchilla"))
    return fits


@dataclass
class _absent:
    """A law not fitted in this fold (the check uses one form at a time)."""

    form: str

    def to_dict(self) -> dict:
        return {"fitted": False, "reason": f"{self.form} not fitted in the held-out check"}


def _fold(table: ResultsTable, group: str, column: str, value: float, law: str, grid: StartGrid,
          skipped: list[str]) -> pd.DataFrame | None:
    runs = table.runs
    left_out = (runs[column] == value) & ((runs["mode"] == "finetune") | (group == "n_params"))
    test = runs[left_out & (runs["mode"] == "finetune")]
    label = f"{GROUPS[group]} = {value:.3g}"
    try:
        laws = load_laws(_refit(dataclasses.replace(table, runs=runs[~left_out], warnings=[]), law, grid), law=law)
    except PlanError as exc:
        skipped.append(f"{label}: {exc}")
        return None
    rows = []
    for _, run in test.iterrows():
        name, n, d_f = run["pretrain"], float(run["n_params"]), float(run["data_chars"])
        if name not in laws.transfer:
            skipped.append(f"{label}, '{name}' at N = {n:.3g}: no transfer law without these runs "
                           f"({laws.not_fitted.get(name, 'no runs')})")
            continue
        predicted = predict(laws, name, n, d_f)
        rows.append({"group": GROUPS[group], "left_out": value, "pretrain": name, "n_params": n, "d_f": d_f,
                     "loss": float(run["loss"]), "predicted": float(predicted["loss"]),
                     "baseline": float(predicted["loss_scratch"]),
                     "extrapolated": extrapolation(laws, name, n, d_f, float(predicted["d_e"]))})
    return pd.DataFrame(rows) if rows else None
