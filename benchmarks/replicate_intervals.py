"""Measurement (not a test): do a one-seed study's intervals hold what its replicates do? On a table whose every run
has several seeds (each seed a whole replicate of the study: its pretrainings, their fine-tunes and its from-scratch
runs, as `analysis/cpu-replicates`), each seed's runs alone analysed as their own table, as a study run with that
seed alone would be, with the default intervals and with the pretraining noise given:

    python benchmarks/replicate_intervals.py analysis/cpu-replicates/results.csv \
        --given "--pretraining-noise 0.0055 --checkpoint-noise 0.0083"
    python benchmarks/replicate_intervals.py analysis/cpu-replicates/results.csv \
        --given "--noise-from analysis/cpu-replicates"

Prints, per pretraining and exponent (β, α, and α's change per decade of N from the audit's form check), each
replicate's estimate and 90 % interval; the standard deviation between replicates beside the sd each interval
implies (its half-width / 1.645); how many replicate intervals hold the mean of the other replicates' estimates (a
90 % interval holds the mean of four other draws about as often as it holds a value √(1 + 1/4) of its sd away: 84 %
for a normal); and the replicates' mean with its 90 % t interval and p value against zero (independent replicates:
a test of the sign that does not lean on the bootstrap). Then, per point, the sd of log D_E between replicates
against the sd each replicate's 90 % interval of D_E implies (median over points, over all and per D_F: one σ for every run is too wide at the smaller D_F and too narrow
at the larger, which the median over all hides), and each N's own α (between its
smallest and largest D_F) per replicate, and β by least squares and with each N left out, averaged over the
replicates. `--borrow-scratch 2 1e5` gives each
replicate the next two seeds' from-scratch runs on <= 1e5 characters: a study seeded as analysis/cpu-seeds. About
20 s per seed and variant on one core.
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
from effdata.analyze import loss_noise_arg
from effdata.fmt import sig

Z90 = 1.645
EXPONENTS = ("beta", "alpha", "alpha_per_decade_of_n")   # the last: the audit's form check (audit/form.py)
LEAST_SQUARES = "every N, least squares"                  # the audit's other estimator (audit/transfer.py)


def whole_seeds(rows: pd.DataFrame) -> list[int]:
    """The seeds that every run mode of the table has (pretraining, from-scratch, fine-tune): whole replicates."""
    modes = [set(rows.loc[rows["mode"] == mode, "seed"]) for mode in rows["mode"].unique()]
    return sorted(set.intersection(*modes))


def given_options(text: str) -> dict:
    """`--pretraining-noise X --checkpoint-noise Y` (or `--loss-noise 1e4:0.003,3e5:0.011`, per data size, or
    `--noise-from ANALYSIS`) as analyze()'s keyword arguments."""
    words, options = shlex.split(text), {}
    for flag, value in zip(words[::2], words[1::2]):
        name = flag.removeprefix("--").replace("-", "_")
        options[name] = value if name == "noise_from" else loss_noise_arg(value)
    return options


def replicate_rows(rows: pd.DataFrame, seeds: list[int], seed: int, borrow: tuple[int, float] | None) -> pd.DataFrame:
    """Seed `seed`'s runs; with `borrow` (k, D), also the from-scratch runs of the next k seeds at data sizes <= D, as
    a study seeded like analysis/cpu-seeds (k = 2, D = 1e5). Borrowed runs are shared between replicates, so their
    spread then understates the from-scratch part of the noise: the intervals' width is compared against too little."""
    chosen = rows["seed"] == seed
    if borrow is not None:
        k, largest = borrow
        others = [seeds[(seeds.index(seed) + i) % len(seeds)] for i in range(1, k + 1)]
        chosen |= (rows["mode"] == "scratch") & (rows["data_chars"] <= largest) & rows["seed"].isin(others)
    return rows[chosen]


def per_replicate(rows: pd.DataFrame, seeds: list[int], options: dict, compare: list[str],
                  borrow: tuple[int, float] | None = None) -> tuple[dict, pd.DataFrame]:
    """(seed -> the transfer laws of that seed's runs alone (fits.json's `transfer`), every replicate's per-point
    table (effective.csv, with its seed in `replicate`))."""
    laws, points = {}, []
    with tempfile.TemporaryDirectory() as out:
        for seed in seeds:
            fits = analyze(replicate_rows(rows, seeds, seed, borrow), Path(out) / str(seed), compare=compare,
                           figures=False, **options)
            laws[seed] = {name: with_form(law, fits, name) for name, law in fits["transfer"].items()}
            points.append(pd.read_csv(Path(out) / str(seed) / "effective.csv").assign(replicate=seed))
            print(f"  seed {seed} analysed", flush=True)
    return laws, pd.concat(points, ignore_index=True)


