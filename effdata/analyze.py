"""`python -m effdata.analyze RESULTS`: from a results table to D_T, fitted laws, figures and a report.

    python -m effdata.analyze runs/quick/results.csv
    python -m effdata.analyze my_runs.parquet --compare text text+code --units tokens --out analysis/
    python -m effdata.analyze runs/cpu/results.csv --budget-compare analysis/cpu-fixed-budget/results.csv

Writes `REPORT.md` (with the figures beside it, PNG and SVG), `fits.json` and `effective.csv` to
--out (default: `analysis/` next to the results table). The study runner calls `analyze()` in-process.

A table from a study with a [sweep] (its rows name the swept setting in a `sweep` column) gets the sweep
analysis instead (`effdata.analysis.sweep`): `REPORT.md`, `sweep.json`, `sweep.csv`, `best.csv` and the
figure `sweep.png`; the transfer analysis would average runs of different swept values together.

`--budget-compare OTHER` measures and fits another study of the same target whose pretraining budgets differ
with the same pipeline (`_fit_table`), and sets its β beside this table's in the section *Pretraining budget*
(`effdata.analysis.budget`); an unusable OTHER is a TableError before anything is written.

The analysis layer never imports torch (tests/test_no_torch.py checks it).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from threadpoolctl import threadpool_limits

from effdata.analysis.advice import StudyAdvice, study_advice
from effdata.analysis.budget import BudgetStudy, compare_budgets, comparable_tables, study_budget
from effdata.analysis.budget_plots import make_budget_figures
from effdata.analysis.bootstrap import (NoiseModel, Resamples, attach_intervals, d_t_noise, estimate_noise,
                                        resample_effective, seed_spread)
from effdata.analysis.effective import EffectiveResult, compute_effective
from effdata.analysis.fit import DEFAULT_BOOTSTRAP, DEFAULT_HUBER_DELTA, TransferFit, fit_transfer
from effdata.analysis.plots import SkippedFigure, make_figures
from effdata.analysis.pretraining import summarize_pretraining
from effdata.analysis.report import Analysis, compute_summary, fits_json, write_outputs
from effdata.analysis.scaling import fit_chinchilla, fit_kaplan
from effdata.analysis.scaling_plots import make_scratch_figures
from effdata.analysis.shape import ShapeGroup, find_groups, ladder_note, ladder_view
from effdata.analysis.shape_compare import analyse_shapes
from effdata.analysis.shape_plots import make_shape_figures
from effdata.analysis.sweep import analyze_sweep_table, is_sweep_table, sweep_json, sweep_report
from effdata.analysis.sweep import summary_lines as sweep_summary_lines
from effdata.analysis.sweep_plots import plot_sweep
from effdata.analysis.table import ResultsTable, TableError, load_results, read_table
from effdata.paths import atomic_write_json, atomic_write_text


def default_out_dir(results) -> Path:
    if isinstance(results, pd.DataFrame):
        return Path("analysis")
    path = Path(results)
    return (path if path.is_dir() else path.parent) / "analysis"


@dataclass(frozen=True)
class Options:
    """What `analyze` was asked for, beyond the table."""

    out_dir: Path
    compare: list[str] | None = None
    units: str = "chars"
    n_bootstrap: int = DEFAULT_BOOTSTRAP
    huber_delta: float = DEFAULT_HUBER_DELTA
    seed: int = 0
    figures: bool = True
    progress: bool = False
    peak_flops: float | None = None
    notes: str | None = None
    loss_noise: float | None = None
    reference_shapes: tuple[str, ...] = ()
    budget_compare: str | Path | pd.DataFrame | None = None   # another results table: section *Pretraining budget*


def analyze(results, out_dir=None, compare: list[str] | None = None, units: str = "chars",
            n_bootstrap: int = DEFAULT_BOOTSTRAP, huber_delta: float = DEFAULT_HUBER_DELTA, seed: int = 0,
            figures: bool = True, progress: bool = False, peak_flops: float | None = None,
            notes: str | None = None, loss_noise: float | None = None,
            reference_shapes: list[str] | tuple[str, ...] = (), budget_compare=None) -> dict:
    """Analyse a results table (path to CSV/Parquet/JSONL, a study directory, or a DataFrame).

    Returns the fits JSON (as written to fits.json) plus `paths` of what was written. Raises
    TableError only when the table cannot be read at all (missing file or required column);
    every other problem is a warning in the report and in `result["warnings"]`. `loss_noise`: the
    relative noise of one run's loss to assume for single-seed grid points (default: measured from
    the seeds, else estimated from the from-scratch grid; bootstrap.py). `reference_shapes`: size or
    shape names of the reference shape of each N that holds several shapes (analysis/shape.py).
    `budget_compare`: another study of the same target with other pretraining budgets (a path or a
    DataFrame); a TableError, before anything is written, when it cannot be compared (analysis/budget.py).
    """
    if loss_noise is not None and not 0 <= loss_noise < 1:
        raise ValueError(f"loss_noise must be a fraction of the loss in [0, 1), e.g. 0.01, not {loss_noise}")
    options = Options(out_dir=Path(out_dir) if out_dir is not None else default_out_dir(results),
                      compare=list(compare) if compare else None, units=units, n_bootstrap=n_bootstrap,
                      huber_delta=huber_delta, seed=seed, figures=figures, progress=progress, peak_flops=peak_flops,
                      notes=notes, loss_noise=loss_noise, reference_shapes=tuple(reference_shapes),
                      budget_compare=budget_compare)
    # One BLAS thread for the whole analysis: it is thousands of tiny solves, where OpenBLAS threads only
    # add synchronisation (on a shared 2-core machine they made L-BFGS-B 25x slower: 110 s instead of
    # 15 s for the fit tests). Set at run time, unlike OPENBLAS_NUM_THREADS, which would also change torch
    # in the runner's process.
    with threadpool_limits(1, user_api="blas"):
        if is_sweep_table(read_table(results)):
            if budget_compare is not None:
                raise TableError("--budget-compare: this is a [sweep] study's table (it gets the sweep analysis, "
                                 "which has no transfer law to compare)")
            return analyze_sweep(results, options.out_dir, units, figures, notes)
        return _analyze(results, options)


def analyze_sweep(results, out_dir: Path, units: str = "chars", figures: bool = True, notes: str | None = None) -> dict:
    """The sweep analysis of a [sweep] study's table: REPORT.md, sweep.json, sweep.csv (losses), best.csv and
    the figure, in `out_dir`. Returns sweep.json's content with `paths`."""
    result = analyze_sweep_table(read_table(results), units)
    drawn = plot_sweep(result, out_dir) if figures else SkippedFigure("sweep", "figures disabled (--no-figures)")
    shown = [drawn.name] if not isinstance(drawn, SkippedFigure) else []
    if isinstance(drawn, SkippedFigure) and figures:
        result.warnings.append(f"figure {drawn.name}: {drawn.reason}")
    paths = {"report": out_dir / "REPORT.md", "sweep": out_dir / "sweep.json", "losses": out_dir / "sweep.csv",
             "best": out_dir / "best.csv"}
    report = sweep_report(result, shown)
    atomic_write_text(paths["report"], (notes.rstrip() + "\n\n" if notes else "") + report)
    atomic_write_json(paths["sweep"], sweep_json(result))
    atomic_write_text(paths["losses"], result.losses.to_csv(index=False))
    atomic_write_text(paths["best"], result.best.to_csv(index=False))
    out = sweep_json(result)
    out["paths"] = {name: str(path) for name, path in paths.items()}
    out["summary"] = sweep_summary_lines(result)
    return out


