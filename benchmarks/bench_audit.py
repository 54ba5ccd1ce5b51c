"""Measurement (not a test): what the audit (effdata/analysis/audit/) costs, and whether its fast Chinchilla refits
find what the full starting grid finds.

    .venv/bin/python benchmarks/bench_audit.py [--repeats 2] [--tables cpu-v2 quick cpu-fixed-budget shape] [--kaplan]

1. The analysis of analysis/cpu-v2 (with its --budget-compare table, no figures) with the audit and with it
   replaced by an empty one, `--repeats` times each, interleaved.
2. For every committed table named, each N left out in turn, both estimators: the Chinchilla refit from the
   full 4,500-start grid against the audit's (the fit's optimum and `REFIT_GRID`): the largest difference in
   an exponent and in the objective, and the seconds each took.
3. With --kaplan, for every committed table (`analysis/*/results.csv`, `analysis/*/*/results.csv`), each N left out,
   both estimators: the audit's Kaplan refit (`kaplan_refit`: the fit's optimum and a 9-start grid) against a refit
   from the optimum alone. Measured 5 December (fifth session, `--repeats 0 --tables --kaplan`): the optimum alone
   is 19x faster (1.9 s against 35.5 s over 35 tables) but reached another optimum on 7 of them (exponents up to
   2.9 apart), so the grid stays.
4. With --kaplan-solvers, the same refits (and the full fit's, on every point) by the audit's solver against two
   faster ones: scipy with the analytic Jacobian from every start, and screened (every start to `SCREEN_NFEV`
   evaluations, the best two carried to convergence). Per solver, the seconds, the largest relative rise of the
   objective and the largest exponent difference. Measured 5 December (sixth session, `--repeats 0 --tables
   --kaplan-solvers`, a quiet machine): 36.2 s, 25.7 s and 18.2 s over the committed tables; the objective within
   4e-8 of the audit's everywhere, but the exponents up to 0.48 apart (where a left-out fit is flat along them):
   every report would change for at most half of the audit's Kaplan time, so the solver stays. Thirteenth session
   (6 December): the analytic Jacobian taken after all (`kaplan_residual`), with the differences it makes named in
   each report: the exponents it moves are those the points leave free, at the same objective, and the audit now
   says where (`kaplan_valley`, the "Not pinned" line), so the audit's solver and "jacobian" here are one solver.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

from effdata.analysis import pipeline  # noqa: E402
from effdata.analysis.audit.audit import Audit  # noqa: E402
from effdata.analysis.core.memo import remember  # noqa: E402
from effdata.analysis.core.table import load_results  # noqa: E402
from effdata.analysis.laws.scaling import (KAPLAN_BOUNDS, REFIT_GRID, ScratchPoints, _lse_terms,  # noqa: E402
                                           _summed_huber, chinchilla_refit, chinchilla_start, fit_chinchilla,
                                           fit_kaplan, kaplan_refit)

remember(False)   # timed here: every repeat computed, not read back (core/memo.py)


def analysis_seconds(with_audit: bool) -> float:
    real = pipeline.audit_table
    pipeline.audit_table = real if with_audit else (lambda *a, **k: Audit())
    try:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            pipeline.analyze(REPO / "analysis/cpu-v2/results.csv", out, compare=["text", "text+code"], figures=False,
                             budget_compare=REPO / "analysis/cpu-fixed-budget/results.csv")
        return time.perf_counter() - start
    finally:
        pipeline.audit_table = real


def objective(natural: np.ndarray, points: ScratchPoints, delta: float) -> float:
    theta = np.array([np.log(natural[1]), np.log(natural[2]), np.log(max(natural[0], 1e-300)), natural[3], natural[4]])
    residual, _, _ = _lse_terms(theta[None], points.log_n[None], points.log_d[None], points.log_loss[None])
    return float(_summed_huber(residual, delta)[0])


def compare_refits(name: str) -> str:
    table = load_results(REPO / "analysis" / name / "results.csv")
    fit = fit_chinchilla(table.scratch, table.units, n_bootstrap=0)
    points = ScratchPoints.from_frame(table.scratch, fit.units)
    exponent = gap = full_s = fast_s = 0.0
    for value in np.unique(points.log_n):
        kept = points.subset(points.log_n != value)
        for delta in (fit.huber_delta, 1e6):
            start = time.perf_counter()
            full = chinchilla_refit(kept, delta)
            full_s += time.perf_counter() - start
            start = time.perf_counter()
            fast = chinchilla_refit(kept, delta, REFIT_GRID, chinchilla_start(fit))
            fast_s += time.perf_counter() - start
            exponent = max(exponent, abs(full[3] - fast[3]), abs(full[4] - fast[4]))
            gap = max(gap, abs(objective(full, kept, delta) - objective(fast, kept, delta)))
    return (f"{name}: {len(np.unique(points.log_n))} sizes; largest exponent difference {exponent:.2g}, objective "
            f"difference {gap:.2g}; full grid {full_s:.1f} s, audit's {fast_s:.1f} s")


def kaplan_tables():
    """(path, from-scratch points in tokens, the Kaplan fit's optimum) of every committed table the law fits."""
    for path in sorted(set(REPO.glob("analysis/*/results.csv")) | set(REPO.glob("analysis/*/*/results.csv"))):
        scratch = load_results(path).scratch
        fit = fit_kaplan(scratch, n_bootstrap=0) if len(scratch) >= 6 else None
        if fit is not None and fit.fitted:
            yield path, ScratchPoints.from_frame(scratch, "tokens"), (fit.alpha_n, fit.alpha_d, np.log(fit.n_c),
                                                                      np.log(fit.d_c))


def compare_kaplan_refits() -> str:
    """Section 3 of the module docstring: the largest exponent difference per table, and the seconds."""
    lines, full_s, fast_s = [], 0.0, 0.0
    for path, points, start_at in kaplan_tables():
        largest = 0.0
        for value in np.unique(points.log_n):
            kept = points.subset(points.log_n != value)
            if len(np.unique(kept.log_n)) < 2:
                continue
            for loss in ("linear", "huber"):
                start = time.perf_counter()
                grid = kaplan_refit(kept, start_at, loss=loss, f_scale=0.1)
                full_s, start = full_s + time.perf_counter() - start, time.perf_counter()
                alone = _kaplan_from(kept, start_at, loss)
                fast_s += time.perf_counter() - start
                largest = max(largest, float(np.abs(grid[:2] - alone[:2]).max()))
        lines.append(f"{path.relative_to(REPO)}: largest exponent difference {largest:.2g}")
    return "\n".join(lines + [f"Kaplan refits: grid {full_s:.1f} s, optimum alone {fast_s:.1f} s"])


def _kaplan_from(points: ScratchPoints, start, loss: str) -> np.ndarray:
    def residual(p):
        return p[1] * np.logaddexp((p[0] / p[1]) * (p[2] - points.log_n), p[3] - points.log_d) - points.log_loss
    return least_squares(residual, list(start), bounds=KAPLAN_BOUNDS, x_scale=[0.1, 0.1, 10, 10], loss=loss,
                         f_scale=0.1).x


SCREEN_NFEV = 30


def _kaplan_residual(points: ScratchPoints):
    def residual(p):
        return p[1] * np.logaddexp((p[0] / p[1]) * (p[2] - points.log_n), p[3] - points.log_d) - points.log_loss

    def jacobian(p):
        u = (p[0] / p[1]) * (p[2] - points.log_n)
        total = np.logaddexp(u, p[3] - points.log_d)
        w = np.exp(u - total)           # the share of the N term
        return np.stack([w * (p[2] - points.log_n), total - w * u, w * p[0], p[1] * (1 - w)], axis=1)
    return residual, jacobian


def _kaplan_cost(points: ScratchPoints, x, loss: str) -> float:
    r = _kaplan_residual(points)[0](x)
    z = (r / 0.1) ** 2
    return float(0.5 * np.sum(r ** 2) if loss == "linear" else 0.5 * 0.01 * np.sum(np.where(z <= 1, z, 2 * np.sqrt(z) - 1)))


def _kaplan_fast(points: ScratchPoints, start, loss: str, screen: int | None) -> np.ndarray:
    """The refit from `kaplan_refit`'s starts with the analytic Jacobian; with `screen`, every start run to that many
    evaluations and the best two carried on to convergence."""
    residual, jacobian = _kaplan_residual(points)
    median = float(np.median(points.log_loss))
    starts = [list(start)] + [[a, b, float(np.median(points.log_n)) + median / a, float(np.median(points.log_d)) + median / b]
                              for a in (0.05, 0.1, 0.3) for b in (0.05, 0.1, 0.3)]
    options = dict(bounds=KAPLAN_BOUNDS, x_scale=[0.1, 0.1, 10, 10], loss=loss, f_scale=0.1, jac=jacobian)
    results = [least_squares(residual, x, max_nfev=screen, **options) for x in starts]
    if screen:
        results = [least_squares(residual, r.x, **options) for r in sorted(results, key=lambda r: r.cost)[:2]]
    return min(results, key=lambda r: r.cost).x


def compare_kaplan_solvers() -> str:
    """Section 4 of the module docstring."""
    seconds, worst_cost, worst_exponent = {"audit": 0.0, "jacobian": 0.0, "screened": 0.0}, {}, {}
    for _, points, start in kaplan_tables():
        subsets = [points] + [points.subset(points.log_n != v) for v in np.unique(points.log_n)]
        for kept in (k for k in subsets if len(np.unique(k.log_n)) >= 2 and len(k) >= 6):
            for loss in ("linear", "huber"):
                began = time.perf_counter()
                audit = kaplan_refit(kept, start, loss=loss, f_scale=0.1)
                seconds["audit"] += time.perf_counter() - began
                for name, screen in (("jacobian", None), ("screened", SCREEN_NFEV)):
                    began = time.perf_counter()
                    x = _kaplan_fast(kept, start, loss, screen)
                    seconds[name] += time.perf_counter() - began
                    rise = (_kaplan_cost(kept, x, loss) - _kaplan_cost(kept, audit, loss)) / _kaplan_cost(kept, audit, loss)
                    worst_cost[name] = max(worst_cost.get(name, -np.inf), rise)
                    worst_exponent[name] = max(worst_exponent.get(name, 0.0), float(np.abs(x[:2] - audit[:2]).max()))
    return "\n".join(["Kaplan refits, seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())] + [
        f"{name}: objective at most {worst_cost[name]:+.2g} (relative) above the audit's, exponents up to "
        f"{worst_exponent[name]:.2g} apart" for name in worst_cost])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tables", nargs="*", default=["cpu-v2", "quick", "cpu-fixed-budget", "shape"])
    parser.add_argument("--kaplan", action="store_true", help="also section 3: Kaplan refits from the optimum alone")
    parser.add_argument("--kaplan-solvers", action="store_true", help="also section 4: faster Kaplan solvers")
    args = parser.parse_args()
    for _ in range(args.repeats):
        print(f"analysis of cpu-v2: with the audit {analysis_seconds(True):.1f} s, "
              f"without {analysis_seconds(False):.1f} s", flush=True)
    for name in args.tables:
        print(compare_refits(name), flush=True)
    if args.kaplan:
        print(compare_kaplan_refits(), flush=True)
    if args.kaplan_solvers:
        print(compare_kaplan_solvers(), flush=True)


if __name__ == "__main__":
    main()
