"""Stopping runs by forecast, simulated on a finished study's curves (issue 22): what it saves, what it loses.

    .venv/bin/python benchmarks/stop_by_forecast.py analysis/dynamics-batch [--margin 0.05]
    .venv/bin/python benchmarks/stop_by_forecast.py analysis/dynamics analysis/dynamics-batch --margins

Reads `curves.csv` and `results.csv`, forecasts every from-scratch run's best loss from 10/20/50 % of it
(effdata.analysis.dynamics.forecast) and applies the rule of effdata.analysis.dynamics.stopping within each
group of runs sharing N and data size (a sweep's points). Not in the report: a [sweep] study's table gets the
sweep analysis, and a grid's (N, data) groups hold only seeds of one setting.

`--margins`: the own-curve forecast's largest |error| over the studies' from-scratch runs and fine-tunes at each
fraction of effdata.forecast.MARGINS, beside the margin there: what the study option `stop_by_forecast` subtracts.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from effdata.analysis.dynamics.forecast import FRACTIONS, forecast_runs, own_errors
from effdata.analysis.dynamics.history import load_curves
from effdata.analysis.dynamics.stopping import simulate_stopping
from effdata.forecast import MARGINS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, nargs="+", help="study directories holding results.csv and curves.csv")
    parser.add_argument("--margin", type=float, help="relative margin (default: the forecasts' 90th-percentile error)")
    parser.add_argument("--margins", action="store_true", help="the own forecast's largest error against MARGINS")
    args = parser.parse_args(argv)
    tables = [load_curves(study / "curves.csv", pd.read_csv(study / "results.csv")) for study in args.study]
    if args.margins:
        return print_margins(tables)
    for study, curves in zip(args.study, tables):
        if len(tables) > 1:
            print(f"\n{study}:\n")
        print_simulation(curves, args.margin)
    return 0


def print_margins(tables) -> int:
    errors = pd.concat(own_errors(curves) for curves in tables)
    print(f"{errors['run_id'].nunique()} runs ({', '.join(f'{m} {n}' for m, n in errors.groupby('mode')['run_id'].nunique().items())})")
    print("| seen | largest absolute error | mean error | margin (effdata.forecast.MARGINS) |")
    print("|---|---|---|---|")
    for fraction, margin in MARGINS:
        at = errors.loc[errors["fraction"] == fraction, "error"].dropna()
        print(f"| {100 * fraction:.0f} % | {100 * at.abs().max():.1f} % | {100 * at.mean():+.1f} % | {100 * margin:.0f} % |")
    return 0


def print_simulation(curves, margin: float | None) -> None:
    forecasts = forecast_runs(curves)
    print("| seen | margin | groups | runs | stopped | of them their group's best | planned steps saved |")
    print("|---|---|---|---|---|---|---|")
    for fraction in FRACTIONS:
        check = simulate_stopping(curves, forecasts, fraction, margin)
        if check is None:
            print(f"| {100 * fraction:.0f} % | — | 0 | — | — | — | no group of two runs forecast |")
            continue
        print(f"| {100 * fraction:.0f} % | {100 * check.margin:.2g} % | {check.groups} | {check.runs} | {check.stopped} | "
              f"{check.wrong} | {100 * check.saved:.0f} % |")


if __name__ == "__main__":
    raise SystemExit(main())