@dataclass
class Measured:
    """The table, its effective data and the bootstrap over its runs (every shape)."""

    table: ResultsTable
    effective: EffectiveResult
    noise: NoiseModel
    resamples: Resamples | None
    groups: list[ShapeGroup]
    warnings: list[str]


def _measure(results, options: Options) -> Measured:
    """Read the table, D_E and D_T of every fine-tune (each off its own shape's curve), the bootstrap."""
    warnings: list[str] = []
    table = load_results(results, units=options.units, warnings=warnings)
    # The per-N from-scratch curves only serve D_E: without fine-tuned runs their warnings are about curves
    # nothing uses (one per N for published points, whose N differs in almost every row).
    effective = compute_effective(table, warnings if len(table.finetuned) else [])
    names = sorted(effective.table["pretrain"].unique())
    for name in options.compare or []:
        if name not in names:
            warnings.append(f"--compare: no fine-tuned runs pretrained on '{name}' (have {names or 'none'})")
    groups, shape_warnings = find_groups([table.runs, table.pretraining], options.reference_shapes)
    warnings += shape_warnings
    if groups:
        table.notes.append(ladder_note(groups))
    noise = estimate_noise(table, effective, options.loss_noise)
    resamples = None
    if options.n_bootstrap > 0 and len(effective.table):
        resamples = resample_effective(table, effective, noise, options.n_bootstrap, options.seed)
        attach_intervals(effective.table, resamples)
        if not any(noise.seeded_points.values()) and options.loss_noise is None:
            warnings.append(f"one seed per grid point: the intervals assume a run-to-run loss noise of "
                            f"{100 * noise.sigma['scratch']:.2g}%, estimated, not measured (section *Seeds*)")
    return Measured(table, effective, noise, resamples, groups, warnings)


