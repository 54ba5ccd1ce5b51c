"""A results table whose mid-run checkpoints at token counts are named by the count, so that the analysis reads
each count as one pretraining across sizes (not a test).

    .venv/bin/python benchmarks/checkpoints_by_tokens.py analysis/cpu-fixed-tokens/series/study/results.csv \
        --tokens 1600000 3010176 5016960 7525440 10033920 12542400 --out T.csv

The renaming is `effdata.analysis.core.checkpoints.by_tokens` (its docstring), which
`python -m effdata.analyze T --checkpoints-by-tokens COUNT ...` also applies; this writes the renamed table, for
joining with others (`benchmarks/concat_tables.py`) before the analysis. Refused, one line and exit 2, for a count
no checkpoint was trained on at some size, and for a table without the columns the renaming reads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.checkpoints import by_tokens  # noqa: E402
from effdata.analysis.core.table import TableError  # noqa: E402
from effdata.paths import atomic_write_text  # noqa: E402

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("--tokens", type=float, nargs="+", required=True, help="the token counts of the checkpoints")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    try:
        out = by_tokens(pd.read_csv(a.results), [int(t) for t in a.tokens])
    except (TableError, OSError) as exc:
        print(f"checkpoints_by_tokens: error: {exc}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(a.out, out.to_csv(index=False))
    print(f"{len(out)} rows ({sum(out['pretrain'].str.contains('@') & ~out['pretrain'].str.endswith('tpp'))} named "
          f"by token count): {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
