"""One figure from several studies' probe tables, a line per size, corpus and seed (not a test).

    .venv/bin/python benchmarks/probe_figure.py analysis/cpu-fixed-tokens/four-layer/probe.csv \
        analysis/cpu-fixed-tokens/series/probe.csv analysis/cpu-fixed-tokens/series/seed1/probe.csv \
        --sizes l4d96h6 w200k w500k --figure analysis/cpu-fixed-tokens/four-layer/compare.png

`python -m effdata.probe RUNS --figure F` draws one study's checkpoints; a comparison across studies (a four-layer
model beside the two-layer sizes of its width and its N) needs their tables together. The figure is
`effdata.probe.draw`'s. Refused, one line and exit 2, for a size none of the tables holds.
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
    p.add_argument("--figure", type=Path, required=True)
    a = p.parse_args(argv)
    try:
        table = pd.concat([pd.read_csv(path) for path in a.tables], ignore_index=True)
    except OSError as exc:
        print(f"probe_figure: error: {exc}", file=sys.stderr)
        return 2
    missing = sorted(set(a.sizes or ()) - set(table["size"]))
    if missing:
        print(f"probe_figure: error: no size {', '.join(missing)} in {', '.join(map(str, a.tables))}", file=sys.stderr)
        return 2
    if a.sizes:
        table = table[table["size"].isin(a.sizes)]
    draw(table, a.figure)
    print(f"{len(table)} checkpoints, {table['size'].nunique()} sizes: {a.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
