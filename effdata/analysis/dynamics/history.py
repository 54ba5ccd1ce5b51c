"""Read and validate a learning-curve table (`curves.csv`: one row per evaluation of a run), beside its results table.

A study writes it from its records (`study/store.py`); any other training setup's table works too, with the
required columns below. Validated in the results table's style (`core/table.py`): a file that cannot be
read or lacks a required column is one `TableError` line; every other problem is a warning and the rows
it concerns are set aside. Each run's N, mode, batch and warm-up come from the results table's row of
the same `run_id` (or from the curve table's own `n_params` column, for a setup without one).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from effdata.analysis.core.table import SCRATCH, TableError, read_table

CURVES_FILE = "curves.csv"
REQUIRED = ("run_id", "step", "valid_loss")
NUMERIC = ("step", "tokens", "lr", "train_loss", "valid_loss", "n_params", "b_simple", "decayed")

# Documented once here, like the results table's COLUMN_DOCS.
CURVE_COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "run_id": ("required", "the run, as in the results table's `run_id`"),
    "step": ("required", "optimiser steps taken at this evaluation"),
    "valid_loss": ("required", "held-out target loss, nats per token (empty where not evaluated)"),
    "tokens": ("optional", "tokens trained on so far (step × batch × context)"),
    "lr": ("optional", "learning rate of the last step"),
    "train_loss": ("optional", "mean training loss since the previous evaluation"),
    "n_params": ("optional", "N, for runs the results table does not have"),
    "b_simple": ("optional", "the gradient noise scale B_simple in sequences (`noise_scale` option)"),
    "decayed": ("optional", "1 where the point is the end of a decayed run of that length (a length search's "
                            "branch: `length_search = \"branches\"`), empty for an evaluation on the way"),
}
RUN_COLUMNS = ("n_params", "mode", "batch_size", "n_ctx", "warmup_steps", "total_steps", "size", "seed",
               "data_tokens", "data_chars", "valid_loss", "stop_reason")


@dataclass
class CurveTable:
    """Validated learning curves: `points` one row per evaluation with a held-out loss, sorted by (run, step);
    `runs` one row per run with what the analysis needs of it (N, mode, batch, warm-up, planned steps)."""

    points: pd.DataFrame
    runs: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def has_noise_scale(self) -> bool:
        return "b_simple" in self.points and self.points["b_simple"].notna().any()


def scratch_part(curves: CurveTable) -> CurveTable:
    """The from-scratch runs' curves alone, in run-id order: all that the learning-curve law and the forecasts
    read, so that two tables with the same from-scratch runs give the same key (core/memo.py)."""
    runs = curves.runs[curves.runs["mode"] == "scratch"].sort_index()
    points = curves.points[curves.points["run_id"].isin(runs.index)]
    return CurveTable(points.sort_values(["run_id", "step"], kind="stable").reset_index(drop=True), runs)


def curves_beside(results) -> Path | None:
    """The curve table next to a results table given as a path (a study directory or its results.csv)."""
    if isinstance(results, pd.DataFrame):
        return None
    path = Path(results)
    folder = path if path.is_dir() else path.parent
    return folder / CURVES_FILE if (folder / CURVES_FILE).exists() else None


def load_curves(source, results: pd.DataFrame | None = None) -> CurveTable:
    """Read and validate a curve table (path or DataFrame); `results`: the results table's rows, as read."""
    df = read_table(source)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise TableError(f"curve table lacks required column(s) {missing}; it has {list(df.columns)}. "
                         f"Required: run_id, step, valid_loss (one row per evaluation)")
    for column in NUMERIC:
        if column in df.columns:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    df["run_id"] = df["run_id"].astype(str).str.strip()
    warnings: list[str] = []
    runs = _runs(df, results, warnings)
    df = df[df["run_id"].isin(runs.index)]
    usable = np.isfinite(df["step"]) & (df["step"] >= 0) & np.isfinite(df["valid_loss"]) & (df["valid_loss"] > 0)
    if (~usable).any():
        warnings.append(f"{int((~usable).sum())} curve row(s) without a step ≥ 0 and a positive held-out loss "
                        f"(not evaluated there, or unreadable): not used")
    df = df[usable]
    duplicated = df.duplicated(["run_id", "step"], keep="first")
    if duplicated.any():
        warnings.append(f"{int(duplicated.sum())} curve row(s) repeat a (run_id, step): the first kept")
        df = df[~duplicated]
    points = df.sort_values(["run_id", "step"]).reset_index(drop=True)
    runs = runs.loc[sorted(set(points["run_id"]))]
    if points.empty:
        warnings.append("the curve table has no usable rows")
    return CurveTable(points=points, runs=runs, warnings=warnings)


def _runs(df: pd.DataFrame, results: pd.DataFrame | None, warnings: list[str]) -> pd.DataFrame:
    """One row per run_id of the curve table: its results row's columns (ok rows only), else the curve's N."""
    ids = pd.Index(sorted(set(df["run_id"])), name="run_id")
    runs = pd.DataFrame(index=ids)
    if results is not None and "run_id" in results.columns:
        rows = results.copy()
        if "status" in rows.columns:
            rows = rows[rows["status"].astype(str) == "ok"]
        rows = rows.assign(run_id=rows["run_id"].astype(str).str.strip()).drop_duplicates("run_id")
        kept = [c for c in RUN_COLUMNS if c in rows.columns]
        runs = runs.join(rows.set_index("run_id")[kept])
    if "n_params" in df.columns:
        own = df.groupby("run_id")["n_params"].first()
        runs["n_params"] = runs["n_params"].fillna(own) if "n_params" in runs else own
    for column in ("n_params", "batch_size", "n_ctx", "warmup_steps", "total_steps", "valid_loss"):
        runs[column] = pd.to_numeric(runs[column], errors="coerce") if column in runs else np.nan
    if "mode" not in runs:
        runs["mode"] = "scratch"
    runs["mode"] = runs["mode"].fillna("scratch").astype(str).str.lower().replace({SCRATCH: "scratch"})
    unknown = ~(np.isfinite(runs["n_params"]) & (runs["n_params"] > 0))
    if unknown.any():
        warnings.append(f"{int(unknown.sum())} run(s) of the curve table with no N (not ok in the results table, "
                        f"or absent from it, and no n_params column): not used, e.g. {list(runs.index[unknown][:3])}")
    return runs[~unknown]
