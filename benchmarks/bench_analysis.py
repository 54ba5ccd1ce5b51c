"""Benchmark (not a test): analyse 600 runs with 1,000 bootstrap resamples; prints wall time.

    .venv/bin/python benchmarks/bench_analysis.py [--out DIR] [--seeds 3]

600 runs = 3 seeds x (5 N x 20 from-scratch data sizes + 2 pretraining names x 5 N x 10 fine-tuning
sizes), 1% loss noise per run and log-normal scatter of D_T about the law. Each resample re-draws every
grid point's seeds, re-builds the five from-scratch curves and re-reads all 100 D_E (bootstrap.py).
Target (issues 5 and 11): under 30 s on 2 cores, figures included.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import numpy as np  # noqa: E402
from synthetic import TRUE_CODE, TRUE_TEXT, make_runs  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import effdata.analyze as analyze_module  # noqa: E402
from effdata.analysis.core.bootstrap import (  # noqa: E402
    attach_intervals,
    estimate_noise,
    resample_effective,
)
from effdata.analysis.core.effective import compute_effective  # noqa: E402
from effdata.analysis.core.fit import fit_transfer  # noqa: E402
from effdata.analysis.core.memo import remember  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.analysis.laws.scaling import fit_chinchilla, fit_kaplan  # noqa: E402

remember(False)   # timed here: every repeat computed, not read back (core/memo.py)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="where to write the report (default: a temporary directory)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per grid point (default 3: 600 runs)")
    args = parser.parse_args()
    runs = make_runs({"text": TRUE_TEXT, "text+code": TRUE_CODE}, d_scratch=tuple(np.geomspace(1e5, 3e9, 20)),
                     d_f_values=tuple(np.geomspace(1e5, 1e7, 10)), log_noise=0.3, seed=0, seeds=args.seeds,
                     loss_noise=0.01)
    assert len(runs) == 200 * args.seeds, len(runs)

    limits = threadpool_limits(1, user_api="blas")   # what analyze() does for a whole analysis
    start = time.perf_counter()
    table = load_results(runs)
    effective = compute_effective(table)
    loaded = time.perf_counter()
    draws = resample_effective(table, effective, estimate_noise(table, effective), 1000)
    attach_intervals(effective.table, draws)
    resampled = time.perf_counter()
    fits = {name: fit_transfer(effective.table, name, "chars", draws=draws.d_t) for name in ("text", "text+code")}
    fitted = time.perf_counter()
    fit_kaplan(table.scratch, n_bootstrap=1000)
    kaplan_done = time.perf_counter()
    fit_chinchilla(table.scratch, n_bootstrap=1000)
    chinchilla_done = time.perf_counter()
    limits.unregister()
    print(f"{len(runs)} runs: read + D_E {loaded - start:.2f} s; 1000 resamples of the runs (curves re-built, "
          f"D_E re-read) {resampled - loaded:.2f} s; transfer fits x 2 names {fitted - resampled:.2f} s; "
          f"Kaplan fit + {min(1000, 200)} resamples {kaplan_done - fitted:.2f} s; "
          f"Chinchilla fit (4,500 starts) + 1000 resamples {chinchilla_done - kaplan_done:.2f} s")
    for name, fit in fits.items():
        print(f"  {name}: k={fit.k:.3g} alpha={fit.alpha:.3f} [{fit.intervals['alpha'][0]:.3f}, {fit.intervals['alpha'][1]:.3f}] "
              f"beta={fit.beta:.3f} ({fit.n_bootstrap_used} resamples used)")

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        start = time.perf_counter()
        result = analyze_module.analyze(runs, out, compare=["text", "text+code"], n_bootstrap=1000)
        total = time.perf_counter() - start
    drawn = sum("skipped" not in figure for figure in result["figures"])
    print(f"full analysis (bootstrap over runs, fits, {drawn} figures PNG+SVG, report): {total:.1f} s wall "
          f"({'under' if total < 30 else 'OVER'} the 30 s target)")


if __name__ == "__main__":
    main()
