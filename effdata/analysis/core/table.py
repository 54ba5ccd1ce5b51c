"""Read and validate a results table (CSV, Parquet or JSONL) for the analysis layer.

The table can come from an effdata study (`<out>/results.csv`) or from any other training setup,
as long as it has the required columns below. This module never imports torch.

What `load_results` does, in order, and why:

* reads the file (or takes a DataFrame), checks the required columns, coerces numbers;
* picks the data-size column: the one asked for, else the other one, else, for tables of published
  points that give only compute, D = C / (6·N) tokens from `flops` (said in the report);
* without a `pretrain` column every row is a from-scratch run (published from-scratch points);
* derives `mode` when it is absent (external tables): `pretrain == "none"` is from scratch,
  anything else is a fine-tuned run;
* sets aside, with a warning each, the rows that cannot be analysed: `status != "ok"`, non-finite
  or non-positive loss, N or data size; drops exact duplicate rows (a warning says how many);
* keeps `mode == "pretrain"` rows apart (`pretraining`): they have no target-data size, so they are
  not in the transfer analysis; the report shows them as its input;
* labels each row's shape (`shape`: `l<layers>d<width>[h<heads>]` from `n_layer`, `d_model`, `n_head`,
  else the `size` name, else empty), so that runs of different shapes at one N stay apart;
* keeps one row per run where a `run_id` repeats (a public table's intermediate checkpoints: the final one, by
  its progress column) and the best learning rate where one point was run at several (both said in the notes);
* averages the seeds that share (pretrain, N, shape, data size) and keeps their spread (`loss_std`,
  `n_seeds`), because the transfer analysis wants one loss per grid point; the seeds themselves are
  kept too (`seed_runs`): the bootstrap re-draws them.
"""
from __future__ import annotations

import dataclasses

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SCRATCH = "none"  # the `pretrain` value of a from-scratch run

REQUIRED_COLUMNS = ("n_params", "loss")
DATA_COLUMNS = {"chars": "data_chars", "tokens": "data_tokens"}  # one of them, or `flops`, is required
FLOPS_NOTE = ("D = C / (6·N) tokens, from the `flops` column (the table has no data_chars or data_tokens): "
              "the tokens trained on, which is the data-set size only for runs of one epoch")
NO_PRETRAIN_NOTE = "No `pretrain` column: every row is a from-scratch run"