def point_ratios(points: pd.DataFrame, compare: list[str]) -> pd.DataFrame:
    """Per (pretraining, N, D_F) read off a curve by four or more replicates: the sd of log D_E between replicates
    (`spread`), the median sd each replicate's 90 % interval of D_E implies (`implied`) and their `ratio`."""
    points = points[points["pretrain"].isin(compare) & (points["d_e"] > 0)].assign(
        log_d_e=lambda p: np.log(p["d_e"]), implied=lambda p: np.log(p["d_e_hi"] / p["d_e_lo"]) / (2 * Z90))
    each = points.groupby(["pretrain", "n_params", "d_f"]).agg(
        spread=("log_d_e", "std"), implied=("implied", "median"), replicates=("log_d_e", "size"))
    return each[each["replicates"] >= 4].assign(ratio=lambda e: e["implied"] / e["spread"])


def per_point(points: pd.DataFrame, compare: list[str]) -> str:
    """Per pretraining: the median over points of (the sd of log D_E between replicates, the sd each replicate's 90 %
    interval of D_E implies, their ratio: `point_ratios`); and β's sd that the points' own spread implies
    (`propagated_beta`)."""
    each = point_ratios(points, compare)
    rows = [f"| {name} | {len(e)} | {sig(e['spread'].median())} | {sig(e['implied'].median())} | "
            f"{sig(e['ratio'].median())} ({sig(e['ratio'].quantile(0.25))}–{sig(e['ratio'].quantile(0.75))}) | "
            f"{sig(propagated_beta(points, name))} |"
            for name, e in each.groupby(level="pretrain")]
    return "\n".join(["| pretraining | points | sd of log D_E between replicates (median) | sd an interval implies "
                      "(median) | ratio, median (quartiles) | β's sd from the points' spread |",
                      "|---|---|---|---|---|---|", *rows])


def per_point_by_d_f(points: pd.DataFrame, compare: list[str]) -> str:
    """`per_point`'s ratio per D_F: one σ for every run is too wide where the noise is small and too narrow where it
    is large, which the median over every point hides (docs/METHOD.md §6)."""
    each = point_ratios(points, compare)
    rows = [f"| {name} | {sig(d_f)} | {len(e)} | {sig(e['ratio'].median())} ({sig(e['ratio'].quantile(0.25))}–"
            f"{sig(e['ratio'].quantile(0.75))}) |" for (name, d_f), e in each.groupby(level=["pretrain", "d_f"])]
    return "\n".join(["| pretraining | D_F | points | ratio, median (quartiles) |", "|---|---|---|---|", *rows])


def propagated_beta(points: pd.DataFrame, pretrain: str) -> float:
    """β's sd that the replicates' own spread of log D_T at each point implies, through the least-squares weights of
    log D_T on (1, log D_F, log N) over the points that three or more replicates read with D_T > 0 (an ossified point
    leaves a replicate's fit, so a spread over the rest is censored)."""
    kept = points[(points["pretrain"] == pretrain) & (points["d_t"] > 0)].assign(log_d_t=lambda p: np.log(p["d_t"]))
    each = kept.groupby(["n_params", "d_f"])["log_d_t"].agg(["std", "size"]).reset_index()
    each = each[each["size"] >= 3]
    design = np.column_stack([np.ones(len(each)), np.log(each["d_f"]), np.log(each["n_params"])])
    weights = np.linalg.pinv(design)[2]
    return float(np.sqrt(np.sum((weights * each["std"]) ** 2)))


def alpha_at_each_n(points: pd.DataFrame, pretrain: str) -> str:
    """Per replicate, each N's own α between its smallest and largest D_F, ln(D_T ratio)/ln(D_F ratio), where
    both D_T > 0 ('—' where one ossified): what the form check's straight line in ln N summarises."""
    mine = points[points["pretrain"] == pretrain]
    sizes = mine.drop_duplicates("n_params").sort_values("n_params")["size"].tolist()
    rows = []
    for seed, each in mine.groupby("replicate"):
        cells = []
        for size in sizes:
            ends = each[each["size"] == size].sort_values("d_f").iloc[[0, -1]]
            d_t, d_f = ends["d_t"].to_numpy(), ends["d_f"].to_numpy()
            cells.append(sig(np.log(d_t[1] / d_t[0]) / np.log(d_f[1] / d_f[0])) if (d_t > 0).all() and d_f[1] > d_f[0]
                         else "—")
        rows.append(f"| {seed} | " + " | ".join(cells) + " |")
    return "\n".join([f"| replicate | {' | '.join(sizes)} |", "|---|" + "---|" * len(sizes), *rows])


