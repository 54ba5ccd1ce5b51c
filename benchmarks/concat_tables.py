"""Several studies' results tables as one (one row per run id, the first table's where they share a run), for
an analysis that spans them: e.g. a sweep and its extension (jobs/lr-search.toml and jobs/lr-search-low.toml
share v4's pretraining and add sweep points to the same groups).

    python benchmarks/concat_tables.py runs/lr-search/results.csv runs/lr-search-low/results.csv \
        --out analysis/lr/search/results.csv

With --best-by valid_loss, runs that differ in a setting alone (the same mode, pretraining, size, seed and data
size: v4's fine-tunes at three learning rates, jobs/cpu-ft-lr-*.toml) keep the one with the lowest validation
loss, so that the choice is made on the validation split and the analysis reads the test loss of the chosen run:

    python benchmarks/concat_tables.py analysis/cpu/results.csv analysis/cpu-ft-lr/quarter/results.csv \
        analysis/cpu-ft-lr/eighth/results.csv --best-by valid_loss --out best/results.csv
    (analysis/cpu-ft-lr/best/NOTES.md has the committed table's command: five tables, with --curves)

With --first-per-point, a grid point run in several tables keeps the first table's finished run: an extension
that re-runs some points under another compute limit listed first (jobs/cpu-large-d.toml re-runs v4's
from-scratch runs on 3e5 characters under a higher step cap; analysis/cpu-large-d/NOTES.md has the command).

`--points-of-first`: only the grid points the first table has; the other tables offer other runs of those points
(another setting of them) and no new points: v4 with its from-scratch runs at their best LR, where the LR
checks on 3e5 characters come from tables that also hold 1e6 (analysis/cpu-scratch-lr/best/NOTES.md).

`--sweep KEY`: the rows of every grid point that was run at several values of KEY are marked as a sweep over it
(the `sweep` column a [sweep] study writes), so that `python -m effdata.analyze` gives the sweep analysis: the
loss at each value, the best per size and data size, and the rule fitted to it (analysis/cpu-ft-lr/sweep):

    python benchmarks/concat_tables.py analysis/cpu/results.csv analysis/cpu-ft-lr/quarter/results.csv \
        analysis/cpu-ft-lr/eighth/results.csv --sweep lr_scale --out sweep/results.csv
    (analysis/cpu-ft-lr/sweep/NOTES.md has the committed table's command)

`--pretraining-best-by COLUMN`: where the tables hold several pretrainings of one (pretraining name, size, seed)
(another pretraining setting: jobs/cpu-pretrain-lr-half.toml), keep the one with the lowest COLUMN of its final
model (`pretrain_valid_loss`: its own held-out loss, not the target's), with its mid-run checkpoints and the
fine-tunes that start from any of them, and drop the others with theirs (analysis/cpu-pretrain-lr/best/NOTES.md).

`--scratch-from TABLE ...`: also the from-scratch runs of these tables, none of their pretrainings or fine-tunes: one
pretraining seed's fine-tunes read off the from-scratch curves of a study with more seeds (analysis/cpu-pretrain-seeds/
seed1/NOTES.md: seed 1's pretrainings against cpu-seeds' from-scratch runs, as analysis/cpu-seeds reads seed 0's).

`--curves`: also the learning curves (each table's `curves.csv` beside it) of the runs kept, as `curves.csv`
beside `--out`, where the analysis looks for them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from effdata.analysis.core.table import pretraining_run_of  # noqa: E402

# What makes two rows the same point of a study's grid, whatever setting they differ in.
POINT = ["mode", "pretrain", "size", "seed", "data_chars", "data_tokens"]


def best_by(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """One row per grid point: the lowest `column` among the finished runs of that point (ties: the first)."""
    if column not in table.columns:
        raise SystemExit(f"concat_tables.py: --best-by {column}: no such column")
    keys = [key for key in POINT if key in table.columns]
    ok = table[table["status"].eq("ok") & table[column].notna()] if "status" in table.columns else table
    rest = table.drop(ok.index)
    chosen = ok.loc[ok.groupby(keys, dropna=False, sort=False)[column].idxmin()]
    return pd.concat([chosen, rest[~rest.set_index(keys).index.isin(chosen.set_index(keys).index)]],
                     ignore_index=True)


def first_per_point(table: pd.DataFrame) -> pd.DataFrame:
    """One row per grid point: the first finished run of that point in table order (else its first row)."""
    keys = [key for key in POINT if key in table.columns]
    finished = table["status"].eq("ok") if "status" in table.columns else pd.Series(True, index=table.index)
    order = table.assign(_unfinished=~finished).sort_values("_unfinished", kind="stable")
    return order.drop_duplicates(keys, keep="first").drop(columns="_unfinished").sort_index()


def points_of_first(merged: pd.DataFrame, first: pd.DataFrame) -> pd.DataFrame:
    """The rows of `merged` at the grid points `first` has."""
    keys = [key for key in POINT if key in first.columns and key in merged.columns]
    return merged[merged.set_index(keys).index.isin(first.set_index(keys).index)]


def _pretraining_of(table: pd.DataFrame) -> pd.Series:
    """The base pretraining run id behind each pretraining row (its own id before '@') and fine-tune (the run
    folder of the checkpoint it started from: `…/runs/<id>/checkpoint[@3tpp]`, as the analysis reads it); None for
    the other rows."""
    own = table["run_id"].str.split("@").str[0].where(table["mode"].eq("pretrain"))
    return own.fillna(pretraining_run_of(table))


def pretraining_best_by(table: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per (pretraining name, size, seed) the pretraining with the lowest `column` of its final model, with its
    checkpoints and fine-tunes; the other pretrainings and everything started from them dropped."""
    if column not in table.columns:
        raise SystemExit(f"concat_tables.py: --pretraining-best-by {column}: no such column")
    behind = _pretraining_of(table)
    final = table[table["mode"].eq("pretrain") & ~table["run_id"].str.contains("@") & table[column].notna()]
    chosen = set(final.loc[final.groupby(["pretrain", "size", "seed"], sort=False)[column].idxmin(), "run_id"])
    return table[behind.isna() | behind.isin(chosen)]