# Documented once here, and a row each in docs/analysis.md's *Input columns* (tests/test_docs.py checks it).
COLUMN_DOCS: dict[str, tuple[str, str]] = {
    "pretrain": ("optional", '`none` for a from-scratch run, else the pretraining name (`text`, `text+code`, ...); '
                             "without the column every row is from scratch"),
    "n_params": ("required", "non-embedding parameter count N"),
    "data_chars": ("required*", "target training-set size in characters (*one of data_chars / data_tokens / flops; "
                                "chars is the default unit)"),
    "data_tokens": ("required*", "target training-set size in tokens"),
    "loss": ("required", "best held-out target loss, nats per token, of the early-stopped model"),
    "mode": ("optional", "`scratch`, `finetune` or `pretrain`; pretrain rows are shown as the input, not fitted; if absent, derived from `pretrain`"),
    "status": ("optional", "`ok` or anything else; rows that are not ok are listed, not analysed"),
    "error": ("optional", "why a run failed"),
    "seed": ("optional", "seeds sharing (pretrain, N, shape, data size) are averaged; the bootstrap re-draws them and the report gives their spread"),
    "size": ("optional", "model size name, shown in tables; names the shape when n_layer and d_model are absent"),
    "n_layer": ("optional", "layers; with d_model (and n_head) it names the shape: runs of different shapes are never "
                            "averaged together, and several shapes at one N are a shape study (report section *Shape*)"),
    "d_model": ("optional", "width"),
    "n_head": ("optional", "attention heads (part of the shape when given)"),
    "flops": ("optional*", "training FLOPs of the run (the loss-against-compute plot; without a data column, "
                           "D = flops / (6·n_params) tokens)"),
    "pretrain_flops": ("optional", "FLOPs of the pretraining run a fine-tuned run started from (0 for scratch)"),
    "valid_loss": ("optional", "held-out loss used for early stopping"),
    "tokens_seen": ("optional", "pretraining rows: tokens the pretraining run processed"),
    "tokens_per_param": ("optional", "pretraining rows: tokens_seen / n_params (computed when absent)"),
    "pretrain_valid_loss": ("optional", "pretraining rows: loss on the run's own held-out distribution"),
    "pretrain_tokens_per_param": ("optional", "fine-tuned rows: tokens per parameter of the checkpoint the run "
                                              "started from (a mid-run checkpoint's own, for `text@10tpp`); the "
                                              "budget analysis's P, else the pretraining row's tokens_seen / N"),
    "pretrain_run": ("optional", "fine-tuned rows: the pretraining run it started from (any label; else read off "
                                 "`init_from`). Fine-tunes of one pretraining run share its seed's noise: where a size "
                                 "was pretrained two or more times, the bootstrap re-draws its fine-tunes together"),
    "init_from": ("optional", "fine-tuned rows: the checkpoint it started from; a path `<run>/checkpoint...` names "
                              "the pretraining run `<run>` (so mid-run checkpoints of one run are one run)"),
    "sweep": ("optional", "a [sweep] study's rows: the swept setting, whose value is in its own column; a table "
                          "with it gets the sweep analysis (effdata.analysis.sweep.sweep), not this one"),
    "wall_time": ("optional", "seconds"),
    "stop_reason": ("optional", "why the run ended: `early_stop` (its held-out loss stopped improving: `patience` "
                                "evaluations, or `branch_patience` lengths of a length search), else the limit that "
                                "set its length: `epoch_budget` (max_epochs), `step_floor` (min_steps, more than its "
                                "epochs asked), `step_cap` (max_steps), `token_budget` (pretraining); `forecast` "
                                "(a [sweep] point stopped by `stop_by_forecast`: set aside here, never a sweep's best); "
                                "`diverged` on a failed row. A from-scratch run that did not early-stop may be above "
                                "the best loss its N reaches on its D"),
    "best_is_last": ("optional", "the run's best held-out evaluation is its last one: with a limit as "
                                 "stop_reason, the run was still improving when it stopped"),
    "best_is_first": ("optional", "a length search kept the shortest length it tried (min_steps) or its starting model "
                                  "(step 0): the best run may be shorter, so the loss is an upper bound; empty for a run "
                                  "that did not search"),
    "forecast_loss": ("optional", "`stop_by_forecast`'s last check of the run: its best held-out loss forecast at its "
                                  "planned end from its curve so far (effdata.forecast); empty when never checked"),
    "forecast_margin": ("optional", "the relative margin subtracted from that forecast: its largest error measured on "
                                    "the committed studies at that fraction"),
    "forecast_seen": ("optional", "the fraction of its planned steps the run had seen at that check"),
    "forecast_bar": ("optional", "the best held-out loss among its finished sweep siblings at that check; the run "
                                 "stopped (`stop_reason = forecast`) when forecast_loss·(1 − forecast_margin) was above it"),
    "length_search": ("optional", "`branches`: the run tried lengths min_steps·branch_ratio^k on a wsd trunk and "
                                  "kept the best (docs/METHOD.md §5e); `off`: early stopping within its schedule"),
}

NUMERIC_COLUMNS = ("n_params", "data_chars", "data_tokens", "loss", "valid_loss", "flops",
                   "pretrain_flops", "wall_time", "n_layer", "d_model", "n_head", "seed", "tokens_seen",
                   "tokens_per_param", "pretrain_valid_loss", "pretrain_tokens_per_param")


class TableError(ValueError):
    """The table cannot be analysed at all (unreadable, or a required column is missing)."""


