"""The pretraining-LR check's table (issue 23 item 3): v4's w100k text runs beside the same runs pretrained at
0.5× and 2× v4's pretraining LR (jobs/lr-pretrain-half.toml, jobs/lr-pretrain-double.toml), in one results
table that `python -m effdata.analyze` reads like any other.

    python benchmarks/pretrain_lr_table.py analysis/cpu/results.csv runs/lr-pretrain-quarter/results.csv=-lr0.25 \
        runs/lr-pretrain-half/results.csv=-lr0.5 runs/lr-pretrain-double/results.csv=-lr2 \
        --out analysis/lr/pretrain/results.csv

The three studies share their from-scratch runs (same ids: kept once) and differ in the pretraining LR alone,
so each pretraining name gets the suffix given after its table (`TABLE=SUFFIX`): `text` (v4's, ×1), `text-lr0.5`,
... (and their mid-run checkpoints, `text-lr0.5@3tpp`, ...). Only w100k, the size the checks pretrain.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

SIZE = "w100k"


def renamed(name: str, suffix: str) -> str:
    """'text' -> 'text-lr0.5', 'text@3tpp' -> 'text-lr0.5@3tpp'; 'none' (from scratch) unchanged."""
    return name if name == "none" else re.sub(r"^text(?=@|$)", f"text{suffix}", name)


def one_table(path: Path, suffix: str) -> pd.DataFrame:
    rows = pd.read_csv(path)
    text_or_scratch = rows["pretrain"].map(lambda p: p == "none" or re.match(r"text(@|$)", p) is not None)
    rows = rows[(rows["size"] == SIZE) & text_or_scratch]
    if rows.empty:
        raise SystemExit(f"{path}: no {SIZE} text or from-scratch rows")
    return rows.assign(pretrain=rows["pretrain"].map(lambda p: renamed(p, suffix)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", help="TABLE[=SUFFIX]: v4's table (no suffix), then each check's")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    pairs = [(Path(t.partition("=")[0]), t.partition("=")[2]) for t in args.tables]
    merged = pd.concat([one_table(path, suffix) for path, suffix in pairs], ignore_index=True)
    scratch = merged["mode"] == "scratch"
    merged = pd.concat([merged[scratch].drop_duplicates("run_id"), merged[~scratch]], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    print(f"{args.out}: {len(merged)} rows ({int(scratch.sum())} from-scratch rows read, "
          f"{int((merged['mode'] == 'scratch').sum())} kept)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
