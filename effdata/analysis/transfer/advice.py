"""Study design advice: the cheapest runs that would tighten a poor fit or a wide interval, from the data.

Each suggestion names concrete runs (mode, N, data size, how many seeds), why they are needed (the
measurement that calls for them) and what they cost (training FLOPs, from the table's own `flops` of
the same grid point; a from-scratch run past the largest one is scaled from it in proportion to D).
Suggestions are sorted by cost. What cannot be fixed by more runs of the same grid (a law that does
not describe the points) is said as a note, not dressed up as a run. Runs are named by N: `analyze` gives
it one shape per N (with several shapes at one N, the reference shape's runs; `shape.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from effdata.analysis.core.bootstrap import NoiseModel
from effdata.analysis.core.fit import TransferFit
from effdata.analysis.core.table import ResultsTable, root_of
from effdata.fmt import compact, sig

# A 90% interval of alpha or beta wider than this is "wide": 0.1 is about the difference between the
# paper's alpha for text (0.18) and for text+code (0.096); telling the two apart needs narrower ones.
WIDE_EXPONENT_INTERVAL = 0.1
EXTRA_SEEDS = 2                   # one seed -> three: enough to measure a spread, and a bootstrap over them
SCRATCH_SHARE_MAJORITY = 0.5      # above it, the from-scratch curve dominates a point's D_T variance


@dataclass
class Suggestion:
    runs: str                      # what to run, concretely
    why: str                       # the measurement that calls for it
    flops: float | None            # estimated training FLOPs of those runs (None without a `flops` column)


@dataclass
class StudyAdvice:
    suggestions: list[Suggestion] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _run_flops(results: ResultsTable, mode: str, pretrain: str, n_params: float, d: float) -> float:
    """Mean FLOPs of one seed of an existing grid point (nan if the table has no flops)."""
    runs = results.runs
    if "flops" not in runs:
        return float("nan")
    rows = runs[(runs["mode"] == mode) & (runs["pretrain"] == pretrain) & (runs["n_params"] == n_params)
                & np.isclose(runs[results.data_column], d)]
    return float(rows["flops"].mean()) if len(rows) else float("nan")


def _pretraining_flops(results: ResultsTable, pretrain: str, n_params: float) -> float:
    """FLOPs of the whole pretraining run a fine-tune from `pretrain` (or a checkpoint of it) starts from at this N:
    the largest of its pretraining rows (the final model's), else of its fine-tunes' `pretrain_flops`; nan without
    either."""
    root = root_of(pretrain)
    for rows, column in ((results.pretraining, "flops"), (results.runs, "pretrain_flops")):
        if rows.empty or column not in rows:
            continue
        mine = rows[(rows["pretrain"].map(root_of) == root) & (rows["n_params"] == n_params)][column]
        if mine.notna().any():
            return float(mine.max())
    return float("nan")


def _total(flops: list[float]) -> float | None:
    return float(np.sum(flops)) if flops and np.isfinite(flops).all() else None


def scratch_reach(fit: TransferFit, results: ResultsTable) -> list[Suggestion]:
    """From-scratch runs past the largest D_E of each N whose lowest fine-tuned loss lies past the curve."""
    out = []
    for need in fit.scratch_runs_needed:
        n, largest = need["n_params"], need["d_scratch_max"]
        if need["suggested"] is None:
            runs = f"from scratch, N = {compact(n)}: runs past D = {compact(largest)} until loss ≤ {sig(need['lowest_loss'], 4)}"
            flops = None
        else:
            runs = f"from scratch, N = {compact(n)}, D = {compact(need['suggested'])} ({fit.units}), one run"
            flops = _run_flops(results, "scratch", "none", n, largest) * need["suggested"] / largest
        interval = f" [90%: up to {compact(need['d_e_hi'])}]" if np.isfinite(need["d_e_hi"]) else ""
        why = (f"`{fit.pretrain}` at D_F = {compact(need['d_f'])} reaches loss {sig(need['lowest_loss'], 4)}, which the "
               f"from-scratch curve reaches only past its largest run ({compact(largest)}): D_E ≈ {compact(need['d_e'])} "
               f"extrapolated{interval}; extrapolated D_E are biased low and stay out of the headline law")
        out.append(Suggestion(runs=runs, why=why, flops=flops if flops is None or np.isfinite(flops) else None))
    return out


def _bracketing_sizes(results: ResultsTable, n_params: float, d_e: float) -> list[float]:
    """The measured from-scratch sizes of N just below and above D_E (the nodes D_E is read between)."""
    sizes = np.sort(results.scratch.loc[results.scratch["n_params"] == n_params, results.data_column].to_numpy(float))
    if not len(sizes) or not np.isfinite(d_e):
        return []
    below, above = sizes[sizes <= d_e], sizes[sizes >= d_e]
    return sorted({float(x) for x in ([below[-1]] if len(below) else []) + ([above[0]] if len(above) else [])})


def more_seeds(fit: TransferFit, table: pd.DataFrame, noise_by_d_f: pd.DataFrame,
               results: ResultsTable) -> Suggestion | None:
    """More seeds where D_T is least certain, on the curve that dominates its noise.

    None when the intervals are not wide, or when the scatter about the law is mostly lack of fit
    (then seeds narrow little: `fit_notes` says so).
    """
    widths = [fit.intervals[p][1] - fit.intervals[p][0] for p in ("alpha", "beta") if p in fit.intervals]
    rows = noise_by_d_f[noise_by_d_f["pretrain"] == fit.pretrain].dropna(subset=["half_width"])
    if not widths or max(widths) <= WIDE_EXPONENT_INTERVAL or rows.empty or _lack_of_fit_dominates(fit):
        return None
    widest = rows.loc[rows["half_width"].idxmax()]
    points = table[(table["pretrain"] == fit.pretrain) & (table["d_f"] == widest["d_f"]) & ~table["no_scratch"]]
    if widest["scratch_share"] >= SCRATCH_SHARE_MAJORITY:
        grid = sorted({(n, d) for n, d_e in zip(points["n_params"], points["d_e"]) for d in _bracketing_sizes(results, n, d_e)})
        runs = "; ".join(f"N = {compact(n)}: D = {compact(d)}" for n, d in grid)
        what = f"from scratch, {EXTRA_SEEDS} more seeds of the runs that bracket these D_E ({runs})"
        flops = [EXTRA_SEEDS * _run_flops(results, "scratch", "none", n, d) for n, d in grid]
        source = f"the from-scratch curve ({100 * widest['scratch_share']:.0f}% of its variance)"
    else:
        what = (f"fine-tuned from `{fit.pretrain}`, {EXTRA_SEEDS} more seeds at D_F = {compact(widest['d_f'])} "
                f"for N = {', '.join(compact(n) for n in points['n_params'])}, each from its own pretraining run "
                "(`[extra_seeds]`, whose default pretrains one per seed)")
        flops = [EXTRA_SEEDS * (_run_flops(results, "finetune", fit.pretrain, n, widest["d_f"])
                                + _pretraining_flops(results, fit.pretrain, n)) for n in points["n_params"]]
        source = (f"the fine-tuned runs ({100 * (1 - widest['scratch_share']):.0f}% of its variance), which is mostly their "
                  "pretraining run's: seeds of one pretraining measure and narrow little of it (analysis/cpu-finetune-seeds)")
    why = (f"`{fit.pretrain}`: 90% intervals of α, β {max(widths):.2g} wide (> {WIDE_EXPONENT_INTERVAL}); D_T is least "
           f"certain at D_F = {compact(widest['d_f'])} (±{100 * widest['half_width']:.0f}%, median over N), mostly from {source}")
    return Suggestion(runs=what, why=why, flops=_total(flops))


def measure_noise(table: pd.DataFrame, noise: NoiseModel, results: ResultsTable) -> Suggestion | None:
    """A second seed of the from-scratch runs the measured D_E are read between, when no point has seeds."""
    if any(noise.seeded_points.values()):
        return None
    points = table[np.isfinite(table["d_e"]) & ~table["extrapolated"]]
    grid = sorted({(n, d) for n, d_e in zip(points["n_params"], points["d_e"]) for d in _bracketing_sizes(results, n, d_e)})
    if not grid:
        return None
    flops = [_run_flops(results, "scratch", "none", n, d) for n, d in grid]
    sizes = "; ".join(f"N = {compact(n)}: D = {', '.join(compact(d) for m, d in grid if m == n)}"
                      for n in sorted({n for n, _ in grid}))
    return Suggestion(runs=f"from scratch, a second seed of the {len(grid)} runs the measured D_E are read between ({sizes})",
                      why=(f"no grid point has two seeds: the noise in every interval is estimated "
                           f"(σ = {100 * noise.sigma['scratch']:.2g}%, {noise.source['scratch']}), not measured"),
                      flops=_total(flops))


def _lack_of_fit_dominates(fit: TransferFit) -> bool:
    return fit.lack_of_fit is not None and fit.noise_scatter is not None and fit.lack_of_fit > fit.noise_scatter


def fit_notes(fit: TransferFit) -> list[str]:
    """What more runs of the same grid cannot fix: the law's lack of fit, and where it is worst."""
    if not fit.fitted or not _lack_of_fit_dominates(fit):
        return []
    folds = [(fold["mean_abs_log_error"], group, fold[group]) for group, held in fit.heldout.items()
             for fold in held.per_fold]
    worst = max(folds) if folds else None
    where = (f"; left out, {'N' if worst[1] == 'n_params' else 'D_F'} = {compact(worst[2])} is predicted worst "
             f"(×{np.exp(worst[0]):.2g})" if worst else "")
    label = "" if fit.points == "interpolated" else f" ({fit.points})"
    return [f"`{fit.pretrain}`{label}: the points scatter about the law by {fit.lack_of_fit:.2g} in log D_T beyond the "
            f"{fit.noise_scatter:.2g} the runs' noise explains: the law's lack of fit, not noise, sets the width of "
            f"α and β, and more seeds of the same grid narrow them little{where}."]


def study_advice(fits: dict[str, TransferFit], table: pd.DataFrame, noise_by_d_f: pd.DataFrame,
                 noise: NoiseModel | None, results: ResultsTable) -> StudyAdvice:
    """Every suggestion and note for the fitted pretraining names, cheapest first."""
    advice = StudyAdvice()
    for fit in fits.values():
        advice.suggestions += scratch_reach(fit, results)
        headline = fit if fit.fitted else fit.including_extrapolated
        if headline is None or not headline.fitted or noise is None:
            continue
        seeds = more_seeds(headline, table, noise_by_d_f, results)
        advice.suggestions += [seeds] if seeds is not None else []
        advice.notes += fit_notes(headline)
    unmeasured = measure_noise(table, noise, results) if noise is not None and fits else None
    advice.suggestions += [unmeasured] if unmeasured is not None else []
    advice.suggestions.sort(key=lambda s: (s.flops is None, s.flops or 0.0))
    return advice
