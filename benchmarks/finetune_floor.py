"""Measurement (not a test): the same fine-tunes searched from two shortest lengths, point by point.

    .venv/bin/python benchmarks/finetune_floor.py \
        analysis/cpu-fixed-tokens/10m/results.csv analysis/cpu-fixed-tokens/min-steps/10m/results.csv [OLD NEW ...] \
        [--pretrain text+code]

Each pair of tables holds the fine-tunes of the same pretrained models, searched for their best length
(`length_search = "branches"`) from one shortest length in OLD (`min_steps`, 8 in v4's studies) and another in NEW
(`[finetune] min_steps`). Per fine-tune (pretraining name, size, seed, D_F): the best step in each, whether OLD's was
its shortest length (`best_is_first`: its loss an upper bound), and the change in test loss, NEW over OLD. Then,
over every pair: how many OLD held at their floor still sit at NEW's, and the median change in loss of those held
and of those not held (where the floor did not bind, the change is what the other lengths and warm-up alone do).
Why: half the fixed-token studies' fine-tunes on 1e4 characters kept their 8-step floor
(analysis/cpu-fixed-tokens/min-steps/NOTES.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEY = ["pretrain", "size", "seed", "data_chars"]


def paired(old: Path, new: Path, pretrain: str) -> pd.DataFrame:
    """The final-model fine-tunes of `pretrain` in both tables, one row per point."""
    def fine_tunes(path: Path) -> pd.DataFrame:
        table = pd.read_csv(path)
        return table[(table["mode"] == "finetune") & (table["pretrain"] == pretrain)][
            KEY + ["best_step", "best_is_first", "loss"]]
    both = fine_tunes(old).merge(fine_tunes(new), on=KEY, suffixes=("_old", "_new"))
    if both.empty:
        raise SystemExit(f"finetune_floor: no {pretrain} fine-tune in both {old} and {new}")
    both["change"] = both["loss_new"] / both["loss_old"] - 1
    both["table"] = str(new.parent)
    return both


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", type=Path, nargs="+", help="OLD NEW pairs")
    parser.add_argument("--pretrain", default="text+code")
    args = parser.parse_args(argv)
    if len(args.tables) % 2:
        print("finetune_floor: give the tables in pairs, OLD NEW", file=sys.stderr)
        return 2
    rows = pd.concat([paired(old, new, args.pretrain) for old, new in zip(args.tables[::2], args.tables[1::2])])
    shown = rows[["table", "size", "data_chars", "best_step_old", "best_is_first_old", "best_step_new",
                  "best_is_first_new"]].astype({"best_step_old": int, "best_step_new": int})
    shown = shown.assign(change=[f"{100 * v:+.2f} %" for v in rows["change"]])
    print(shown.to_string(index=False))
    held = rows[rows["best_is_first_old"].astype(bool)]
    free = rows[~rows["best_is_first_old"].astype(bool)]
    still = int(held["best_is_first_new"].astype(bool).sum())
    print(f"\n{len(held)} of {len(rows)} held at the old floor; {still} of them at the new one")
    parts = [("held at the old floor", held), ("not held", free)]
    parts += [(f"not held, D_F = {d:g}", free[free["data_chars"] == d]) for d in sorted(free["data_chars"].unique())]
    for name, part in parts:
        if len(part):
            print(f"{name}: median change in loss {100 * part['change'].median():+.2f} %, "
                  f"median |change| {100 * part['change'].abs().median():.2f} % ({len(part)} fine-tunes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
