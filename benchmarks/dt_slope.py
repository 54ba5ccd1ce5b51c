"""Measurement (not a test): how D_T rises with N where too few points for the law: per pretraining name and D_F of an
analysis's `effective.csv`, D_T at each size and the least-squares slope of ln D_T on ln N, with each size left out.

    .venv/bin/python benchmarks/dt_slope.py analysis/cpu-fixed-tokens/four-layer/lr/dt/effective.csv

Why: the 15 M-token LR cells (three sizes, one D_F) are too few for `effdata.analyze`'s fit (five points with
D_T > 0), yet whether a pretraining LR tilts D_T across N is a slope over them. A slope over three sizes is not the
law's β (no α, no interval); the left-out slopes say how much one size decides it, the scatter (the RMS of ln D_T
about the line) how straight the sizes lie. `--pick SIZE=NAME ...` adds a row made of one pretraining name per size
(each size at its best pretraining LR, say), named `picked`. A point with D_T ≤ 0 is left
out, and named. Refused, one line and exit 2, for a file that is not an effective table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

NEEDED = {"pretrain", "size", "n_params", "d_f", "d_t"}


def slope(points: pd.DataFrame) -> float:
    """Least-squares slope of ln D_T on ln N (NaN under two sizes)."""
    if len(points) < 2:
        return float("nan")
    return float(np.polyfit(np.log(points["n_params"]), np.log(points["d_t"]), 1)[0])


def scatter(points: pd.DataFrame) -> float:
    """RMS of ln D_T about its least-squares line in ln N (NaN under two sizes)."""
    if len(points) < 2:
        return float("nan")
    x, y = np.log(points["n_params"]), np.log(points["d_t"])
    return float(np.sqrt(np.mean((y - np.polyval(np.polyfit(x, y, 1), x)) ** 2)))


def rows(table: pd.DataFrame) -> list[str]:
    out = ["| pretraining | D_F | D_T at each size | slope | each size left out | scatter (ln) |",
           "|---|---|---|---|---|---|"]
    for (name, d_f), one in table.groupby(["pretrain", "d_f"], sort=False):
        one = one.sort_values("n_params")
        kept = one[one["d_t"] > 0]
        cells = "; ".join(f"{r.size} {r.d_t:.3g}" for r in one.itertuples())
        left = "; ".join(f"no {r.size}: {slope(kept.drop(index=i)):.2f}" for i, r in zip(kept.index, kept.itertuples()))
        dropped = sorted(set(one["size"]) - set(kept["size"]))
        note = f" (D_T ≤ 0 left out: {', '.join(dropped)})" if dropped else ""
        out.append(f"| {name} | {d_f:g} | {cells} | {slope(kept):.2f}{note} | {left} | {scatter(kept):.2f} |")
    return out


def picked(table: pd.DataFrame, picks: list[str]) -> pd.DataFrame:
    """The rows of `table` that `picks` (SIZE=NAME) name, one name per size, renamed `picked`; ValueError for a
    pick that is not SIZE=NAME or names no row."""
    chosen = []
    for pick in picks:
        size, _, name = pick.partition("=")
        rows = table[(table["size"] == size) & (table["pretrain"] == name)]
        if not name or rows.empty:
            raise ValueError(f"--pick {pick}: no rows of pretraining {name or '?'} at size {size}")
        chosen.append(rows)
    return pd.concat(chosen).assign(pretrain="picked")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("effective", type=Path, help="an analysis's effective.csv")
    p.add_argument("--pick", nargs="+", default=[], metavar="SIZE=NAME",
                   help="one pretraining name per size, read as one more line (`picked`)")
    a = p.parse_args(argv)
    try:
        table = pd.read_csv(a.effective)
    except (OSError, pd.errors.ParserError) as exc:
        print(f"dt_slope: error: {exc}", file=sys.stderr)
        return 2
    missing = sorted(NEEDED - set(table.columns))
    if missing:
        print(f"dt_slope: error: {a.effective} is not an effective table (no {', '.join(missing)})", file=sys.stderr)
        return 2
    try:
        extra = picked(table, a.pick) if a.pick else table.iloc[:0]
    except ValueError as exc:
        print(f"dt_slope: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(rows(pd.concat([table, extra], ignore_index=True))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