@dataclass
class Fitted:
    """A table measured and its transfer laws fitted, in the size-ladder view (one shape per N)."""

    measured: Measured
    ladder: ResultsTable
    effective: EffectiveResult
    resamples: Resamples | None
    fits: dict[str, TransferFit]

    @property
    def warnings(self) -> list[str]:
        return self.measured.warnings


def _fit_table(results, options: Options) -> Fitted:
    """Measure a table (`_measure`) and fit the transfer law of every pretraining name on its ladder view."""
    measured = _measure(results, options)
    o = options
    ladder, effective, resamples = ladder_view(measured.table, measured.effective, measured.resamples, measured.groups)
    fits = {name: fit_transfer(effective.table, name, ladder.units, n_bootstrap=o.n_bootstrap,
                               huber_delta=o.huber_delta, seed=o.seed, warnings=measured.warnings, progress=o.progress,
                               draws=resamples.d_t if resamples is not None else None)
            for name in sorted(effective.table["pretrain"].unique())}
    return Fitted(measured, ladder, effective, resamples, fits)


def _source(results) -> str:
    return "DataFrame" if isinstance(results, pd.DataFrame) else str(results)


def _compared(results, options: Options) -> Fitted | None:
    """The --budget-compare table, checked (TableError: nothing is written) and fitted as this one is."""
    if options.budget_compare is None:
        return None
    other, name = options.budget_compare, _source(options.budget_compare)
    try:
        other_raw, other_table = read_table(other), load_results(other, units=options.units, warnings=[])
    except TableError as exc:
        raise TableError(f"--budget-compare: {exc}") from exc
    if is_sweep_table(other_raw):
        raise TableError(f"--budget-compare {name}: a [sweep] study's table has no transfer law to compare")
    this_table = load_results(results, units=options.units, warnings=[])
    warnings = comparable_tables(read_table(results), this_table, other_raw, other_table, name)
    fitted = _fit_table(other, dataclasses.replace(options, compare=None, reference_shapes=()))
    fitted.measured.warnings[:] = warnings + [f"compared table: {w}" for w in fitted.warnings]
    return fitted


def _budget(results, fitted: Fitted, compared: Fitted | None, options: Options) -> BudgetStudy | None:
    """The section *Pretraining budget*: with a compared table, or when this table knows its budgets."""
    studies = []
    for role, source, table in (("this table", _source(results), fitted),
                                ("compared table", _source(options.budget_compare), compared)):
        if table is None:
            continue
        warnings: list[str] = []
        studies.append(study_budget(role, source, table.effective.table, table.ladder.pretraining, table.fits,
                                    table.ladder.units, table.resamples.d_t if table.resamples is not None else None,
                                    options.n_bootstrap, options.huber_delta, options.seed, warnings))
        fitted.warnings.extend(w if table is fitted else f"compared table: {w}" for w in warnings)
    if compared is None and all(b.kind == "unknown" for b in studies[0].budgets.values()):
        return None
    return compare_budgets(*studies)


