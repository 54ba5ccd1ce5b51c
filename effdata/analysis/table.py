"""Read and validate a results table (CSV, Parquet or JSONL) for the analysis layer.

The table can come from an effdata study (`<out>/results.csv`) or from any other training setup,
as long as it has the required columns below. This module never imports torch.

What `load_results` does, in order, and why:

* reads the file (or takes a DataFrame), checks the required columns, coerces numbers;
* derives `mode` when it is absent (external tables): `pretrain == "none"` is from scratch,
  anything else is a fine-tuned run;
* sets aside, with a warning each, the rows that cannot be analysed: `status != "ok"`, non-finite
  or non-positive loss, N or data size; drops exact duplicate rows (a warning says how many);
* keeps `mode == "pretrain"` rows apart (`pretraining`): they have no target-data size, so they are
  not in the transfer analysis; the report shows them as its input;
* averages the seeds that share (pretrain, N, data size) and keeps their spread (`loss_std`,
  `n_seeds`), because the transfer analysis wants one loss per grid point; the seeds themselves are
  kept too (`seed_runs`): the bootstrap re-draws them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCRATCH = "none"  # the `pretrain` value of a from-scratch run

REQUIRED_COLUMNS = ("pretrain", "n_params", "loss")
DATA_COLUMNS = {"chars": "data_chars", "tokens": "data_tokens"}  # at least one of them is required

# Documented once here; the README table and the report's glossary are built from it.
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "pretrain": ("required", '`none` for a from-scratch run, else the pretraining name (`text`, `text+code`, ...)'),
    "n_params": ("required", "non-embedding parameter count N"),
    "data_chars": ("required*", "target training-set size in characters (*one of data_chars / data_tokens; chars is the default unit)"),
    "data_tokens": ("required*", "target training-set size in tokens"),
    "loss": ("required", "best held-out target loss, nats per token, of the early-stopped model"),
    "mode": ("optional", "`scratch`, `finetune` or `pretrain`; pretrain rows are shown as the input, not fitted; if absent, derived from `pretrain`"),
    "status": ("optional", "`ok` or anything else; rows that are not ok are listed, not analysed"),
    "error": ("optional", "why a run failed"),
    "seed": ("optional", "seeds sharing (pretrain, N, data size) are averaged; the bootstrap re-draws them and the report gives their spread"),
    "size": ("optional", "model size name, shown in tables"),
    "n_layer": ("optional", "layers"),
    "d_model": ("optional", "width"),
    "flops": ("optional", "training FLOPs of the run (needed for the loss-against-compute plot)"),
    "pretrain_flops": ("optional", "FLOPs of the pretraining run a fine-tuned run started from (0 for scratch)"),
    "valid_loss": ("optional", "held-out loss used for early stopping"),
    "tokens_seen": ("optional", "pretraining rows: tokens the pretraining run processed"),
    "tokens_per_param": ("optional", "pretraining rows: tokens_seen / n_params (computed when absent)"),
    "pretrain_valid_loss": ("optional", "pretraining rows: loss on the run's own held-out distribution"),
    "wall_time": ("optional", "seconds"),
}

NUMERIC_COLUMNS = ("n_params", "data_chars", "data_tokens", "loss", "valid_loss", "flops",
                   "pretrain_flops", "wall_time", "n_layer", "d_model", "seed", "tokens_seen",
                   "tokens_per_param", "pretrain_valid_loss")


class TableError(ValueError):
    """The table cannot be analysed at all (unreadable, or a required column is missing)."""


@dataclass
class ResultsTable:
    """Validated runs, one row per (pretrain, mode, N, data size), plus what was set aside."""

    runs: pd.DataFrame                 # ok scratch + finetune rows, seeds averaged
    set_aside: pd.DataFrame            # rows not analysed, with a `reason` column
    units: str                         # "chars" or "tokens": the data column the rows were grouped by
    data_column: str
    warnings: list[str] = field(default_factory=list)
    n_pretrain_rows: int = 0           # mode == "pretrain" rows (ok ones: `pretraining`)
    seed_runs: pd.DataFrame = field(default_factory=pd.DataFrame)     # `runs` before seeds are averaged
    pretraining: pd.DataFrame = field(default_factory=pd.DataFrame)   # ok mode == "pretrain" rows

    @property
    def scratch(self) -> pd.DataFrame:
        return self.runs[self.runs["mode"] == "scratch"]

    @property
    def finetuned(self) -> pd.DataFrame:
        return self.runs[self.runs["mode"] == "finetune"]


def read_table(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read CSV, Parquet or JSONL (by suffix) into a DataFrame; a DataFrame is copied."""
    if isinstance(source, pd.DataFrame):
        return source.copy()
    path = Path(source)
    if path.is_dir() and (path / "results.csv").exists():  # a study directory
        path = path / "results.csv"
    if not path.exists():
        raise TableError(f"results table not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
        if suffix in (".csv", ".tsv", ".txt"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # a parser error: say which file, keep the parser's reason
        raise TableError(f"could not read {path}: {exc}") from exc
    raise TableError(f"unknown table format {suffix!r} for {path}: use .csv, .parquet or .jsonl")


def _set_aside(df: pd.DataFrame, mask: pd.Series, reason: str, aside: list[pd.DataFrame],
               warnings: list[str], what: str) -> pd.DataFrame:
    """Move the rows in `mask` to the set-aside list with a reason and a warning; return the rest."""
    if mask.any():
        rows = df[mask].copy()
        rows["reason"] = reason
        aside.append(rows)
        warnings.append(f"{int(mask.sum())} row(s) {what}: set aside, not analysed")
    return df[~mask]


def load_results(source: str | Path | pd.DataFrame, units: str = "chars",
                 warnings: list[str] | None = None) -> ResultsTable:
    """Read and validate a results table; see the module docstring for the steps.

    Raises TableError only when nothing can be analysed (missing file or required column);
    every other problem becomes a warning in the returned table.
    """
    warnings = [] if warnings is None else warnings
    if units not in DATA_COLUMNS:
        raise TableError(f"units must be 'chars' or 'tokens', not {units!r}")
    df = read_table(source)
    df.columns = [str(c).strip() for c in df.columns]

    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"results table lacks required column(s) {missing}; "
                         f"it has {list(df.columns)}. Required: pretrain, n_params, loss and "
                         "data_chars or data_tokens (see README, 'Analysis input').")
    data_column = DATA_COLUMNS[units]
    if data_column not in df.columns or df[data_column].isna().all():
        other = "tokens" if units == "chars" else "chars"
        if DATA_COLUMNS[other] in df.columns and not df[DATA_COLUMNS[other]].isna().all():
            warnings.append(f"no `{data_column}` column: analysing in {other} instead of {units}")
            units, data_column = other, DATA_COLUMNS[other]
        else:
            raise TableError("results table has neither data_chars nor data_tokens values")

    for column in NUMERIC_COLUMNS:
        if column in df.columns:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    if df["pretrain"].isna().any():
        warnings.append(f"{int(df['pretrain'].isna().sum())} row(s) without `pretrain`: read as "
                        f"'{SCRATCH}' (from scratch)")
    df["pretrain"] = df["pretrain"].fillna(SCRATCH).astype(str).str.strip()
    df.loc[df["pretrain"].str.lower().isin(["none", "", "scratch", "nan"]), "pretrain"] = SCRATCH

    if "mode" not in df.columns:
        df["mode"] = np.where(df["pretrain"] == SCRATCH, "scratch", "finetune")
    else:
        derived = pd.Series(np.where(df["pretrain"] == SCRATCH, "scratch", "finetune"), index=df.index)
        df["mode"] = df["mode"].fillna(derived).astype(str).str.strip().str.lower()

    aside: list[pd.DataFrame] = []
    if "status" in df.columns:
        status = df["status"].fillna("ok").astype(str).str.strip().str.lower()
        bad = status != "ok"
        if bad.any() and "error" in df.columns:
            reasons = df.loc[bad, "error"].dropna().astype(str).str.slice(0, 80).unique()[:3]
            detail = "; ".join(reasons)
        else:
            detail = ""
        df = _set_aside(df, bad, "status not ok", aside, warnings,
                        "with status != ok" + (f" (e.g. {detail})" if detail else ""))

    pretraining = df[df["mode"] == "pretrain"].reset_index(drop=True)
    df = df[df["mode"] != "pretrain"]
    unknown_mode = ~df["mode"].isin(["scratch", "finetune"])
    df = _set_aside(df, unknown_mode, "unknown mode", aside, warnings,
                    "with a mode other than scratch/finetune/pretrain")
    inconsistent = ((df["mode"] == "scratch") & (df["pretrain"] != SCRATCH)) | \
                   ((df["mode"] == "finetune") & (df["pretrain"] == SCRATCH))
    df = _set_aside(df, inconsistent, "mode contradicts pretrain", aside, warnings,
                    "whose mode contradicts pretrain (scratch must have pretrain 'none')")

    values = df[["loss", "n_params", data_column]].to_numpy(dtype=float)
    unusable = pd.Series(~(np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)), index=df.index)
    df = _set_aside(df, unusable, "non-finite or non-positive loss/N/data", aside, warnings,
                    f"with a missing, non-finite or non-positive loss, n_params or {data_column}")

    exact_duplicates = df.duplicated(keep="first")
    if exact_duplicates.any():
        warnings.append(f"{int(exact_duplicates.sum())} exact duplicate row(s) dropped")
        df = df[~exact_duplicates]

    runs = _average_seeds(df, data_column, warnings)
    set_aside = pd.concat(aside, ignore_index=True) if aside else pd.DataFrame(columns=["reason"])
    if runs.empty:
        warnings.append("no analysable rows left after validation")
    return ResultsTable(runs=runs, set_aside=set_aside, units=units, data_column=data_column, warnings=warnings,
                        n_pretrain_rows=len(pretraining), seed_runs=df.reset_index(drop=True), pretraining=pretraining)