def as_sweep(table: pd.DataFrame, key: str) -> pd.DataFrame:
    """`table` with sweep = key on the rows of the grid points run at more than one value of `key`."""
    if key not in table.columns:
        raise SystemExit(f"concat_tables.py: --sweep {key}: no such column")
    keys = [column for column in POINT if column in table.columns]
    swept = table.groupby(keys, dropna=False, sort=False)[key].transform("nunique") > 1
    return table.assign(sweep=swept.map({True: key, False: None}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    choose = parser.add_mutually_exclusive_group()
    choose.add_argument("--best-by", metavar="COLUMN", help="keep the run with the lowest COLUMN per grid point")
    choose.add_argument("--first-per-point", action="store_true",
                        help="keep the first table's finished run of a grid point run in several tables")
    parser.add_argument("--points-of-first", action="store_true",
                        help="only the grid points of the first table (the others offer other runs of them)")
    parser.add_argument("--pretraining-best-by", metavar="COLUMN",
                        help="keep, per pretraining name and size, the pretraining with the lowest COLUMN and its fine-tunes")
    parser.add_argument("--sweep", metavar="KEY", help="mark the grid points run at several values of KEY as its sweep")
    parser.add_argument("--scratch-from", type=Path, nargs="+", default=[], metavar="TABLE",
                        help="also the from-scratch runs of these tables (none of their pretrainings or fine-tunes)")
    parser.add_argument("--curves", action="store_true", help="also curves.csv (each table's, beside it) of the runs kept")
    args = parser.parse_args(argv)
    tables = [pd.read_csv(path) for path in args.tables]
    scratch = [table[table["mode"].eq("scratch")] for table in map(pd.read_csv, args.scratch_from)]
    merged = pd.concat(tables + scratch, ignore_index=True).drop_duplicates("run_id", keep="first")
    if args.points_of_first:
        merged = points_of_first(merged, tables[0])
    if args.pretraining_best_by:
        merged = pretraining_best_by(merged, args.pretraining_best_by)
    if args.best_by:
        merged = best_by(merged, args.best_by)
    if args.first_per_point:
        merged = first_per_point(merged)
    if args.sweep:
        merged = as_sweep(merged, args.sweep)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    if args.curves:
        curves = pd.concat([pd.read_csv(path.parent / "curves.csv") for path in [*args.tables, *args.scratch_from]],
                           ignore_index=True)
        kept = curves[curves["run_id"].isin(merged["run_id"])].drop_duplicates()  # a run read from two tables
        kept.to_csv(args.out.parent / "curves.csv", index=False)
    print(f"{args.out}: {len(merged)} rows from {sum(map(len, tables + scratch))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
