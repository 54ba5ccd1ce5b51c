"""The analysis pipeline: one table in, every section's numbers, the figures and the report out.

`analyze` reads the table once (`Source`: its name for the report, its rows as read) and passes the
measured table (`Measured`: validated rows, D_E and D_T, the bootstrap) and its fitted laws (`Fitted`) to
each question's folder in turn: transfer/, laws/, budget/, shape/, sweep/; `report.py` writes them out.
`effdata.analyze` is the command line on top of it; the study runner calls `analyze` in-process.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from threadpoolctl import threadpool_limits

from effdata.analysis.audit.audit import audit_table
from effdata.analysis.budget.budget import (
    BudgetStudy,
    comparable_tables,
    compare_budgets,
    study_budget,
)
from effdata.analysis.budget.plots import make_budget_figures
from effdata.analysis.core.bootstrap import (
    NoiseModel,
    Resamples,
    attach_intervals,
    d_t_noise,
    estimate_noise,
    resample_effective,
    seed_spread,
)
from effdata.analysis.core.checkpoints import by_tokens as checkpoints_by_tokens
from effdata.analysis.core.given import read_given_noise
from effdata.analysis.core.runnoise import one_pretraining_per_point
from effdata.analysis.core.effective import EffectiveResult, compute_effective
from effdata.analysis.core.figures import SkippedFigure
from effdata.analysis.core.fit import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_HUBER_DELTA,
    TransferFit,
    fit_transfer,
)
from effdata.analysis.core.table import (
    ResultsTable,
    TableError,
    load_results,
    read_table,
    with_scratch_from,
)
from effdata.analysis.dynamics.dynamics import DynamicsStudy, study_dynamics
from effdata.analysis.dynamics.history import curves_beside, load_curves
from effdata.analysis.dynamics.plots import make_dynamics_figures
from effdata.analysis.laws.plots import make_scratch_figures
from effdata.analysis.laws.scaling import fit_chinchilla, fit_kaplan
from effdata.analysis.report import Analysis, compute_summary, fits_json, write_outputs
from effdata.analysis.shape.compare import analyse_shapes
from effdata.analysis.shape.groups import (
    ShapeGroup,
    find_groups,
    ladder_note,
    ladder_view,
)
from effdata.analysis.shape.plots import make_shape_figures
from effdata.analysis.sweep.plots import plot_sweep
from effdata.analysis.sweep.sweep import (
    analyze_sweep_table,
    is_sweep_table,
    sweep_json,
    sweep_report,
)
from effdata.analysis.sweep.sweep import summary_lines as sweep_summary_lines
from effdata.analysis.transfer.advice import StudyAdvice, study_advice
from effdata.analysis.transfer.plots import make_figures
from effdata.analysis.transfer.pretraining import summarize_pretraining
from effdata.fmt import si
from effdata.paths import atomic_write_json, atomic_write_text




@dataclass(frozen=True)
class Source:
    """A results table as read and loaded once: its name (what the report says it analysed), its rows, and
    the rows validated (`load_results`) with the warnings that gave."""

    name: str
    rows: pd.DataFrame
    table: ResultsTable
    load_warnings: tuple[str, ...]


def _load(name: str, rows: pd.DataFrame, units: str) -> Source:
    """Validate the rows once (TableError when nothing can be analysed); every step after reads `Source.table`."""
    warnings: list[str] = []
    table = load_results(rows, units=units, warnings=warnings)
    return Source(name, rows, table, tuple(warnings))


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
    loss_noise: float | dict[float, float] | None = None   # one sigma, or {data size: sigma}
    pretraining_noise: float | None = None   # a lone pretraining run's shared shift of its fine-tunes (given)
    checkpoint_noise: float | None = None    # and each of its checkpoints' shift of their own beyond it (given)
    noise_from: str | None = None            # the analysis whose measured noise filled those left unset (given.py)
    reference_shapes: tuple[str, ...] = ()
    budget_compare: str | Path | pd.DataFrame | None = None   # another results table: section *Pretraining budget*
    curves: str | Path | pd.DataFrame | None = None   # a learning-curve table: section *Training dynamics*


def analyze(results, out_dir=None, compare: list[str] | None = None, units: str = "chars",
            n_bootstrap: int = DEFAULT_BOOTSTRAP, huber_delta: float = DEFAULT_HUBER_DELTA, seed: int = 0,
            figures: bool = True, progress: bool = False, peak_flops: float | None = None,
            notes: str | None = None, loss_noise: float | dict[float, float] | None = None,
            pretraining_noise: float | None = None,
            reference_shapes: list[str] | tuple[str, ...] = (), budget_compare=None, curves=None,
            checkpoint_noise: float | None = None, noise_from: str | Path | None = None,
            scratch_from: list | tuple = (), by_tokens: list | tuple = ()) -> dict:
    """Analyse a results table (path to CSV/Parquet/JSONL, a study directory, or a DataFrame).

    Returns the fits JSON (as written to fits.json) plus `paths` of what was written. Raises
    TableError only when the table cannot be read at all (missing file or required column);
    every other problem is a warning in the report and in `result["warnings"]`. `loss_noise`: the
    relative noise of one run's loss to assume for single-seed grid points, one number or {data size: sigma} in the
    table's units (default: measured from the seeds, else estimated from the from-scratch grid; bootstrap.py).
    `pretraining_noise`: the relative sd by
    which a pretraining run's seed shifts all its fine-tunes, for sizes pretrained once (measured where a table
    has two or more per size: the report's *Seeds* section; bootstrap.shared_families). `reference_shapes`: size or
    shape names of the reference shape of each N that holds several shapes (analysis/shape.py).
    `budget_compare`: another study of the same target with other pretraining budgets (a path or a
    DataFrame); a TableError, before anything is written, when it cannot be compared (analysis/budget.py).
    `curves`: a learning-curve table (path or DataFrame; default: `curves.csv` beside a results table given
    as a path): the section *Training dynamics* (analysis/dynamics/); without one the report has none.
    `noise_from`: another analysis (its folder or fits.json) of a replicated study of the same setup, whose measured
    noise fills whichever of `loss_noise`, `pretraining_noise` and `checkpoint_noise` are not given (given.py); a
    TableError when it measured none or its units differ. `scratch_from`: other tables (paths or DataFrames) whose
    from-scratch runs stand in at the model sizes this table has none of (a fine-tune-only study read on another's
    curves; `with_scratch_from`), named in the report's title. `by_tokens`: token counts of `[pretrain]
    checkpoint_tokens` checkpoints, each read as one pretraining across sizes (`<corpus>@<count>`;
    core/checkpoints.py), before `scratch_from`.
    """
    if noise_from is not None:
        loss_noise, pretraining_noise, checkpoint_noise = _noise_given_by(noise_from, units, loss_noise,
                                                                          pretraining_noise, checkpoint_noise)
    given = loss_noise.values() if isinstance(loss_noise, dict) else [loss_noise]
    for name, value in [("loss_noise", v) for v in given] + [("pretraining_noise", pretraining_noise),
                                                             ("checkpoint_noise", checkpoint_noise)]:
        if value is not None and not 0 <= value < 1:
            raise ValueError(f"{name} must be a fraction of the loss in [0, 1), e.g. 0.01, not {value}")
    if isinstance(loss_noise, dict) and (not loss_noise or min(loss_noise) <= 0):
        raise ValueError(f"loss_noise per data size needs one or more positive data sizes, not {loss_noise}")
    options = Options(out_dir=Path(out_dir) if out_dir is not None else default_out_dir(results),
                      compare=list(compare) if compare else None, units=units, n_bootstrap=n_bootstrap,
                      huber_delta=huber_delta, seed=seed, figures=figures, progress=progress, peak_flops=peak_flops,
                      notes=notes, loss_noise=loss_noise, pretraining_noise=pretraining_noise,
                      checkpoint_noise=checkpoint_noise, reference_shapes=tuple(reference_shapes),
                      noise_from=str(noise_from) if noise_from is not None else None,
                      budget_compare=budget_compare, curves=curves if curves is not None else curves_beside(results))
    # One BLAS thread for the whole analysis: it is thousands of tiny solves, where OpenBLAS threads only
    # add synchronisation (on a shared 2-core machine they made L-BFGS-B 25x slower: 110 s instead of
    # 15 s for the fit tests). Set at run time, unlike OPENBLAS_NUM_THREADS, which would also change torch
    # in the runner's process.
    with threadpool_limits(1, user_api="blas"):
        raw = read_table(results)   # the only read of this table: every step below gets the DataFrame
        if is_sweep_table(raw):
            refused = [option for option, given in (("--budget-compare", budget_compare is not None),
                                                    ("--scratch-from", bool(scratch_from)),
                                                    ("--checkpoints-by-tokens", bool(by_tokens))) if given]
            if refused:
                raise TableError(f"{refused[0]}: this is a [sweep] study's table (it gets the sweep analysis, "
                                 "which has no transfer law)")
            return analyze_sweep(raw, options.out_dir, units, figures, notes)
        name = _source(results)
        if by_tokens:
            raw = checkpoints_by_tokens(raw, [int(count) for count in by_tokens])
            name = f"{name}, checkpoints at {', '.join(si(count) for count in sorted(by_tokens))} tokens by count"
        if scratch_from:
            raw, lent = with_scratch_from(raw, [(_source(t), read_table(t)) for t in scratch_from])
            name = "; ".join([name, *lent])
        return _analyze(_load(name, raw, units), options)


def _noise_given_by(noise_from, units: str, loss_noise, pretraining_noise, checkpoint_noise) -> tuple:
    """(loss_noise, pretraining_noise, checkpoint_noise): those given, the rest as the analysis at `noise_from`
    measured them."""
    given = read_given_noise(noise_from)
    if given.units != units:
        raise TableError(f"--noise-from {noise_from}: its data sizes are in {given.units}, this analysis's in {units} "
                         f"(--units {given.units})")
    return (loss_noise if loss_noise is not None else given.loss_noise,
            pretraining_noise if pretraining_noise is not None else given.pretraining_noise,
            checkpoint_noise if checkpoint_noise is not None else given.checkpoint_noise)


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


def _measure(source: Source, options: Options) -> Measured:
    """Read the table, D_E and D_T of every fine-tune (each off its own shape's curve), the bootstrap."""
    warnings, table = list(source.load_warnings), source.table
    # The per-N from-scratch curves only serve D_E: without fine-tuned runs their warnings are about curves
    # nothing uses (one per N for published points, whose N differs in almost every row).
    effective = compute_effective(table, warnings if len(table.finetuned) else [])
    names = sorted(effective.table["pretrain"].unique())
    for name in options.compare or []:
        if name not in names:
            warnings.append(f"--compare: no fine-tuned runs pretrained on '{name}' (have {names or 'none'})")
    warnings += compare_warmup_warning(table.pretraining, options.compare)
    warnings += mixed_precision_warning([table.runs, table.pretraining])
    groups, shape_warnings = find_groups([table.runs, table.pretraining], options.reference_shapes)
    warnings += shape_warnings
    if groups:
        table.notes.append(ladder_note(groups))
    noise = estimate_noise(table, effective, options.loss_noise, shared_noise=options.pretraining_noise,
                           given_from=options.noise_from,
                           checkpoint_noise=options.checkpoint_noise)
    resamples = None
    if options.n_bootstrap > 0 and len(effective.table):
        resamples = resample_effective(table, effective, noise, options.n_bootstrap, options.seed)
        attach_intervals(effective.table, resamples)
        if not any(noise.seeded_points.values()) and options.loss_noise is None:
            warnings.append(f"one seed per grid point: the intervals assume a run-to-run loss noise of "
                            f"{100 * noise.sigma['scratch']:.2g}%, estimated, not measured (section *Seeds*)")
        warnings += _lone_pretraining_warning(table, noise)
    return Measured(table, effective, noise, resamples, groups, warnings)


def compare_warmup_warning(pretraining: pd.DataFrame, compare: list[str] | None) -> list[str]:
    """Said when pretrainings compared by name (--compare) warmed up over different steps at one size: a study's
    mid-run checkpoints set its pretrainings' warm-up (docs/METHOD.md §5b), so runs of two studies compared by name
    can differ in it too. The fixed-token ladder's ×1, warmed up over 1-7 steps, against its other multiples over
    368 showed a step in the best pretraining LR that is there at one warm-up and absent at the other
    (analysis/cpu-fixed-tokens/four-layer/NOTES.md)."""
    if not compare or len(compare) < 2 or "warmup_steps" not in pretraining or "pretrain" not in pretraining:
        return []
    rows = pretraining[pretraining["pretrain"].isin(compare)].dropna(subset=["warmup_steps"])
    keys = ["n_params", "size"] if "size" in rows else ["n_params"]
    differ = []
    for key, one in rows.groupby(keys):
        size = key[-1]
        steps = {name: sorted({int(v) for v in runs["warmup_steps"]}) for name, runs in one.groupby("pretrain")}
        if len(steps) > 1 and len({tuple(v) for v in steps.values()}) > 1:
            differ.append(f"{size}: " + ", ".join(f"{name} {'/'.join(map(str, v))}" for name, v in steps.items()))
    if not differ:
        return []
    return [f"--compare: the pretrainings compared warmed up over different steps at {len(differ)} size(s) "
            f"({'; '.join(differ[:3])}{'; ...' if len(differ) > 3 else ''}): their difference is not their name's "
            "alone (a study's mid-run checkpoints, warmup_frac or warmup_max set it: docs/METHOD.md §5b)"]


def mixed_precision_warning(frames: list[pd.DataFrame]) -> list[str]:
    """Said when the table's runs computed in more than one precision (the records' `dtype`). Precision "auto" is
    bf16 only on a CPU with fast bf16 matmul (AVX512-BF16 or AMX) and fp32 elsewhere, so runs of one study file made
    on two machines can differ in it, and nothing else in the table says so: the twenty-sixth session's fp32 runs,
    compared with the ladder's bf16 ones, put precision on the diagonal of a 2×2 of LR and warm-up
    (analysis/cpu-fixed-tokens/four-layer/lr/PREDICTION21.md)."""
    columns = [f["dtype"] for f in frames if "dtype" in f]
    counts = pd.concat(columns).dropna().value_counts() if columns else pd.Series(dtype=int)
    if len(counts) < 2:
        return []
    return [f"the runs computed in {len(counts)} precisions ({', '.join(f'{k}: {v}' for k, v in counts.items())} "
            "runs): precision \"auto\" is bf16 only on a CPU with fast bf16 matmul, so runs made on two machines can "
            "differ in it; a difference between runs of two precisions is not their settings' alone (pin [train] "
            "precision in the study file)"]


def _lone_pretraining_warning(table: ResultsTable, noise: NoiseModel) -> list[str]:
    """Said when every fine-tuned point starts from one pretraining run and no shift was given: then a
    pretraining's seed noise, which moves all its fine-tunes together, is in no interval (two seeds of v4's w100k
    pretraining moved its fine-tunes by up to 6 %: analysis/cpu-pretrain-lr/seed1). Where the fine-tuned points have
    seeds, they are fine-tune seeds of that one run: 0.39 % of the loss where a run's pretraining adds 0.70 % shared,
    0.86 % per checkpoint and 0.72 % per point (analysis/cpu-finetune-seeds). Where only from-scratch points have
    seeds, their noise is lent to the fine-tunes: replicates of v4 so seeded gave per-point D_E intervals 0.45-0.63
    times the spread between them, 1.06-1.13 with the pretraining noise given (benchmarks/replicate_intervals.py
    --borrow-scratch 2 1e5); with no seeds at all, 0.90-1.05 (1.01-1.19 at D_F = 1e4, 0.78-0.81 at 3e4; given the
    noise of the replicates, --noise-from, 1.07-1.17 and 0.90-0.93: docs/METHOD.md §6)."""
    if noise.shared_families or not one_pretraining_per_point(table):
        return []
    own = ("; the seeds of its fine-tuned points share that run too, so their spread, which the intervals use for "
           "fine-tunes, is a fine-tune's own seed alone: under a third of a fine-tune's noise where both were measured "
           "(analysis/cpu-finetune-seeds)" if noise.seeded_points.get("finetune") else
           "; the fine-tunes are re-drawn with the from-scratch seeds' noise, and so seeded (as analysis/cpu-seeds) "
           "v4's per-point intervals of D_E were about half the spread between replicates of the whole study, right "
           "with the measured pretraining noise given (analysis/cpu-replicates, docs/METHOD.md §4)"
           if noise.seeded_points.get("scratch") else "")
    return ["each size's fine-tunes start from one pretraining run: its seed's noise, shared by all of them, is in "
            f"no interval (give it with --pretraining-noise, or --noise-from a replicated study of the same setup, or "
            f"pretrain each size twice: docs/analysis.md){own}"]


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


def _fit_table(source: Source, options: Options) -> Fitted:
    """Measure a table (`_measure`) and fit the transfer law of every pretraining name on its ladder view."""
    measured = _measure(source, options)
    o = options
    ladder, effective, resamples = ladder_view(measured.table, measured.effective, measured.resamples, measured.groups)
    fits = {name: fit_transfer(effective.table, name, ladder.units, n_bootstrap=o.n_bootstrap,
                               huber_delta=o.huber_delta, seed=o.seed, warnings=measured.warnings, progress=o.progress,
                               draws=resamples.d_t if resamples is not None else None)
            for name in sorted(effective.table["pretrain"].unique())}
    return Fitted(measured, ladder, effective, resamples, fits)


def _source(results) -> str:
    return "DataFrame" if isinstance(results, pd.DataFrame) else str(results)


def _compared(source: Source, options: Options) -> Fitted | None:
    """The --budget-compare table, checked (TableError: nothing is written) and fitted as this one is."""
    if options.budget_compare is None:
        return None
    other, name = options.budget_compare, _source(options.budget_compare)
    try:
        loaded = _load(name, read_table(other), options.units)
    except TableError as exc:
        raise TableError(f"--budget-compare: {exc}") from exc
    if is_sweep_table(loaded.rows):
        raise TableError(f"--budget-compare {name}: a [sweep] study's table has no transfer law to compare")
    warnings = comparable_tables(source.rows, source.table, loaded.rows, loaded.table, name)
    fitted = _fit_table(loaded, dataclasses.replace(options, compare=None, reference_shapes=()))
    fitted.measured.warnings[:] = warnings + [f"compared table: {w}" for w in fitted.warnings]
    return fitted


def _budget(source: Source, fitted: Fitted, compared: Fitted | None, options: Options) -> BudgetStudy | None:
    """The section *Pretraining budget*: with a compared table, or when this table knows its budgets."""
    studies = []
    for role, source, table in (("this table", source.name, fitted),
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


def _analyze(source: Source, options: Options) -> dict:
    compared = _compared(source, options)
    fitted = _fit_table(source, options)
    measured, ladder, effective, resamples, fits = (fitted.measured, fitted.ladder, fitted.effective,
                                                    fitted.resamples, fitted.fits)
    warnings, table, o = measured.warnings, measured.table, options
    if compared is not None:
        warnings += compared.warnings
    budget = _budget(source, fitted, compared, o)
    dynamics = _dynamics(source, o, warnings)
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
    audit = audit_table(table, ladder, effective.table, fits, kaplan, chinchilla, budget,
                        resamples.d_t if resamples is not None else None, o.seed, effective.curves)
    warnings[:0] = audit.warnings     # what the answers rest on opens the report
    pretraining = summarize_pretraining(ladder.pretraining)
    drawn = _figures(o, effective, fits, ladder, pretraining, kaplan, chinchilla, shapes, budget, dynamics)
    warnings += [f"figure {f.name} failed: {f.reason}" for f in drawn
                 if isinstance(f, SkippedFigure) and f.reason.startswith("plotting failed")]
    analysis = Analysis(source=source.name, results=table,
                        effective=measured.effective, fits=fits, kaplan=kaplan, figures=drawn, compare=o.compare,
                        n_bootstrap=o.n_bootstrap, huber_delta=o.huber_delta, warnings=warnings,
                        compute=compute_summary(source.rows, o.peak_flops), notes=o.notes,
                        noise=measured.noise if resamples is not None else None, seed_spread=seed_spread(table),
                        d_t_noise=noise_by_d_f, pretraining=pretraining, advice=advice, chinchilla=chinchilla,
                        ladder=effective if measured.groups else None, shapes=shapes, budget=budget,
                        audit=audit, dynamics=dynamics)
    paths = write_outputs(analysis, o.out_dir)
    result = fits_json(analysis)
    result["paths"] = {name: str(path) for name, path in paths.items()}
    return result


def _dynamics(source: Source, options: Options, warnings: list[str]) -> DynamicsStudy | None:
    """The section *Training dynamics* when there is a curve table (read here, validated against this table's
    rows; a TableError when it cannot be read, as for the results table)."""
    if options.curves is None:
        return None
    curves = load_curves(options.curves, source.rows)
    warnings.extend(f"curves: {w}" for w in curves.warnings)
    return study_dynamics(curves, _source(options.curves), options.n_bootstrap, options.seed)


def _figures(o: Options, effective, fits, ladder, pretraining, kaplan, chinchilla, shapes, budget,
             dynamics=None) -> list:
    if not o.figures:
        return [SkippedFigure("all", "figures disabled (--no-figures)")]
    drawn = make_figures(effective, fits, ladder.runs, o.out_dir, compare=o.compare, seed_runs=ladder.seed_runs,
                         pretraining=pretraining)
    drawn += make_scratch_figures(ladder.scratch, ladder.units, kaplan, chinchilla, o.out_dir)
    if shapes is not None:
        drawn += make_shape_figures(shapes, o.out_dir)
    if budget is not None:
        drawn += make_budget_figures(budget, o.out_dir)
    if dynamics is not None:
        drawn += make_dynamics_figures(dynamics, o.out_dir)
    return drawn


