"""Stopping runs by forecast, simulated on a finished study's curves (issue 22): what it saves, what it loses.

    .venv/bin/python benchmarks/stop_by_forecast.py analysis/dynamics-batch [--margin 0.05]
    .venv/bin/python benchmarks/stop_by_forecast.py analysis/dynamics analysis/dynamics-batch --margins

Reads `curves.csv` and `results.csv`, forecasts every from-scratch run's best loss from 10/20/50 % of it
(effdata.analysis.dynamics.forecast) and applies the rule of effdata.analysis.dynamics.stopping within each
group of runs sharing N and data size (a sweep's points). Not in the report: a [sweep] study's table gets the
sweep analysis, and a grid's (N, data) groups hold only seeds of one setting.

`--rule F`: the study option `stop_by_forecast = F` in hindsight, on a study run without it: each sweep point (runs
sharing mode, N and data size) checked at its evaluations from F on against its best sibling's final loss, as if
that sibling had finished first (the most the option can save in any order), and whether a stopped run had won.

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
from effdata.forecast import MARGINS, stop_check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path, nargs="+", help="study directories holding results.csv and curves.csv")
    parser.add_argument("--margin", type=float, help="relative margin (default: the forecasts' 90th-percentile error)")
    parser.add_argument("--margins", action="store_true", help="the own forecast's largest error against MARGINS")
    parser.add_argument("--rule", type=float, metavar="F", help="stop_by_forecast = F in hindsight")
    args = parser.parse_args(argv)
    tables = [load_curves(study / "curves.csv", pd.read_csv(study / "results.csv")) for study in args.study]
    if args.margins:
        return print_margins(tables)
    if args.rule is not None:
        for study in args.study:
            print_hindsight(study, args.rule)
        return 0
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


def print_hindsight(study: Path, fraction: float) -> None:
    results = pd.read_csv(study / "results.csv")
    results = results[results["mode"] != "pretrain"]
    curves = pd.read_csv(study / "curves.csv").dropna(subset=["valid_loss"])
    saved = 0
    for _, group in results.groupby(["mode", "n_params", "data_chars" if "data_chars" in results else "data_tokens"]):
        for _, run in group.iterrows():
            bar = group.loc[group["run_id"] != run["run_id"], "valid_loss"].min()
            at = _hindsight_stop(curves[curves["run_id"] == run["run_id"]], run, fraction, bar)
            if at is not None:
                saved += run["steps"] - at
                print(f"{run['run_id']}: stopped at step {at} of {run['steps']} run; its best {run['valid_loss']:.4f}, "
                      f"the best sibling's {bar:.4f}" + (" (it had won)" if run["valid_loss"] < bar else ""))
    print(f"{study}, from {100 * fraction:.0f} %: {saved:.0f} of {results['steps'].sum():.0f} steps saved "
          f"({100 * saved / results['steps'].sum():.0f} %)")


def _hindsight_stop(curve: pd.DataFrame, run: pd.Series, fraction: float, bar: float) -> int | None:
    """The first evaluation from `fraction` of the planned steps at which the rule stops the run, or None."""
    for step in curve["step"]:
        seen = step / run["total_steps"]
        if fraction <= seen < 1:
            points = curve[(curve["step"] <= step) & (curve["step"] > run["warmup_steps"])]
            check = stop_check(points["step"], points["valid_loss"], run["total_steps"], seen, bar)
            if check is not None and check.stop:
                return int(step)
    return None


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