@dataclass
class ResultsTable:
    """Validated runs, one row per (pretrain, mode, N, data size), plus what was set aside."""

    runs: pd.DataFrame                 # ok scratch + finetune rows, seeds averaged per (pretrain, mode, N, shape, D)
    set_aside: pd.DataFrame            # rows not analysed, with a `reason` column
    units: str                         # "chars" or "tokens": the data column the rows were grouped by
    data_column: str
    warnings: list[str] = field(default_factory=list)
    n_pretrain_rows: int = 0           # mode == "pretrain" rows (ok ones: `pretraining`)
    seed_runs: pd.DataFrame = field(default_factory=pd.DataFrame)     # `runs` before seeds are averaged
    pretraining: pd.DataFrame = field(default_factory=pd.DataFrame)   # ok mode == "pretrain" rows
    notes: list[str] = field(default_factory=list)   # how the input was read, when not the usual way

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
                         f"it has {list(df.columns)}. Required: n_params, loss and "
                         "data_chars, data_tokens or flops (see docs/analysis.md, 'Input columns').")
    for column in NUMERIC_COLUMNS:
        if column in df.columns:
            df[column] = pd.to_numeric(df[column], errors="coerce")
    units, data_column, notes = _data_column(df, units, warnings)
    if "pretrain" not in df.columns:
        df["pretrain"] = SCRATCH
        notes.append(NO_PRETRAIN_NOTE)
    df = _pretrain_and_mode(df, warnings)
    df["shape"] = shape_labels(df)
    df, aside, pretraining = _set_aside_unusable(df, data_column, warnings)
    exact_duplicates = df.duplicated(keep="first")
    if exact_duplicates.any():
        warnings.append(f"{int(exact_duplicates.sum())} exact duplicate row(s) dropped")
        df = df[~exact_duplicates]

    df = _final_checkpoints(df, notes)
    df = _best_learning_rate(df, data_column, notes)
    runs = _average_seeds(df, data_column, warnings)
    set_aside = pd.concat(aside, ignore_index=True) if aside else pd.DataFrame(columns=["reason"])
    if runs.empty:
        warnings.append("no analysable rows left after validation")
    return ResultsTable(runs=runs, set_aside=set_aside, units=units, data_column=data_column, warnings=warnings,
                        n_pretrain_rows=len(pretraining), seed_runs=df.reset_index(drop=True),
                        pretraining=pretraining, notes=notes)


def with_scratch_from(rows: pd.DataFrame, others: list[tuple[str, pd.DataFrame]]) -> tuple[pd.DataFrame, list[str]]:
    """`rows` and the from-scratch runs of other tables at the model sizes `rows` has none of (N, and layers and
    width where both tables give them): a fine-tune-only study read on another study's curves. Also one line per
    table naming the sizes it lent. TableError where a table lends nothing, or lacks a column the sizes need."""
    if "pretrain" not in rows.columns:
        raise TableError("--scratch-from: this table has no `pretrain` column")
    own = _pretrain_and_mode(rows.copy(), [])
    keys = [c for c in ("n_params", "n_layer", "d_model") if c in own.columns]
    have = set(own.loc[own["mode"] == "scratch", keys].itertuples(index=False, name=None))
    joined, lent_by = [rows], []
    for name, other in others:
        missing = [c for c in keys + ["pretrain"] if c not in other.columns]
        if missing:
            raise TableError(f"--scratch-from {name}: no {', '.join(missing)} column")
        theirs = _pretrain_and_mode(other.copy(), [])
        theirs = theirs[theirs["mode"] == "scratch"]
        fresh = [key not in have for key in theirs[keys].itertuples(index=False, name=None)]
        lent = theirs[fresh]
        if lent.empty:
            raise TableError(f"--scratch-from {name}: no from-scratch runs at a model size this table has none of")
        have |= set(lent[keys].itertuples(index=False, name=None))
        joined.append(lent if "mode" in rows.columns else lent.drop(columns="mode"))
        sizes = ", ".join(f"{n:.3g}" for n in sorted(lent["n_params"].unique()))
        lent_by.append(f"from-scratch runs at N = {sizes} from {name}")
    return pd.concat(joined, ignore_index=True, sort=False), lent_by


