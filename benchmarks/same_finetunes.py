"""Measurement (not a test): are two tables' fine-tunes of one pretraining the same runs, to the last digit?

    .venv/bin/python benchmarks/same_finetunes.py \
        analysis/cpu-fixed-tokens/series/study/by-tokens.csv:text+code@5.02M \
        analysis/cpu-fixed-tokens/5m/results.csv:text+code [more pairs ...] [--seed 0]

Each pair is `TABLE:PRETRAINING TABLE:PRETRAINING`. For the fine-tunes both tables hold at one size and data size
(of `--seed`), prints how many give the same fine-tuned loss and zero-shot loss (`loss`, `init_loss`) exactly, the
largest differences, and the rows that differ. Why: a mid-run checkpoint is by construction the final model of a
shorter run (docs/METHOD.md §5b), so its fine-tunes must equal that run's study's; equal to the last digit says the
two models are one (tests/test_checkpoints.py shows it bit for bit on a tiny model; this says it of the studies).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEYS, VALUES = ["size", "data_chars"], ["loss", "init_loss"]


def finetunes(source: str, seed: int) -> pd.DataFrame:
    path, _, name = source.rpartition(":")
    t = pd.read_csv(Path(path))
    t = t[(t["mode"] == "finetune") & (t["pretrain"] == name) & (t["seed"] == seed)]
    return t.set_index(KEYS)[VALUES]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The fine-tunes both hold, side by side, with `same` where every value is equal."""
    both = a.join(b.add_suffix("_other"), how="inner")
    both["same"] = (both[VALUES].to_numpy() == both[[f"{v}_other" for v in VALUES]].to_numpy()).all(axis=1)
    return both


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sources", nargs="+", help="TABLE:PRETRAINING, in pairs")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if len(a.sources) % 2:
        print("same_finetunes: error: the sources come in pairs", file=sys.stderr)
        return 2
    total = same = 0
    for left, right in zip(a.sources[::2], a.sources[1::2]):
        both = compare(finetunes(left, a.seed), finetunes(right, a.seed))
        worst = {v: (both[v] - both[f"{v}_other"]).abs().max() for v in VALUES}
        print(f"{left} vs {right}: {int(both['same'].sum())} of {len(both)} the same; largest difference "
              + ", ".join(f"{v} {worst[v]:.2g}" for v in VALUES))
        if not both["same"].all():
            print(both[~both["same"]].to_string())
        total, same = total + len(both), same + int(both["same"].sum())
    print(f"all: {same} of {total} the same")
    return 0


if __name__ == "__main__":
    sys.exit(main())
