"""How optimistic is a from-scratch point chosen as the best of several one-seed learning rates?

    python benchmarks/selection_optimism.py analysis/cpu-seeds/results.csv analysis/cpu-scratch-lr/best/results.csv

`analysis/cpu-scratch-lr/best` keeps, per (size, D), the from-scratch run with the lowest *validation* loss among
the LR factors tried, one seed each, and the analysis reads its *test* loss. Choosing the best of k noisy runs
picks a lucky one: the chosen loss is too low by up to about one σ of the run-to-run noise. `analysis/cpu-seeds`
re-ran v4's from-scratch points (factor ×1) at seeds 1 and 2, so at each point seed 0's ×1 run can be set
against its own re-seeds. Where ×1 was the chosen factor, seed 0 won a contest and should sit below its
re-seeds; where another factor was chosen, seed 0 at ×1 lost one and should sit above. The gap between the
two groups, in σ of the point's size (pooled over the size's points, from the three seeds), measures the
selection, on validation loss (what chose) and on test loss (what the analysis reads). A check that can fail:
the groups could come out the same.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

KEY = ["size", "data_chars"]


def seed_gaps(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per (size, D) with seeds 0, 1, 2: seed 0's relative distance from its re-seeds' mean, and σ."""
    scratch = seeds[(seeds["mode"] == "scratch") & (seeds["lr_scale"].fillna(1.0) == 1.0)]
    rows = []
    for (size, d), g in scratch.groupby(KEY):
        g = g.set_index("seed")
        if not {0, 1, 2} <= set(g.index):
            continue
        row = {"size": size, "data_chars": d, "n_params": float(g["n_params"].iloc[0])}
        for column, name in (("valid_loss", "valid"), ("loss", "test")):
            others = g.loc[[1, 2], column].mean()
            row[name] = (g.loc[0, column] - others) / others
            row[f"sd_{name}"] = g.loc[[0, 1, 2], column].std() / g.loc[[0, 1, 2], column].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def selection_gaps(seeds: pd.DataFrame, best: pd.DataFrame) -> pd.DataFrame:
    """seed_gaps with, per point, the factor `best` chose and the gaps in σ of the point's size."""
    gaps = seed_gaps(seeds)
    chosen = best[best["mode"] == "scratch"].assign(chosen=lambda t: t["lr_scale"].fillna(1.0))[KEY + ["chosen"]]
    gaps = gaps.merge(chosen, on=KEY)
    for name in ("valid", "test"):
        sigma = gaps.groupby("size")[f"sd_{name}"].transform(lambda sd: float(np.sqrt((sd ** 2).mean())))
        gaps[f"z_{name}"] = gaps[name] / sigma
    return gaps.sort_values(["n_params", "data_chars"])


def summary(gaps: pd.DataFrame) -> list[str]:
    lines = []
    won = gaps["chosen"] == 1.0
    for name in ("valid", "test"):
        a, b = gaps.loc[won, f"z_{name}"], gaps.loc[~won, f"z_{name}"]
        se = float(np.sqrt(a.var() / len(a) + b.var() / len(b)))
        lines.append(f"{name}: seed 0 at ×1 against its re-seeds, in σ: {a.mean():+.2f} where ×1 was chosen "
                     f"({len(a)} points), {b.mean():+.2f} where another factor was ({len(b)}); selection "
                     f"{a.mean() - b.mean():+.2f} σ (standard error {se:.2f})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", help="a table with seeds 0, 1, 2 of the from-scratch points at ×1 (cpu-seeds)")
    parser.add_argument("best", help="the table of chosen best-LR runs (cpu-scratch-lr/best)")
    args = parser.parse_args(argv)
    gaps = selection_gaps(pd.read_csv(args.seeds), pd.read_csv(args.best))
    if gaps.empty:
        print("selection_optimism: no point has seeds 0, 1 and 2 at ×1 and a chosen factor", file=sys.stderr)
        return 2
    columns = ["size", "data_chars", "chosen", "valid", "test", "z_valid", "z_test"]
    print(gaps[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(summary(gaps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