def _pretrain_and_mode(df: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """`pretrain` as clean text ('none' for from scratch), `mode` derived from it where absent."""
    if df["pretrain"].isna().any():
        warnings.append(f"{int(df['pretrain'].isna().sum())} row(s) without `pretrain`: read as "
                        f"'{SCRATCH}' (from scratch)")
    df["pretrain"] = df["pretrain"].fillna(SCRATCH).astype(str).str.strip()
    df.loc[df["pretrain"].str.lower().isin(["none", "", "scratch", "nan"]), "pretrain"] = SCRATCH
    derived = pd.Series(np.where(df["pretrain"] == SCRATCH, "scratch", "finetune"), index=df.index)
    if "mode" not in df.columns:
        df["mode"] = derived
    else:
        df["mode"] = df["mode"].fillna(derived).astype(str).str.strip().str.lower()
    return df


def shape_labels(df: pd.DataFrame) -> pd.Series:
    """Each row's shape: `l<n_layer>d<d_model>[h<n_head>]` where layers and width are known, else the `size`
    name, else "" (one shape per N, as a table without these columns is read)."""
    size = df["size"].fillna("").astype(str) if "size" in df.columns else pd.Series("", index=df.index)
    if "n_layer" not in df.columns or "d_model" not in df.columns:
        return size
    known = np.isfinite(df["n_layer"].to_numpy(float)) & np.isfinite(df["d_model"].to_numpy(float))
    heads = df["n_head"].to_numpy(float) if "n_head" in df.columns else np.full(len(df), np.nan)
    labels = [f"l{layers:.0f}d{width:.0f}" + (f"h{h:.0f}" if np.isfinite(h) else "")
              for layers, width, h in zip(df["n_layer"].to_numpy(float), df["d_model"].to_numpy(float), heads)]
    return pd.Series(np.where(known, labels, size), index=df.index, dtype=object)


def _set_aside_unusable(df: pd.DataFrame, data_column: str,
                        warnings: list[str]) -> tuple[pd.DataFrame, list[pd.DataFrame], pd.DataFrame]:
    """(rows kept, rows set aside with a reason, the ok pretraining rows)."""
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

    df = _set_aside(df, stopped_by_forecast(df), "stopped by forecast", aside, warnings,
                    "stopped by forecast (`stop_reason = forecast`: a losing sweep point, not the best its N reaches)")
    values = df[["loss", "n_params", data_column]].to_numpy(dtype=float)
    unusable = pd.Series(~(np.isfinite(values).all(axis=1) & (values > 0).all(axis=1)), index=df.index)
    df = _set_aside(df, unusable, "non-finite or non-positive loss/N/data", aside, warnings,
                    f"with a missing, non-finite or non-positive loss, n_params or {data_column}")
    return df, aside, pretraining


CHECKPOINT_MARK = "@"     # `text@10tpp`: the `text` pretraining's mid-run checkpoint at 10 tokens per parameter


def root_of(name: str) -> str:
    """The pretraining (or run id) a mid-run checkpoint's name belongs to: `text@10tpp` -> `text`; others unchanged."""
    return name.split(CHECKPOINT_MARK, 1)[0]


def checkpoint_of(name: str) -> str:
    """A name's checkpoint: `text@10tpp` -> `10tpp`; "" for a run's final model (`text`)."""
    return name.split(CHECKPOINT_MARK, 1)[1] if CHECKPOINT_MARK in name else ""


def pretraining_run_of(df: pd.DataFrame) -> pd.Series:
    """Each row's pretraining run: `pretrain_run` where given, else read off `init_from` (the directory above a
    `checkpoint...` folder: effdata's `<run>/checkpoint` and `<run>/checkpoint@10tpp` are one run; any other value
    is its own label), else missing. From-scratch rows are always missing."""
    given = lambda column: df[column].astype(object).where(df[column].astype(str).str.strip().ne(""))  # noqa: E731
    run = given("pretrain_run") if "pretrain_run" in df.columns else pd.Series(np.nan, index=df.index, dtype=object)
    if "init_from" in df.columns:
        run = run.fillna(df["init_from"].map(_checkpoint_run))
    return run.where(df["mode"] == "finetune") if "mode" in df.columns else run


def _checkpoint_run(init_from) -> str | float:
    """The run an `init_from` names: the folder above `.../<run>/checkpoint...`, else the value itself."""
    if not isinstance(init_from, str) or not init_from.strip():
        return np.nan
    parts = init_from.strip().rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1].startswith("checkpoint") and parts[-2] else init_from.strip()


