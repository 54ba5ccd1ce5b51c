"""Several studies' results tables as one (one row per run id, the first table's where they share a run), for
an analysis that spans them: e.g. a sweep and its extension (jobs/lr-search.toml and jobs/lr-search-low.toml
share v4's pretraining and add sweep points to the same groups).

    python benchmarks/concat_tables.py runs/lr-search/results.csv runs/lr-search-low/results.csv \
        --out analysis/lr/search/results.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    tables = [pd.read_csv(path) for path in args.tables]
    merged = pd.concat(tables, ignore_index=True).drop_duplicates("run_id", keep="first")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    print(f"{args.out}: {len(merged)} rows from {sum(map(len, tables))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
