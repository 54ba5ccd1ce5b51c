"""The pretraining-LR check's table (issue 23 item 3): v4's w100k text runs beside the same runs pretrained at
0.5× and 2× v4's pretraining LR (jobs/lr-pretrain-half.toml, jobs/lr-pretrain-double.toml), in one results
table that `python -m effdata.analyze` reads like any other.

    python benchmarks/pretrain_lr_table.py analysis/cpu/results.csv runs/lr-pretrain-quarter/results.csv=-lr0.25 \
        runs/lr-pretrain-half/results.csv=-lr0.5 runs/lr-pretrain-double/results.csv=-lr2 \
        --out analysis/lr/pretrain/results.csv

The three studies share their from-scratch runs (same ids: kept once) and differ in the pretraining LR alone,
so each pretraining name gets the suffix given after its table (`TABLE=SUFFIX`): `text` (v4's, ×1), `text-lr0.5`,
... (and their mid-run checkpoints, `text-lr0.5@3tpp`, ...). Only w100k, the size the checks pretrain, unless
`--sizes` says otherwise; `--corpus text+code` renames text+code's pretrainings instead (the 15 M-token LR cells:
analysis/cpu-fixed-tokens/four-layer/lr/dt/NOTES.md). Refused, one line and exit 2 with nothing written, for a
table that cannot be read or holds none of the sizes.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd


def renamed(name: str, suffix: str, corpus: str = "text") -> str:
    """'text' -> 'text-lr0.5', 'text@3tpp' -> 'text-lr0.5@3tpp'; 'none' (from scratch) unchanged."""
    return name if name == "none" else re.sub(rf"^{re.escape(corpus)}(?=@|$)", f"{corpus}{suffix}", name)


def one_table(path: Path, suffix: str, sizes: list[str], corpus: str) -> pd.DataFrame:
    rows = pd.read_csv(path)
    ours = rows["pretrain"].map(lambda p: p == "none" or re.match(rf"{re.escape(corpus)}(@|$)", p) is not None)
    rows = rows[rows["size"].isin(sizes) & ours]
    if rows.empty:
        raise ValueError(f"{path}: no {', '.join(sizes)} {corpus} or from-scratch rows")
    return rows.assign(pretrain=rows["pretrain"].map(lambda p: renamed(p, suffix, corpus)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="+", help="TABLE[=SUFFIX]: v4's table (no suffix), then each check's")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sizes", nargs="+", default=["w100k"], help="the sizes kept (default w100k, the size the "
                                                                        "issue-23 checks pretrain)")
    parser.add_argument("--corpus", default="text", help="the pretraining renamed (default text)")
    parser.add_argument("--final-only", action="store_true",
                        help="leave out the mid-run checkpoints (`@` names) and their fine-tunes")
    parser.add_argument("--finetune-chars", type=float, nargs="+",
                        help="keep only the fine-tunes on these data sizes (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+",
                        help="keep only the pretrainings and fine-tunes of these seeds (default: all); the "
                             "from-scratch runs stay, whatever their seed: each seed's D_T reads on the same curves")
    args = parser.parse_args(argv)
    pairs = [(Path(t.partition("=")[0]), t.partition("=")[2]) for t in args.tables]
    try:
        merged = pd.concat([one_table(path, suffix, args.sizes, args.corpus) for path, suffix in pairs],
                           ignore_index=True)
    except (OSError, ValueError) as exc:   # a missing or unreadable table (pandas' ParserError is a ValueError)
        print(f"pretrain_lr_table: error: {exc}", file=sys.stderr)
        return 2
    if args.final_only:
        merged = merged[~merged["pretrain"].str.contains("@")]
    if args.finetune_chars:
        merged = merged[(merged["mode"] != "finetune") | merged["data_chars"].isin(args.finetune_chars)]
    if args.seeds is not None:
        merged = merged[(merged["mode"] == "scratch") | merged["seed"].isin(args.seeds)]
    scratch = merged["mode"] == "scratch"
    merged = pd.concat([merged[scratch].drop_duplicates("run_id"), merged[~scratch]], ignore_index=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    merged.to_csv(args.out, index=False)
    print(f"{args.out}: {len(merged)} rows ({int(scratch.sum())} from-scratch rows read, "
          f"{int((merged['mode'] == 'scratch').sum())} kept)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
