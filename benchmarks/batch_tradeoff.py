"""The critical batch at fixed loss against the noise scale's (issue 22): a study directory in, a table out.

    .venv/bin/python benchmarks/batch_tradeoff.py runs/dynamics-batch [--target LOSS]

Reads `curves.csv` and `results.csv`, fits S = S_min + E_min/B per N over the batch sizes
(effdata.analysis.dynamics.tradeoff) and, where the runs measured the noise scale, B_crit(L) across them
(effdata.analysis.dynamics.noise) read at the same loss. A [sweep] study's report does not have the
*Training dynamics* section (it gets the sweep analysis), hence this script.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from effdata.analysis.dynamics.history import load_curves
from effdata.analysis.dynamics.noise import fit_critical_batch
from effdata.analysis.dynamics.tradeoff import batch_tradeoffs
from effdata.fmt import sig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study directory holding results.csv and curves.csv")
    parser.add_argument("--target", type=float, help="the loss (default: the highest of the runs' best losses)")
    args = parser.parse_args(argv)
    curves = load_curves(args.study / "curves.csv", pd.read_csv(args.study / "results.csv"))
    noise = fit_critical_batch(curves) if curves.has_noise_scale else None
    for fit in batch_tradeoffs(curves, args.target):
        print(f"N = {sig(fit.n_params)}, target loss {fit.target:.4f}")
        print("\n| batch (tokens) | steps to the target | tokens to the target |\n|---|---|---|")
        for row in fit.runs.sort_values("batch_tokens").itertuples():
            print(f"| {row.batch_tokens:,.0f} | {sig(row.steps)} | {sig(row.tokens)} |")
        if not fit.fitted:
            print(f"\nnot fitted: {fit.reason}")
            continue
        print(f"\nS_min = {sig(fit.s_min)}, E_min = {sig(fit.e_min)} tokens: B_crit = E_min/S_min = {sig(fit.b_crit)} tokens")
        if noise is not None and noise.fitted:
            low, high = noise.intervals.get("b_star", (float("nan"),) * 2)
            print(f"noise scale: B_crit({fit.target:.4f}) = {sig(float(noise.b_crit(fit.target)))} tokens "
                  f"(B* = {sig(noise.b_star)} [{sig(low)}, {sig(high)}], α_B = {sig(noise.alpha_b)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
