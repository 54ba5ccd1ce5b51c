"""Stopping runs by forecast, simulated on a finished study's curves (issue 22): what it saves, what it loses.

    .venv/bin/python benchmarks/stop_by_forecast.py analysis/dynamics-batch [--margin 0.05]

Reads `curves.csv` and `results.csv`, forecasts every from-scratch run's best loss from 10/20/50 % of it
(effdata.analysis.dynamics.forecast) and applies the rule of effdata.analysis.dynamics.stopping within each
group of runs sharing N and data size (a sweep's points). Not in the report: a [sweep] study's table gets the
sweep analysis, and a grid's (N, data) groups hold only seeds of one setting.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from effdata.analysis.dynamics.forecast import FRACTIONS, forecast_runs
from effdata.analysis.dynamics.history import load_curves
from effdata.analysis.dynamics.stopping import simulate_stopping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, help="a study directory holding results.csv and curves.csv")
    parser.add_argument("--margin", type=float, help="relative margin (default: the forecasts' 90th-percentile error)")
    args = parser.parse_args(argv)
    curves = load_curves(args.study / "curves.csv", pd.read_csv(args.study / "results.csv"))
    forecasts = forecast_runs(curves)
    print("| seen | margin | groups | runs | stopped | of them their group's best | planned steps saved |")
    print("|---|---|---|---|---|---|---|")
    for fraction in FRACTIONS:
        check = simulate_stopping(curves, forecasts, fraction, args.margin)
        if check is None:
            print(f"| {100 * fraction:.0f} % | — | 0 | — | — | — | no group of two runs forecast |")
            continue
        print(f"| {100 * fraction:.0f} % | {100 * check.margin:.2g} % | {check.groups} | {check.runs} | {check.stopped} | "
              f"{check.wrong} | {100 * check.saved:.0f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