def _analyze(results, options: Options) -> dict:
    compared = _compared(results, options)
    fitted = _fit_table(results, options)
    measured, ladder, effective, resamples, fits = (fitted.measured, fitted.ladder, fitted.effective,
                                                    fitted.resamples, fitted.fits)
    warnings, table, o = measured.warnings, measured.table, options
    if compared is not None:
        warnings += compared.warnings
    budget = _budget(results, fitted, compared, o)
    noise_by_d_f = d_t_noise(effective.table, resamples) if resamples is not None else None
    advice = (study_advice(fits, effective.table, noise_by_d_f, measured.noise, ladder) if resamples is not None
              else StudyAdvice(notes=["no bootstrap (--bootstrap 0): no intervals to advise on"]))
    kaplan = fit_kaplan(ladder.scratch, n_bootstrap=o.n_bootstrap, seed=o.seed, warnings=warnings, progress=o.progress)
    # In the table's unit (the transfer law's), so that the planner composes the two directly.
    chinchilla = fit_chinchilla(ladder.scratch, table.units, n_bootstrap=o.n_bootstrap, seed=o.seed, warnings=warnings,
                                progress=o.progress)
    shapes = (analyse_shapes(measured.groups, table, measured.effective, measured.resamples, o.seed)
              if measured.groups and measured.resamples is not None else None)
    if measured.groups and shapes is None:
        warnings.append("several shapes at one N, but no bootstrap (--bootstrap 0) or no fine-tuned runs: the shape "
                        "comparison needs the re-drawn runs, so the report has no *Shape* section")
    pretraining = summarize_pretraining(ladder.pretraining)
    drawn = _figures(o, effective, fits, ladder, pretraining, kaplan, chinchilla, shapes, budget)
    warnings += [f"figure {f.name} failed: {f.reason}" for f in drawn
                 if isinstance(f, SkippedFigure) and f.reason.startswith("plotting failed")]
    analysis = Analysis(source=_source(results), results=table,
                        effective=measured.effective, fits=fits, kaplan=kaplan, figures=drawn, compare=o.compare,
                        n_bootstrap=o.n_bootstrap, huber_delta=o.huber_delta, warnings=warnings,
                        compute=compute_summary(read_table(results), o.peak_flops), notes=o.notes,
                        noise=measured.noise if resamples is not None else None, seed_spread=seed_spread(table),
                        d_t_noise=noise_by_d_f, pretraining=pretraining, advice=advice, chinchilla=chinchilla,
                        ladder=effective if measured.groups else None, shapes=shapes, budget=budget)
    paths = write_outputs(analysis, o.out_dir)
    result = fits_json(analysis)
    result["paths"] = {name: str(path) for name, path in paths.items()}
    return result


def _figures(o: Options, effective, fits, ladder, pretraining, kaplan, chinchilla, shapes, budget) -> list:
    if not o.figures:
        return [SkippedFigure("all", "figures disabled (--no-figures)")]
    drawn = make_figures(effective, fits, ladder.runs, o.out_dir, compare=o.compare, seed_runs=ladder.seed_runs,
                         pretraining=pretraining)
    drawn += make_scratch_figures(ladder.scratch, ladder.units, kaplan, chinchilla, o.out_dir)
    if shapes is not None:
        drawn += make_shape_figures(shapes, o.out_dir)
    if budget is not None:
        drawn += make_budget_figures(budget, o.out_dir)
    return drawn