def with_form(law: dict, fits: dict, pretrain: str) -> dict:
    """A transfer law (fits.json) with the audit's form check beside its exponents: α's change per decade of N and
    its 90 % interval, where the check has one."""
    audit = next((a for a in fits["audit"]["laws"] if a["law"] == f"transfer law '{pretrain}'"), None)
    left_out = {o["label"]: o["estimates"]["beta"] for o in (audit or {}).get("left_out", []) if o["group"] == "N"}
    least_squares = ((audit or {}).get("other_estimate") or {}).get("beta", np.nan)
    law = {**law, "beta_left_out": {LEAST_SQUARES: least_squares, **left_out}}
    form = (audit or {}).get("alpha_by_n")
    if not form or form["interval"] is None:
        return law
    key = "alpha_per_decade_of_n"
    return {**law, key: form[key], "intervals": {**law["intervals"], key: form["interval"]}}


def beta_left_out(laws: dict, pretrain: str) -> str:
    """β by least squares on every point, then with each N left out (the audit's Huber refit), each averaged over the
    replicates with its 90 % t interval. A replicate with no point of that N (ossified or extrapolated at every D_F)
    is already without it: its own β counts, as in the report's replicate line (audit/replicates.py)."""
    fitted = [t[pretrain] for t in laws.values() if t.get(pretrain, {}).get("fitted")]
    labels = list(dict.fromkeys(label for law in fitted for label in law["beta_left_out"]))
    cells = []
    for label in labels:
        absent = np.nan if label == LEAST_SQUARES else None
        values = np.array([law["beta_left_out"].get(label, law["beta"] if absent is None else absent)
                           for law in fitted], float)
        values = values[np.isfinite(values)]
        if len(values) < 3:
            cells.append("—")
            continue
        low, high = stats.ttest_1samp(values, 0.0).confidence_interval(0.90)
        cells.append(f"{sig(values.mean())} [{sig(low)}, {sig(high)}] ({len(values)})")
    heads = [label if label == LEAST_SQUARES else f"without {label}" for label in labels]
    return "\n".join([f"| pretraining | {' | '.join(heads)} |", "|---|" + "---|" * len(labels),
                      f"| {pretrain} | {' | '.join(cells)} |"])


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
    parser.add_argument("--borrow-scratch", nargs=2, type=float, metavar=("K", "D"),
                        help="each replicate also takes the from-scratch runs of the next K seeds at data sizes <= D "
                             "(2 1e5: seeded as analysis/cpu-seeds); those runs are then shared between replicates")
    args = parser.parse_args(argv)
    rows = pd.read_csv(args.table)
    seeds = whole_seeds(rows)
    borrow = (int(args.borrow_scratch[0]), args.borrow_scratch[1]) if args.borrow_scratch else None
    print(f"{args.table}: {len(seeds)} whole replicates (seeds {seeds})"
          + (f", each with the next {borrow[0]} seeds' from-scratch runs at D <= {sig(borrow[1])}" if borrow else ""))
    variants = {"default intervals": {}}
    if args.given:
        variants[f"given {args.given}"] = given_options(args.given)
    for label, options in variants.items():
        laws, points = per_replicate(rows, seeds, options, args.compare, borrow)
        print(f"\n{label}\n\n| pretraining | exponent | each replicate [90 % interval] | sd between replicates | "
              "sd an interval implies (median) | intervals holding the others' mean | mean of the replicates [90 % t "
              "interval], p against zero |\n|---|---|---|---|---|---|---|")
        for pretrain in args.compare:
            for name in EXPONENTS:
                print(summary(laws, pretrain, name))
        print(f"\nPer point ({label}): D_E's interval against the spread between replicates\n")
        print(per_point(points, args.compare))
        print(f"\nPer point and D_F ({label})\n")
        print(per_point_by_d_f(points, args.compare))
        for pretrain in args.compare:
            print(f"\nα at each N, {pretrain} ({label}): between its smallest and largest D_F\n")
            print(alpha_at_each_n(points, pretrain))
            print(f"\nβ by least squares, and with each N left out (Huber), {pretrain} ({label}): the replicates' mean "
                  "[90 % t interval] (how many)\n")
            print(beta_left_out(laws, pretrain))


if __name__ == "__main__":
    main()
