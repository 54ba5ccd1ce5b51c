"""One figure from several studies' probe tables, a line per size, corpus and seed, and where each formed its
induction heads (not a test).

    .venv/bin/python benchmarks/probe_figure.py analysis/cpu-fixed-tokens/four-layer/probe.csv \
        analysis/cpu-fixed-tokens/series/probe.csv analysis/cpu-fixed-tokens/series/seed1/probe.csv \
        --sizes l4d96h6 w200k w500k --figure analysis/cpu-fixed-tokens/four-layer/compare.png

`python -m effdata.probe RUNS --figure F` draws one study's checkpoints; a comparison across studies (a four-layer
model beside the two-layer sizes of its width and its N) needs their tables together. The figure is
`effdata.probe.draw`'s. `--formed 0.3` prints, per table, size, corpus and seed, the order part of the induction score
(shuffled copy's loss minus exact copy's) and the zero-shot loss at each checkpoint, and the first checkpoint whose
order part passes 0.3: the count at which the heads formed, as the notes of analysis/cpu-fixed-tokens read it.
Refused, one line and exit 2, for a size none of the tables holds, or for neither --figure nor --formed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.probe import draw  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", type=Path, nargs="+", help="probe.csv files (python -m effdata.probe --out)")
    p.add_argument("--sizes", nargs="+", help="only these sizes (default: all)")
    p.add_argument("--figure", type=Path, help="draw the tables here (PNG)")
    p.add_argument("--formed", type=float, metavar="ORDER",
                   help="print where each size's order part first passes ORDER (0.3 in the notes)")
    a = p.parse_args(argv)
    if a.figure is None and a.formed is None:
        print("probe_figure: error: nothing to do: give --figure, --formed or both", file=sys.stderr)
        return 2
    try:
        table = pd.concat([pd.read_csv(path).assign(table=str(path)) for path in a.tables], ignore_index=True)
    except OSError as exc:
        print(f"probe_figure: error: {exc}", file=sys.stderr)
        return 2
    missing = sorted(set(a.sizes or ()) - set(table["size"]))
    if missing:
        print(f"probe_figure: error: no size {', '.join(missing)} in {', '.join(map(str, a.tables))}", file=sys.stderr)
        return 2
    if a.sizes:
        table = table[table["size"].isin(a.sizes)]
    if a.formed is not None:
        print(formed_table(table, a.formed))
    if a.figure is not None:
        draw(_told_apart(table), a.figure)
        print(f"{len(table)} checkpoints, {table['size'].nunique()} sizes: {a.figure}")
    return 0


def _told_apart(table: pd.DataFrame) -> pd.DataFrame:
    """Where two tables hold one size, corpus and seed (one size at two LRs), each line is named by its table's
    folder too (the fewest trailing folders that tell the tables apart, so that two folders of one name stay two
    lines): the figure draws a line per corpus and size, and would average the two."""
    keys = ["size", "corpus", "seed"]
    if not (table.groupby(keys)["table"].nunique() > 1).any():
        return table
    folders = {t: Path(t).resolve().parent.parts for t in table["table"].unique()}
    for k in range(1, max(map(len, folders.values())) + 1):
        names = {t: "/".join(parts[-k:]) for t, parts in folders.items()}
        if len(set(names.values())) == len(names):
            break
    else:   # two tables in one folder: their paths as given
        names = {t: str(Path(t).with_suffix("")) for t in folders}
    return table.assign(corpus=table["table"].map(names) + " " + table["corpus"])


def formed_table(table: pd.DataFrame, order: float) -> str:
    """Markdown: a row per table, size, corpus and seed (two studies of one size, at two LRs say, are two rows); its
    checkpoints as `tokens: order part / zero-shot loss`, and the first whose order part passes `order` ("not by" the
    last checkpoint where none does)."""
    rows = [f"| table | size | corpus | seed | order part / zero-shot loss at each checkpoint | first past {order:g} |",
            "|---|---|---|---|---|---|"]
    for (path, size, corpus, seed), one in table.groupby(["table", "size", "corpus", "seed"], sort=False):
        one = one.sort_values("tokens")
        cells = "; ".join(f"{t / 1e6:.2f} M: {g:.2f} / {v:.3f}"
                          for t, g, v in zip(one["tokens"], one["order_gain"], one["valid_loss"]))
        past = one[one["order_gain"] > order]
        first = f"{past['tokens'].iloc[0] / 1e6:.2f} M" if len(past) else f"not by {one['tokens'].iloc[-1] / 1e6:.2f} M"
        rows.append(f"| {path} | {size} | {corpus} | {seed} | {cells} | {first} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