def stopped_by_forecast(df: pd.DataFrame) -> pd.Series:
    """Rows of runs stopped by `stop_by_forecast`: their loss is where they were stopped, an upper bound."""
    if "stop_reason" not in df.columns:
        return pd.Series(False, index=df.index)
    return df["stop_reason"].astype(str) == "forecast"


def _has_values(df: pd.DataFrame, column: str) -> bool:
    return column in df.columns and not df[column].isna().all()


def _data_column(df: pd.DataFrame, units: str, warnings: list[str]) -> tuple[str, str, list[str]]:
    """(units, column, notes): the asked-for data column, else the other one, else D = C/(6N) from flops.

    The flops case adds a `data_tokens` column to `df`.
    """
    if _has_values(df, DATA_COLUMNS[units]):
        return units, DATA_COLUMNS[units], []
    other = "tokens" if units == "chars" else "chars"
    if _has_values(df, DATA_COLUMNS[other]):
        warnings.append(f"no `{DATA_COLUMNS[units]}` column: analysing in {other} instead of {units}")
        return other, DATA_COLUMNS[other], []
    if _has_values(df, "flops"):
        df["data_tokens"] = df["flops"] / (6.0 * df["n_params"])
        return "tokens", "data_tokens", [FLOPS_NOTE]
    raise TableError("results table has no data_chars, data_tokens or flops values: nothing gives the data size D")


# Tables as public scaling studies publish them (issue 25): several rows per run, one per checkpoint, with a
# column saying how far the run had got; several learning rates per (N, D). Our own tables have one row per run
# id and one learning rate per point, so neither step changes them.
PROGRESS_COLUMNS = ("progress", "fraction_trained", "checkpoint_fraction", "step", "tokens_seen")
LR_COLUMNS = ("learning_rate", "lr", "peak_lr", "lr_scale")


