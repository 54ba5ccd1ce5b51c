"""Benchmark (not a test): the Chinchilla-form fit's speed, its recovery over noisy draws, and a refit of
the points Besiroglu et al. (2024) extracted from the Chinchilla paper.

    .venv/bin/python benchmarks/bench_chinchilla.py                       # speed: batched grid vs scipy per start
    .venv/bin/python benchmarks/bench_chinchilla.py --draws 100           # sd and 90%-interval coverage over draws
    .venv/bin/python benchmarks/bench_chinchilla.py --epoch-csv svg_extracted_data.csv

The Epoch CSV is `data/svg_extracted_data.csv` of github.com/epoch-research/analyzing-chinchilla (not in this
repository: no licence is given there). It has `Model Size`, `Training FLOP` and `loss`, i.e. a flops-only table:
effdata reads D = C / (6 N), as Besiroglu et al. did, and, as they did, the 5 highest losses are left out.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from synthetic import TRUE_SCRATCH, scratch_runs  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from effdata.analysis.core.memo import remember  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.analysis.laws.scaling import (  # noqa: E402
    PAPER_CHINCHILLA,
    ScratchPoints,
    StartGrid,
    fit_chinchilla,
    polish_lbfgs,
    solve_batched,
)

remember(False)   # timed here: every repeat computed, not read back (core/memo.py)


def time_solvers(points: ScratchPoints, label: str, scipy_starts: int = 100) -> None:
    grid = StartGrid().points()
    start = time.perf_counter()
    theta, value = solve_batched(points.log_n[None], points.log_d[None], points.log_loss[None], grid)
    batched = time.perf_counter() - start
    sample = np.random.default_rng(0).choice(len(grid), scipy_starts, replace=False)
    start = time.perf_counter()
    scipy_values = [polish_lbfgs(grid[i], points.log_n, points.log_d, points.log_loss)[1] for i in sample]
    per_start = (time.perf_counter() - start) / scipy_starts
    print(f"{label}: {len(points)} points; batched LM from {len(grid)} starts {batched:.2f} s "
          f"(best objective {value.min():.10g}); scipy L-BFGS-B {1000 * per_start:.1f} ms per start, "
          f"so {per_start * len(grid):.0f} s for the grid (best of {scipy_starts}: {min(scipy_values):.10g})")


def draws(count: int, n_bootstrap: int) -> None:
    names = ("E", "A", "B", "alpha", "beta", "n_opt_exponent")
    truth = {**TRUE_SCRATCH, "n_opt_exponent": TRUE_SCRATCH["beta"] / (TRUE_SCRATCH["alpha"] + TRUE_SCRATCH["beta"])}
    estimates, covered = [], dict.fromkeys(names, 0)
    start = time.perf_counter()
    for seed in range(count):
        fit = fit_chinchilla(scratch_runs(log_noise=0.01, seed=seed), n_bootstrap=n_bootstrap, seed=seed)
        estimates.append([fit.E, np.log(fit.A), np.log(fit.B), fit.alpha, fit.beta, fit.n_opt_exponent])
        for name in names if n_bootstrap else ():
            lo, hi = fit.intervals[name]
            covered[name] += lo <= truth[name] <= hi
    estimates = np.array(estimates)
    print(f"{count} draws, 80 points, 1% noise on the loss, {(time.perf_counter() - start) / count:.2f} s per fit")
    print("  sd (E, log A, log B, alpha, beta, a):", np.round(estimates.std(axis=0), 4))
    print("  mean:", np.round(estimates.mean(axis=0), 4))
    if n_bootstrap:
        print("  coverage of the 90% intervals:", {name: covered[name] / count for name in names})


def epoch_refit(path: Path) -> None:
    raw = pd.read_csv(path)
    raw = raw[raw["loss"] < np.sort(raw["loss"])[-5]]       # Besiroglu et al. leave out the 5 highest losses
    table = load_results(pd.DataFrame({"n_params": raw["Model Size"], "flops": raw["Training FLOP"],
                                       "loss": raw["loss"]}), warnings=[])
    start = time.perf_counter()
    fit = fit_chinchilla(table.scratch, table.units, n_bootstrap=200)
    seconds = time.perf_counter() - start
    paper = PAPER_CHINCHILLA["besiroglu"]
    print(f"Epoch points: {fit.n_points} points, D = C/(6N) {fit.units}; fit + 200 resamples {seconds:.1f} s; "
          f"{fit.n_starts_at_best} of {fit.n_starts} starts at the best objective {fit.objective:.10g}")
    for name in ("E", "A", "B", "alpha", "beta", "n_opt_exponent"):
        lo, hi = fit.intervals[name]
        print(f"  {name}: {fit.__dict__[name]:.4g} [{lo:.4g}, {hi:.4g}]   Besiroglu et al.: {paper.get(name, '—')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=0, help="noisy synthetic tables to fit (sd, coverage)")
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples per draw (0: no coverage)")
    parser.add_argument("--epoch-csv", type=Path, help="Epoch's svg_extracted_data.csv")
    args = parser.parse_args()
    with threadpool_limits(1, user_api="blas"):       # what effdata.analyze does
        cpu = load_results(REPO / "analysis" / "cpu-v2" / "results.csv", warnings=[])
        time_solvers(ScratchPoints.from_frame(cpu.scratch, "chars"), "CPU study from-scratch runs")
        time_solvers(ScratchPoints.from_frame(scratch_runs(log_noise=0.01), "chars"), "synthetic 5 N x 16 D")
        if args.draws:
            draws(args.draws, args.bootstrap)
        if args.epoch_csv:
            epoch_refit(args.epoch_csv)


if __name__ == "__main__":
    main()