def _relative_noise(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction of the loss in [0, 1), e.g. 0.01 (got {text})")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m effdata.analyze", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results table (.csv, .parquet, .jsonl) or a study directory")
    parser.add_argument("--compare", nargs="+", metavar="NAME",
                        help="pretraining names to set side by side (e.g. text text+code)")
    parser.add_argument("--units", choices=["chars", "tokens"], default="chars",
                        help="unit of D (default: chars, as in the paper)")
    parser.add_argument("--out", type=Path, help="output directory (default: analysis/ beside the table)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples (default 1000)")
    parser.add_argument("--huber-delta", type=float, default=DEFAULT_HUBER_DELTA,
                        help=f"Huber delta on log residuals (default {DEFAULT_HUBER_DELTA})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    parser.add_argument("--peak-flops", type=float, metavar="FLOP/S",
                        help="peak matmul FLOP/s of the device one run used, for the MFU in the report "
                             "(python -m effdata.bench prints it; a peak_flops column overrides it)")
    parser.add_argument("--notes", type=Path, metavar="FILE",
                        help="Markdown placed at the top of the report (a study's setup and reading)")
    parser.add_argument("--reference-shape", nargs="+", default=[], metavar="NAME",
                        help="where the table holds several shapes at one N: the reference shape of that N (size or "
                             "shape name, e.g. s200k-l4); default: the ladder's shape of that N, else the median depth")
    parser.add_argument("--loss-noise", type=_relative_noise, metavar="SIGMA",
                        help="relative run-to-run noise of the loss to assume for grid points with one seed "
                             "(e.g. 0.01; default: measured from the seeds, else estimated from the from-scratch grid)")
    parser.add_argument("--budget-compare", type=Path, metavar="OTHER_RESULTS",
                        help="another study of the same target with other pretraining budgets (e.g. a fixed token "
                             "budget): fitted the same way, its β set beside this table's, and the fixed-budget β this "
                             "table predicts checked against it (section *Pretraining budget*)")
    args = parser.parse_args(argv)
    try:
        result = analyze(args.results, args.out, compare=args.compare, units=args.units, budget_compare=args.budget_compare,
                         n_bootstrap=args.bootstrap, huber_delta=args.huber_delta, seed=args.seed,
                         peak_flops=args.peak_flops, notes=args.notes.read_text() if args.notes else None,
                         figures=not args.no_figures, loss_noise=args.loss_noise,
                         reference_shapes=args.reference_shape, progress=sys.stderr.isatty())
    except TableError as exc:
        print(f"effdata.analyze: {exc}", file=sys.stderr)
        return 2
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print("\n".join(result["summary"] if "summary" in result else summary_lines(result)))
    print(f"report: {result['paths']['report']}")
    return 0


def _law_line(fit: dict) -> str:
    if not fit["fitted"]:
        return fit["reason"]
    def show(p):
        lo, hi = fit["intervals"].get(p, [None, None])
        return f"{p}={fit[p]:.3g}" + (f" [{lo:.3g}, {hi:.3g}]" if lo is not None else "")
    return ", ".join(show(p) for p in ("k", "alpha", "beta")) + f"  ({fit['n_points']} points, {fit['points']})"


def summary_lines(result: dict) -> list[str]:
    """What the analysis could and could not estimate, one line each: the laws, their sensitivity row, the noise."""
    lines = []
    for name, fit in result["transfer"].items():
        lines.append(f"{name}: {_law_line(fit)}")
        if fit.get("including_extrapolated"):
            lines.append(f"{name} including extrapolated D_E: {_law_line(fit['including_extrapolated'])}")
        for need in fit.get("scratch_runs_needed", []):
            target = f"D ≈ {need['suggested']:.3g}" if need["suggested"] else "beyond the per-N law's reach"
            lines.append(f"  from-scratch run needed at N={need['n_params']:.3g}: {target} "
                         f"(largest now {need['d_scratch_max']:.3g})")
    lines += _budget_lines(result.get("budget"))
    noise = result["interval"].get("noise")
    if noise:
        shared = len({(v["sigma"], v["source"]) for v in noise.values()}) == 1
        parts = {"all": next(iter(noise.values()))} if shared else noise
        lines.append("intervals assume a run-to-run loss noise of " + "; ".join(
            f"{'' if shared else mode + ' runs '}σ={100 * v['sigma']:.2g}% ({v['source']})" for mode, v in parts.items()))
    return lines


def _bracketed(value, interval) -> str:
    return f"{value:.3g}" + (f" [{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "")


def _budget_lines(budget: dict | None) -> list[str]:
    """γ per distribution and table, and the fixed-budget check, one line each."""
    if not budget:
        return []
    lines = []
    for study in budget["studies"]:
        for base, fit in study["fits"].items():
            shown = fit if fit["fitted"] else fit.get("including_extrapolated") or fit
            lines.append(f"budget {base} ({study['role']}): " + (
                f"gamma={_bracketed(shown['gamma'], shown['intervals'].get('gamma'))}, "
                f"beta at fixed P={_bracketed(shown['beta'], shown['intervals'].get('beta'))}  "
                f"({shown['n_points']} points, {shown['points']})" if shown["fitted"] else fit["reason"]))
    for base, check in budget["fixed_budget_checks"].items():
        lines.append(f"fixed-budget beta {base}: " + (check["reason"] if check["reason"] else
                     f"predicted {_bracketed(check['predicted'], check['predicted_interval'])}, measured "
                     f"{_bracketed(check['measured'], check['measured_interval'])}: {check['verdict']}"))
    return lines


if __name__ == "__main__":
    sys.exit(main())