def _final_checkpoints(df: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
    """One row per run: where a `run_id` repeats, its last checkpoint (the largest progress value). An
    intermediate checkpoint of a run with a decaying schedule is not the best its N reaches on that data."""
    if "run_id" not in df.columns or not df["run_id"].duplicated().any():
        return df
    progress = next((c for c in PROGRESS_COLUMNS if c in df.columns and df[c].notna().any()), None)
    ordered = df.sort_values(progress, kind="stable") if progress else df
    last = ordered.drop_duplicates("run_id", keep="last").sort_index()
    how = f"the largest `{progress}`" if progress else "its last row (no progress column to order them)"
    notes.append(f"{len(df) - len(last)} intermediate-checkpoint rows dropped: each run's final checkpoint is kept "
                 f"({how}; {df['run_id'].nunique()} runs)")
    return last


def _best_learning_rate(df: pd.DataFrame, data_column: str, notes: list[str]) -> pd.DataFrame:
    """Where runs of one point (pretrain, mode, N, shape, D, seed) differ in learning rate, the best one: the
    laws describe the best a size reaches on the data, and averaging learning rates would not."""
    lr = next((c for c in LR_COLUMNS if c in df.columns and df[c].notna().any()), None)
    if lr is None:
        return df
    key = ["pretrain", "mode", "n_params", "shape", data_column] + (["seed"] if "seed" in df.columns else [])
    varies = df.groupby(key, dropna=False)[lr].transform("nunique") > 1
    if not varies.any():
        return df
    best = df.loc[df[varies].groupby(key, dropna=False)["loss"].idxmin()]
    kept = pd.concat([df[~varies], best]).sort_index()
    notes.append(f"several learning rates (`{lr}`) at {best.shape[0]} point(s): the best (lowest loss) of each is "
                 f"kept, {int(varies.sum()) - len(best)} other row(s) dropped")
    return kept


def with_seed_runs(results: ResultsTable, seed_runs: pd.DataFrame) -> ResultsTable:
    """The same table holding only these of its seed runs (a subset of `results.seed_runs`), their seeds averaged
    again: one pretraining seed's fine-tunes beside every from-scratch run (audit/replicates.py)."""
    runs = _average_seeds(seed_runs, results.data_column, [])
    return dataclasses.replace(results, runs=runs, seed_runs=seed_runs, warnings=[])


def _average_seeds(df: pd.DataFrame, data_column: str, warnings: list[str]) -> pd.DataFrame:
    """One row per (pretrain, mode, N, shape, data size): mean loss, its spread and the seed count.

    Other numeric columns are averaged, text columns keep their first value. Rows that share the
    key *and* the seed (or have no seed) and start from the same pretraining run (or name none) are suspicious
    duplicates: averaged too, with a warning.
    """
    key = ["pretrain", "mode", "n_params", "shape", data_column]
    if df.empty:
        out = df.copy()
        out["loss_std"] = pd.Series(dtype=float)
        out["n_seeds"] = pd.Series(dtype=int)
        return out.reset_index(drop=True)
    # One seed fine-tuned from two pretraining runs is two runs (a study's extra seeds of a shared pretraining beside
    # its runs' own: analysis/cpu-finetune-seeds), not a repeat.
    same_seed_key = key + (["seed"] if "seed" in df.columns else []) + ["_pretraining_run"]
    marked = df.assign(_pretraining_run=pretraining_run_of(df))
    repeated = marked.duplicated(subset=same_seed_key, keep=False)
    if repeated.any():
        groups = marked[repeated].groupby(same_seed_key, dropna=False).ngroups
        seed_note = "the same seed" if "seed" in df.columns else "no seed column"
        warnings.append(f"{int(repeated.sum())} rows in {groups} group(s) share (pretrain, mode, "
                        f"n_params, shape, {data_column}) with {seed_note} but differ elsewhere: averaged")
    grouped = df.groupby(key, sort=True, dropna=False)
    numeric = [c for c in df.columns if c not in key and pd.api.types.is_numeric_dtype(df[c])]
    other = [c for c in df.columns if c not in key and c not in numeric]
    out = grouped[numeric].mean() if numeric else grouped.size().to_frame("_n").drop(columns="_n")
    if other:
        out = out.join(grouped[other].first())
    out["loss"] = _mean_over_pretraining_runs(marked, key, out["loss"])
    out["loss_std"] = grouped["loss"].std(ddof=1).fillna(0.0)
    out["n_seeds"] = grouped.size()
    return out.reset_index()


def _mean_over_pretraining_runs(marked: pd.DataFrame, key: list[str], plain: pd.Series) -> pd.Series:
    """A point's loss as the mean over its pretraining runs of each run's mean, where its seeds come unevenly from
    several runs (five fine-tunes of one run and one of each other: analysis/cpu-finetune-seeds): a run's seed shifts
    all its fine-tunes together (runnoise.py), so each run is one draw of the pretraining, and the bootstrap re-draws
    the point as a mean of its runs. Elsewhere the plain mean, unchanged (`plain`, indexed by `key`)."""
    cell = marked["_pretraining_run"].astype(object).where(marked["_pretraining_run"].notna(),
                                                           pd.Series(marked.index.astype(str), index=marked.index))
    marked = marked.assign(_cell=cell)
    size = marked.groupby(key + ["_cell"], dropna=False)["loss"].transform("size")
    weight = 1.0 / (size * marked.groupby(key, dropna=False)["_cell"].transform("nunique"))
    uneven = marked.assign(_w=weight).groupby(key, dropna=False)["_w"].transform("nunique") > 1
    if not uneven.any():
        return plain
    weighted = marked[uneven].assign(_wl=marked["loss"] * weight).groupby(key, sort=True, dropna=False)["_wl"].sum()
    out = plain.copy()
    out.loc[weighted.index] = weighted.to_numpy()
    return out
