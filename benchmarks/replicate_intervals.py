"""Measurement (not a test): do a one-seed study's intervals hold what its replicates do? On a table whose every run
has several seeds (each seed a whole replicate of the study: its pretrainings, their fine-tunes and its from-scratch
runs, as `analysis/cpu-replicates`), each seed's runs alone analysed as their own table, as a study run with that
seed alone would be, with the default intervals and with the pretraining noise given:

    python benchmarks/replicate_intervals.py analysis/cpu-replicates/results.csv \
        --given "--pretraining-noise 0.0055 --checkpoint-noise 0.0083"

Prints, per pretraining and exponent (β, α, and α's change per decade of N from the audit's form check), each
replicate's estimate and 90 % interval; the standard deviation between replicates beside the sd each interval
implies (its half-width / 1.645); how many replicate intervals hold the mean of the other replicates' estimates (a
90 % interval holds the mean of four other draws about as often as it holds a value √(1 + 1/4) of its sd away: 84 %
for a normal); and the replicates' mean with its 90 % t interval and p value against zero (independent replicates:
a test of the sign that does not lean on the bootstrap). About 20 s per seed and variant on one core.
"""
from __future__ import annotations

import argparse
import shlex
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from effdata.analysis.pipeline import analyze
from effdata.fmt import sig

Z90 = 1.645
EXPONENTS = ("beta", "alpha", "alpha_per_decade_of_n")   # the last: the audit's form check (audit/form.py)


def whole_seeds(rows: pd.DataFrame) -> list[int]:
    """The seeds that every run mode of the table has (pretraining, from-scratch, fine-tune): whole replicates."""
    modes = [set(rows.loc[rows["mode"] == mode, "seed"]) for mode in rows["mode"].unique()]
    return sorted(set.intersection(*modes))


def given_options(text: str) -> dict:
    """`--pretraining-noise X --checkpoint-noise Y` as analyze()'s keyword arguments."""
    words, options = shlex.split(text), {}
    for flag, value in zip(words[::2], words[1::2]):
        options[flag.removeprefix("--").replace("-", "_")] = float(value)
    return options


def per_replicate(rows: pd.DataFrame, seeds: list[int], options: dict, compare: list[str]) -> dict:
    """seed -> the transfer laws of that seed's runs alone (fits.json's `transfer`)."""
    laws = {}
    with tempfile.TemporaryDirectory() as out:
        for seed in seeds:
            fits = analyze(rows[rows["seed"] == seed], Path(out) / str(seed), compare=compare, figures=False,
                           **options)
            laws[seed] = {name: with_form(law, fits, name) for name, law in fits["transfer"].items()}
            print(f"  seed {seed} analysed", flush=True)
    return laws


def with_form(law: dict, fits: dict, pretrain: str) -> dict:
    """A transfer law (fits.json) with the audit's form check beside its exponents: α's change per decade of N and
    its 90 % interval, where the check has one."""
    audit = next((a for a in fits["audit"]["laws"] if a["law"] == f"transfer law '{pretrain}'"), None)
    form = (audit or {}).get("alpha_by_n")
    if not form or form["interval"] is None:
        return law
    key = "alpha_per_decade_of_n"
    return {**law, key: form[key], "intervals": {**law["intervals"], key: form["interval"]}}


def summary(laws: dict, pretrain: str, name: str) -> str:
    fitted = {s: t[pretrain] for s, t in laws.items() if t.get(pretrain, {}).get("fitted") and name in t[pretrain]}
    if len(fitted) < 2:
        return f"| {pretrain} | {name} | fewer than two replicates fitted ||||||"
    values = np.array([law[name] for law in fitted.values()])
    lows = np.array([law["intervals"][name][0] for law in fitted.values()])
    highs = np.array([law["intervals"][name][1] for law in fitted.values()])
    others = np.array([np.delete(values, i).mean() for i in range(len(values))])
    held = int(((lows <= others) & (others <= highs)).sum())
    each = ", ".join(f"{sig(v)} [{sig(lo)}, {sig(hi)}]" for v, lo, hi in zip(values, lows, highs))
    implied = np.median((highs - lows) / (2 * Z90))
    test = stats.ttest_1samp(values, 0.0)
    low, high = test.confidence_interval(0.90)
    return (f"| {pretrain} | {name} | {each} | {sig(np.std(values, ddof=1))} | {sig(implied)} | "
            f"{held} of {len(values)} | {sig(values.mean())} [{sig(low)}, {sig(high)}], p = {sig(test.pvalue)} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("table", type=Path)
    parser.add_argument("--compare", nargs="+", default=["text", "text+code"])
    parser.add_argument("--given", default="", help="noise options given to every replicate's analysis too "
                        "(a second set of rows), e.g. '--pretraining-noise 0.0055 --checkpoint-noise 0.0083'")
    args = parser.parse_args(argv)
    rows = pd.read_csv(args.table)
    seeds = whole_seeds(rows)
    print(f"{args.table}: {len(seeds)} whole replicates (seeds {seeds})")
    variants = {"default intervals": {}}
    if args.given:
        variants[f"given {args.given}"] = given_options(args.given)
    for label, options in variants.items():
        laws = per_replicate(rows, seeds, options, args.compare)
        print(f"\n{label}\n\n| pretraining | exponent | each replicate [90 % interval] | sd between replicates | "
              "sd an interval implies (median) | intervals holding the others' mean | mean of the replicates [90 % t "
              "interval], p against zero |\n|---|---|---|---|---|---|---|")
        for pretrain in args.compare:
            for name in EXPONENTS:
                print(summary(laws, pretrain, name))


if __name__ == "__main__":
    main()