def _average_seeds(df: pd.DataFrame, data_column: str, warnings: list[str]) -> pd.DataFrame:
    """One row per (pretrain, mode, N, data size): mean loss, its spread and the seed count.

    Other numeric columns are averaged, text columns keep their first value. Rows that share the
    key *and* the seed (or have no seed) are suspicious duplicates: averaged too, with a warning.
    """
    key = ["pretrain", "mode", "n_params", data_column]
    if df.empty:
        out = df.copy()
        out["loss_std"] = pd.Series(dtype=float)
        out["n_seeds"] = pd.Series(dtype=int)
        return out.reset_index(drop=True)
    same_seed_key = key + (["seed"] if "seed" in df.columns else [])
    repeated = df.duplicated(subset=same_seed_key, keep=False)
    if repeated.any():
        groups = df[repeated].groupby(same_seed_key, dropna=False).ngroups
        seed_note = "the same seed" if "seed" in df.columns else "no seed column"
        warnings.append(f"{int(repeated.sum())} rows in {groups} group(s) share (pretrain, mode, "
                        f"n_params, {data_column}) with {seed_note} but differ elsewhere: averaged")
    grouped = df.groupby(key, sort=True, dropna=False)
    numeric = [c for c in df.columns if c not in key and pd.api.types.is_numeric_dtype(df[c])]
    other = [c for c in df.columns if c not in key and c not in numeric]
    out = grouped[numeric].mean() if numeric else grouped.size().to_frame("_n").drop(columns="_n")
    if other:
        out = out.join(grouped[other].first())
    out["loss_std"] = grouped["loss"].std(ddof=1).fillna(0.0)
    out["n_seeds"] = grouped.size()
    return out.reset_index()
