"""The Markdown report and the JSON of the fits.

The report opens with every warning collected on the way (nothing silent), then the fitted law
with intervals beside the paper (the headline on interpolated D_E, the row including extrapolated
ones beside it), the held-out check, the pretraining budget (budget_report.py: β under each budget, γ, the
fixed-budget check), the seeds' noise and what it does to D_T, the pretraining runs,
study design advice, the from-scratch laws (Kaplan and Chinchilla forms side by side), the figures and
the per-run table with its flags and intervals. A table with only from-scratch runs gets no transfer
section (said once): its report is the from-scratch laws.

Why one module of ~520 lines: one document, one function per section; splitting it would scatter the
order of the report, which is what a reader of this module wants to see.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from effdata.analysis.audit.audit import Audit, audit_json
from effdata.analysis.audit.report import audit_section
from effdata.analysis.budget.budget import BudgetStudy
from effdata.analysis.budget.report import budget_section
from effdata.analysis.core.bootstrap import MODES, NoiseByData, NoiseModel, noise_by_data
from effdata.analysis.core.runnoise import RunNoise, measure_run_noise
from effdata.analysis.core.effective import FLAG_NAMES, EffectiveResult
from effdata.analysis.core.figures import UNIT_WORDS, SavedFigure, SkippedFigure
from effdata.analysis.core.fit import (
    EXTRAPOLATION_MARGIN,
    HEADLINE_MIN_SHARE,
    MIN_FIT_POINTS,
    PAPER_TRANSFER,
    TransferFit,
    jsonable,
)
from effdata.analysis.core.markdown import fmt_interval, markdown_table
from effdata.analysis.core.table import ResultsTable
from effdata.analysis.dynamics.dynamics import DynamicsStudy
from effdata.analysis.dynamics.report import dynamics_section
from effdata.analysis.laws.scaling import (
    PAPER_CHINCHILLA,
    PAPER_KAPLAN,
    ChinchillaFit,
    KaplanFit,
)
from effdata.analysis.plan.planner import transfer_ranges
from effdata.analysis.shape.compare import ShapeStudy, shape_blocks
from effdata.analysis.shape.report import shape_section
from effdata.analysis.transfer.advice import StudyAdvice
from effdata.analysis.transfer.pretraining import PretrainingSummary
from effdata.fmt import compact, sig
from effdata.paths import atomic_write_json, atomic_write_text

FLAG_GLOSSARY = {
    "extrapolated": "D_E read off the per-N law L_∞ + A·D^(−b) outside the measured from-scratch range",
    "beyond_reach": "fine-tuned loss below the law's L_∞ (D_E = ∞), or no law to extrapolate with: not fitted",
    "ossified": "D_T ≤ 0: no better than from scratch on the same data (kept, reported, not in the log fit)",
    "low_data": "D_F ≤ 10% of D(N), the data a from-scratch model of size N needs to reach 1.01·L_∞",
    "no_scratch": "no from-scratch runs of the same N: D_E cannot be measured",
}


@dataclass
class Analysis:
    """Everything the report shows; `analyze` fills it."""

    source: str
    results: ResultsTable
    effective: EffectiveResult
    fits: dict[str, TransferFit]
    kaplan: KaplanFit
    figures: list[SavedFigure | SkippedFigure]
    compare: list[str] | None
    n_bootstrap: int
    huber_delta: float
    warnings: list[str] = field(default_factory=list)
    compute: dict | None = None
    notes: str | None = None          # the study's own words (--notes FILE), shown first
    noise: NoiseModel | None = None   # how the bootstrap re-drew single-seed points (None: no bootstrap)
    seed_spread: pd.DataFrame | None = None      # bootstrap.seed_spread
    d_t_noise: pd.DataFrame | None = None        # bootstrap.d_t_noise
    pretraining: PretrainingSummary = field(default_factory=PretrainingSummary)
    advice: StudyAdvice = field(default_factory=StudyAdvice)
    chinchilla: ChinchillaFit | None = None
    ladder: EffectiveResult | None = None   # one shape per N, what the laws use (None: `effective` itself)
    shapes: ShapeStudy | None = None         # several shapes at one N (analysis/shape_compare.py)
    budget: BudgetStudy | None = None        # pretraining budgets, and a compared table's (analysis/budget.py)
    audit: Audit | None = None               # what each answer rests on (analysis/audit/)
    dynamics: DynamicsStudy | None = None    # learning curves, where the table has a curve table beside it
    run_noise: RunNoise | None = None        # runnoise.measure_run_noise of `results` (measured here if not given)
    noise_by_data: list[NoiseByData] | None = None   # bootstrap.noise_by_data per mode (measured here if not given)

    def __post_init__(self) -> None:
        if self.run_noise is None:
            self.run_noise = measure_run_noise(self.results)
        if self.noise_by_data is None:
            self.noise_by_data = [noise_by_data(self.results, mode) for mode in MODES]

    @property
    def law_view(self) -> EffectiveResult:
        return self.ladder if self.ladder is not None else self.effective


def compute_summary(raw, peak_flops: float | None = None) -> dict | None:
    """Training compute of the finished runs by mode, from the `flops` and `wall_time` columns, and where
    their time went by mode and size (`time`), from the `time_*` columns when the table has them.

    Model-FLOPs utilisation needs the peak FLOP/s of the device one run used: a `peak_flops`
    column (per run) or `peak_flops` given by the caller (measured with `python -m effdata.bench`).
    """
    if "flops" not in raw or "wall_time" not in raw:
        return None
    ok = raw[(raw["status"] == "ok") if "status" in raw else np.ones(len(raw), bool)]
    ok = ok[np.isfinite(ok["flops"].astype(float)) & np.isfinite(ok["wall_time"].astype(float))]
    if not len(ok):
        return None
    modes = ok["mode"] if "mode" in ok else np.where(ok["pretrain"] == "none", "scratch", "finetune")
    per_run_peak = ok["peak_flops"].astype(float) if "peak_flops" in ok else None
    summary = {"by_mode": {}, "peak_flops": peak_flops,
               "peak_source": "per-run column peak_flops" if per_run_peak is not None else
               ("given (--peak-flops)" if peak_flops else None)}
    for mode in ["pretrain", "scratch", "finetune", "all"]:
        rows = ok if mode == "all" else ok[np.asarray(modes) == mode]
        if not len(rows):
            continue
        flops, wall = float(rows["flops"].sum()), float(rows["wall_time"].sum())
        if "branch_flops" in rows:  # a pretraining run's mid-run checkpoints: computed beside its own `flops`
            flops += float(rows["branch_flops"].fillna(0.0).sum())
        entry = {"runs": int(len(rows)), "flops": flops, "run_seconds": wall,
                 "flops_per_second": flops / wall if wall > 0 else None}
        if per_run_peak is not None:
            entry["mfu"] = flops / float((rows["wall_time"] * per_run_peak.loc[rows.index]).sum())
        elif peak_flops:
            entry["mfu"] = flops / (wall * peak_flops) if wall > 0 else None
        summary["by_mode"][mode] = entry
    summary["time"] = _time_rows(ok, np.asarray(modes))
    return summary


TIME_PARTS = ("setup", "compile", "steps", "evals", "test", "checkpoint", "branches", "other")  # train.py's time_*


def _time_rows(ok, modes: np.ndarray) -> list[dict] | None:
    """Per (mode, size) and per mode: runs, wall seconds, seconds per part of a run, and the token rates
    of the training steps alone and end to end. None when the table has no `time_*` columns."""
    if "time_steps" not in ok or "tokens_seen" not in ok:
        return None
    sizes = np.asarray(ok["size"].astype(str) if "size" in ok else np.full(len(ok), ""))
    by_n = dict(zip(sizes, ok["n_params"])) if "n_params" in ok else {}
    order = sorted(set(sizes), key=lambda z: (by_n.get(z, 0), z))
    groups = [(m, z) for m in ["pretrain", "scratch", "finetune"] for z in [*order, "all"]]
    rows = []
    for mode, size in groups:
        pick = (modes == mode) & ((sizes == size) | (size == "all"))
        rows_ = ok[pick]
        if not len(rows_) or (size == "all" and len(set(sizes[pick])) < 2):
            continue
        tokens, wall = float(rows_["tokens_seen"].sum()), float(rows_["wall_time"].sum())
        steps = float(rows_["time_steps"].sum())
        rows.append({"mode": mode, "size": size, "runs": int(len(rows_)), "wall_seconds": wall,
                     "seconds": {part: float(rows_[f"time_{part}"].sum()) for part in TIME_PARTS
                                 if f"time_{part}" in rows_},
                     "step_tokens_per_s": tokens / steps if steps > 0 else None,
                     "tokens_per_s": tokens / wall if wall > 0 else None})
    return rows


def _compute_section(compute: dict) -> list[str]:
    rows = [[mode, str(e["runs"]), sig(e["flops"]), f"{e['run_seconds'] / 60:.1f}", sig(e["flops_per_second"]),
             f"{100 * e['mfu']:.1f}%" if e.get("mfu") is not None else "—"]
            for mode, e in compute["by_mode"].items()]
    lines = ["## Compute", "",
             "Training FLOPs of the finished runs (`flops`: tokens × (6·(N + d_model·V) + attention), evaluation not "
             "counted), the sum of their wall times (run-minutes: parallel runs add up) and the rate achieved.", "",
             markdown_table(["runs", "count", "training FLOPs", "run-minutes", "FLOP/s per run", "MFU"], rows), ""]
    if compute.get("peak_source"):
        peak = f" ({sig(compute['peak_flops'])} FLOP/s)" if compute.get("peak_flops") else ""
        lines += [f"MFU against the peak matmul rate: {compute['peak_source']}{peak}.", ""]
    else:
        lines += ["MFU: no peak FLOP/s given (`--peak-flops`, measured by `python -m effdata.bench`).", ""]
    if compute.get("time"):
        lines += _time_section(compute["time"])
    return lines


def _time_section(rows: list[dict]) -> list[str]:
    parts = [p for p in TIME_PARTS if any(p in r["seconds"] for r in rows)]
    table = [[r["mode"], r["size"], str(r["runs"]), f"{r['wall_seconds'] / 60:.1f}",
              *[f"{100 * r['seconds'].get(p, 0.0) / r['wall_seconds']:.0f}%" if r["wall_seconds"] > 0 else "—"
                for p in parts],
              f"{r['step_tokens_per_s']:,.0f}" if r["step_tokens_per_s"] else "—",
              f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "—"] for r in rows]
    header = ["runs", "size", "count", "run-minutes", *parts, "steps tok/s", "end-to-end tok/s"]
    return ["Where the run time went: the share of the run-minutes in setting up (data, model), compiling, the "
            "training steps, held-out evaluations, the test pass and checkpoints; the steps' own token rate "
            "(what `python -m effdata.bench` measures) beside the rate end to end.", "",
            markdown_table(header, table), ""]


def _sigma_by_n(noise, mode: str) -> dict:
    """fits.json's `sigma_by_n` for a mode whose noise is measured per N, `sigma_by_data` for one given per data size
    (none otherwise), in order."""
    if mode in noise.by_data:
        return {"sigma_by_data": [{"data": d, "sigma": sd} for d, sd in sorted(noise.by_data[mode].items())]}
    if mode not in noise.by_n:
        return {}
    return {"sigma_by_n": [{"n_params": n, "sigma": sd} for n, sd in sorted(noise.by_n[mode].items())]}


def fits_json(analysis: Analysis) -> dict:
    """The machine-readable result: every fit in one shape (`fitted` false, with the `reason`, and null
    parameters when it could not be fitted), paper values, warnings."""
    figures = [{"name": f.name, "png": f.png.name, "svg": f.svg.name} if isinstance(f, SavedFigure)
               else {"name": f.name, "skipped": f.reason} for f in analysis.figures]
    transfer = {name: fit.to_dict() for name, fit in analysis.fits.items()}
    table = analysis.effective.table
    return jsonable({
        "source": analysis.source,
        "units": analysis.effective.units,
        "interval": {"kind": "bootstrap percentile over runs", "percentiles": [5, 95],
                     "n_resamples": analysis.n_bootstrap,
                     "resample": _resample_words(analysis.noise),
                     "noise": ({mode: {"sigma": analysis.noise.sigma[mode], "source": analysis.noise.source[mode],
                                       "seeded_points": analysis.noise.seeded_points.get(mode, 0),
                                       **_sigma_by_n(analysis.noise, mode)}
                                for mode in analysis.noise.sigma} if analysis.noise else None),
                     "pretraining_noise_given": (analysis.noise.shared or None) if analysis.noise else None,
                     # Only when given: the fits.json of every other table stays as it was.
                     **({"checkpoint_noise_given": analysis.noise.checkpoint_shared}
                        if analysis.noise and analysis.noise.checkpoint_shared else {}),
                     **({"noise_from": analysis.noise.given_from} if analysis.noise and analysis.noise.given_from
                        else {})},
        "huber_delta": analysis.huber_delta,
        "transfer": transfer,
        "paper_transfer": PAPER_TRANSFER,
        "kaplan": analysis.kaplan.to_dict(),
        "paper_kaplan": PAPER_KAPLAN,
        "chinchilla": analysis.chinchilla.to_dict() if analysis.chinchilla else None,
        "paper_chinchilla": PAPER_CHINCHILLA,
        "transfer_ranges": transfer_ranges(analysis.law_view.table, analysis.fits),   # what the planner marks extrapolation against
        "shape": shape_blocks(analysis.shapes) if analysis.shapes else None,   # the planner's shape comparisons
        "shape_study": analysis.shapes.to_dict() if analysis.shapes else None,
        "budget": analysis.budget.to_dict() if analysis.budget else None,
        "audit": audit_json(analysis.audit) if analysis.audit else None,
        "input_notes": analysis.results.notes,
        "vocab_size": _vocab_size(analysis.results),     # the planner refuses losses above a uniform guess
        "counts": {"runs": int(len(analysis.results.runs)), "scratch": int(len(analysis.results.scratch)),
                   "finetuned": int(len(table)), "set_aside": int(len(analysis.results.set_aside)),
                   **{flag: int(table[flag].sum()) if len(table) else 0 for flag in FLAG_NAMES}},
        "compare": analysis.compare,
        "compute": analysis.compute,
        "seed_spread": _records(analysis.seed_spread),
        "pretraining_noise": _records(analysis.run_noise.pretraining),
        "d_t_noise": _records(analysis.d_t_noise),
        "pretraining": {"runs": _records(analysis.pretraining.table), "readings": analysis.pretraining.readings},
        "advice": {"suggestions": [asdict(s) for s in analysis.advice.suggestions], "notes": analysis.advice.notes},
        "figures": figures,
        "warnings": analysis.warnings,
        # Only with a curve table: a table without one keeps the fits.json it always had.
        **({"dynamics": analysis.dynamics.to_dict()} if analysis.dynamics else {}),
        # Only where fine-tunes of one pretraining run share a point (the same reason).
        **_own_seed_json(analysis.run_noise),
        # Only where seeds measure the noise at two or more data sizes (the same reason).
        **_noise_by_data_json(analysis.noise_by_data),
    })


def _noise_by_data_json(by_data: list[NoiseByData]) -> dict:
    measured = [b for b in by_data if len(b.sigma) >= 2]
    if not measured:
        return {}
    return {"noise_by_data": [{"mode": b.mode, "p_value": b.p_value, "unseeded": list(b.unseeded),
                               "sizes": [{"data": d, "sigma": s, "dof": b.dof[d]} for d, s in b.sigma.items()]}
                              for b in measured]}


def _resample_words(noise: NoiseModel | None) -> str:
    """fits.json's `interval.resample`: what each resample re-draws, in words."""
    words = ("seeds re-drawn within every grid point (from scratch and fine-tuned), curves re-built, D_E and D_T "
             "re-read, law refitted with its lack of fit")
    if noise and noise.pretraining:
        per_checkpoint = " and per checkpoint of a run" if noise.pooled and noise.pooled[1] else ""
        words += (f"; fine-tunes of a size pretrained two or more times re-drawn together (a shared shift per "
                  f"size{per_checkpoint}, pooled)")
    if noise and noise.shared_families:
        words += "; each lone pretraining run's fine-tunes shifted together by the given pretraining noise"
        words += ", each of its checkpoints' by the given checkpoint noise" if noise.checkpoint_shared else ""
    return words


def _own_seed_json(noise: RunNoise) -> dict:
    if noise.own.empty:
        return {}
    return {"own_seed_noise": _records(noise.own), "pretraining_interaction": noise.interaction}


def _vocab_size(results: ResultsTable) -> int | None:
    """The vocabulary every run shares (None when the table does not say, or its runs differ)."""
    rows = results.seed_runs
    values = rows["vocab_size"].dropna().unique() if "vocab_size" in rows else []
    return int(values[0]) if len(values) == 1 else None


def _records(frame: pd.DataFrame | None) -> list[dict]:
    return [] if frame is None else frame.to_dict(orient="records")


def _fit_row(fit: TransferFit, label: str, paper_cell: str) -> list[str]:
    if not fit.fitted:
        return [label, fit.reason, "", "", "", "", "", "", paper_cell]
    heldout = " / ".join(f"×{sig(h.error_factor)}" if h.error_factor else "—"
                         for h in (fit.heldout["n_params"], fit.heldout["d_f"]))
    points = f"{fit.n_points} ({fit.regime.replace('_', ' ')}; {fit.n_extrapolated} extrap.)"
    scatter = (f"{sig(fit.lack_of_fit, 2)} / {sig(fit.noise_scatter, 2)}" if fit.lack_of_fit is not None else "—")
    return [label, fmt_interval(fit, "k"), fmt_interval(fit, "alpha"), fmt_interval(fit, "beta"), points,
            f"{sig(fit.r2_log)} / {sig(fit.rmse_log)}", scatter, heldout, paper_cell]


def _fit_rows(fits: list[TransferFit], units: str) -> list[list[str]]:
    """The headline row of each pretraining name, and its including-extrapolated row below it."""
    rows = []
    for fit in fits:
        paper = fit.paper()
        paper_cell = (f"k={sig(paper['k'])}, α={paper['alpha']}, β={paper['beta']}" if paper else "—")
        rows.append(_fit_row(fit, f"**{fit.pretrain}**", paper_cell))
        if fit.including_extrapolated is not None:
            rows.append(_fit_row(fit.including_extrapolated, f"{fit.pretrain}, including extrapolated", ""))
    return rows


def _sensitivity_lines(fit: TransferFit) -> list[str]:
    """How far the including-extrapolated row lies from the headline, or why there is no headline."""
    other = fit.including_extrapolated
    lines = []
    if fit.fitted and other is not None and other.fitted:
        shifts = []
        for label, name in (("α", "alpha"), ("β", "beta")):
            interval = fit.intervals.get(name)
            width = f", {abs(getattr(other, name) - getattr(fit, name)) / (interval[1] - interval[0]):.2g}× the " \
                    "headline's 90% interval" if interval and interval[1] > interval[0] else ""
            shifts.append(f"{label} {sig(getattr(fit, name))} → {sig(getattr(other, name))}{width}")
        shifts.append(f"k ×{sig(other.k / fit.k, 2)}")
        lines.append(f"- `{fit.pretrain}`: with the {other.n_extrapolated} extrapolated D_E the law moves "
                     f"{'; '.join(shifts)}. A sensitivity check only: extrapolated D_E are biased low.")
    elif not fit.fitted and other is not None:
        lines.append(f"- `{fit.pretrain}`: no headline law ({fit.reason.removeprefix('not fitted ')}). The row including "
                     "extrapolated D_E is shown as a sensitivity check, not as a result.")
    needs = [f"N = {compact(n['n_params'])}: D = {compact(n['suggested'])}" if n["suggested"] else
             f"N = {compact(n['n_params'])}: past the per-N law's reach" for n in fit.scratch_runs_needed]
    if needs:
        lines.append(f"- `{fit.pretrain}`: from-scratch runs that reach the lowest fine-tuned loss of each N "
                     f"(≥ {EXTRAPOLATION_MARGIN:g}× the extrapolated D_E, or the top of its interval): {'; '.join(needs)} "
                     f"({fit.units}).")
    if fit.nonpositive_draws > 0.01:
        lines.append(f"- `{fit.pretrain}`: {100 * fit.nonpositive_draws:.0f}% of the re-drawn D_T were ≤ 0 (noise "
                     "alone ossified them); they leave their resample, as ossified runs leave the fit.")
    return lines


def _transfer_section(analysis: Analysis) -> list[str]:
    units = analysis.effective.units
    noise = analysis.noise
    lines = ["## Transfer law D_T = k · D_F^α · N^β", "",
             f"Fitted in log space with a summed Huber loss (δ = {analysis.huber_delta}) and multi-start L-BFGS-B; "
             f"D in {UNIT_WORDS[units]}. **Headline** (bold): fitted on the points whose D_E is read inside the "
             f"measured from-scratch range, when there are ≥ {MIN_FIT_POINTS} of them over ≥ 2 N and ≥ 2 D_F and they "
             f"are at least {HEADLINE_MIN_SHARE:.0%} of the points; the row *including extrapolated* D_E is a "
             "sensitivity check (extrapolated D_E are biased low).", "",
             f"Intervals: 5th–95th percentiles over {analysis.n_bootstrap} resamples of the runs. Each resample "
             "re-draws every grid point's loss, from scratch and fine-tuned (its seeds, with replacement; a "
             "single-seed point with the noise below), re-builds each N's from-scratch curve, re-reads every D_E "
             "and D_T and refits the law, adding the scatter about the law that the runs' noise does not explain "
             "(column *scatter*: that lack of fit τ / the noise's own scatter, both in log D_T). Held-out: the law "
             "is refitted without one N (or one D_F) at a time and predicts the held-out D_T; the figure is the "
             "geometric mean error factor.", ""]
    if noise is not None:
        lines += [f"Noise of one run's loss: {noise.describe()}."] + (
            [f"Pretraining runs: {noise.describe_pretraining()} (section *Seeds*)."] if noise.describe_pretraining()
            else []) + [""]
    if units != "chars":
        lines += ["*The paper's k is for D in characters; with tokens only α and β are comparable.*", ""]
    header = ["pretrain", "k [90% CI]", "α [90% CI]", "β [90% CI]", "points (regime)", "R² / RMSE (log)",
              "scatter τ / noise (log)", "held-out error (leave N / leave D_F)", "paper (Hernandez et al. 2021)"]
    lines += [markdown_table(header, _fit_rows(list(analysis.fits.values()), units)) if analysis.fits
              else "No fine-tuned runs: nothing to fit.", ""]
    for fit in analysis.fits.values():
        lines += _sensitivity_lines(fit)
        if fit.n_ossified:
            lines += [f"- `{fit.pretrain}`: {fit.n_ossified} ossified run(s) (D_T ≤ 0) are outside the log fit; "
                      "see the per-run table."]
    return lines + [""]


def _seed_section(analysis: Analysis) -> list[str]:
    """Measured seed noise per mode and N, and what the runs' noise does to D_T at each D_F."""
    lines = ["## Seeds: the runs' noise and what it does to D_T", ""]
    spread = analysis.seed_spread
    seeded = spread[spread["seeded_points"] > 0] if spread is not None and len(spread) else None
    if seeded is None or seeded.empty:
        source = analysis.noise.describe() if analysis.noise else "no bootstrap"
        lines += [f"One seed per grid point: the seed-to-seed spread is not measured. The intervals assume {source}.", ""]
    else:
        rows = [[("from scratch" if r.mode == "scratch" else f"fine-tuned from {r.pretrain}"),
                 sig(r.n_params) + (f" ({r.shape})" if analysis.shapes and r.shape else ""),
                 f"{r.seeded_points} of {r.grid_points}", sig(r.seeds), sig(r.sd, 2), f"{100 * r.relative:.2g}%"]
                for r in seeded.itertuples()]
        lines += ["Seed-to-seed spread of the loss (pooled over the grid points of that N with ≥ 2 seeds):", "",
                  markdown_table(["runs", "N", "grid points with seeds", "seeds at those points", "sd (nats)",
                                   "sd / loss"], rows), ""]
        lines += _unseeded_lines(spread, analysis)
        lines += _by_data_lines(analysis.noise_by_data, analysis.results.units)
    lines += _pretraining_seed_lines(analysis)
    noise = analysis.d_t_noise
    if noise is not None and len(noise):
        units = analysis.effective.units
        rows = [[r.pretrain, sig(r.d_f), str(r.points), f"±{100 * r.half_width:.0f}%" if np.isfinite(r.half_width) else "—",
                 f"{100 * r.scratch_share:.0f}%" if np.isfinite(r.scratch_share) else "—", f"{100 * r.nonpositive:.1f}%"]
                for r in noise.itertuples()]
        lines += [f"What the runs' noise does to D_T (medians over N of each point's 90% interval; D_F in {units}):", "",
                  markdown_table(["pretrain", "D_F", "points", "D_T 90% interval (half width / D_T)",
                                   "share from the from-scratch curve", "resamples with D_T ≤ 0"], rows), ""]
    return lines


def _pretraining_seed_lines(analysis: Analysis) -> list[str]:
    """Where sizes were pretrained two or more times: how much of a fine-tune's noise its pretraining run shares
    with its other fine-tunes (`runnoise.pretraining_noise`)."""
    table = analysis.run_noise.pretraining
    if table.empty:
        return []
    split = table["checkpoint"].notna().any()
    rows = [["all of the above" if r.pretrain == "all" else r.pretrain, "" if r.pretrain == "all" else sig(r.n_params),
             str(r.runs), str(r.points), f"{100 * r.shared:.2g}%"]
            + ([f"{100 * r.checkpoint:.2g}%" if np.isfinite(r.checkpoint) else "—"] if split else [])
            + [f"{100 * r.per_point:.2g}%", f"{r.p_value:.2g}"]
            + ([f"{r.checkpoint_p:.2g}" if np.isfinite(r.checkpoint_p) else "—"] if split else [])
            for r in table.itertuples()]
    noise = analysis.noise
    per_checkpoint = ", one per checkpoint of a run," if noise and noise.pooled and noise.pooled[1] else ""
    redrawn = (f"the bootstrap re-draws each size's fine-tunes with one shift per size{per_checkpoint} and resample "
               "from the pooled parts (*all of the above*)" if noise and noise.pretraining else
               "the bootstrap re-drew these fine-tunes one point at a time")
    checkpoint = ("; *checkpoint*, the sd of the shift a run's checkpoint (its final model, `@10tpp`, ...: another "
                  "model) shares among its own fine-tunes beyond that, with its *p*" if split else "")
    return ["A pretraining run's seed, shared by all its fine-tunes (sizes pretrained two or more times; the fine-tuned "
            "points every run has, checkpoints of a run counted as that run; analysis of variance of log loss): "
            f"*shared*, the sd of a run's common shift{checkpoint}; *per point*, the sd of the rest; *p*, the chance of "
            f"so large a part with none. {redrawn[0].upper()}{redrawn[1:]}.", "",
            markdown_table(["pretraining", "N", "runs", "points", "shared"] + (["checkpoint"] if split else [])
                           + ["per point", "p"] + (["checkpoint p"] if split else []), rows), ""
            ] + _own_seed_lines(analysis)


def _own_seed_lines(analysis: Analysis) -> list[str]:
    """Where fine-tunes of one pretraining run share a point (beside sizes pretrained several times): the fine-tune's
    own seed noise, and what it leaves of the per-point part (`runnoise.pretraining_interaction`)."""
    own, split = analysis.run_noise.own, analysis.run_noise.interaction
    if split is None:
        return []
    rows = [["all of the above" if r.pretrain == "all" else r.pretrain, "" if r.pretrain == "all" else sig(r.n_params),
             str(r.cells), str(r.fine_tunes), f"{100 * r.own:.2g}%"] for r in own.itertuples()]
    return ["A fine-tune's own seed (fine-tunes of one pretraining run at one point, which differ in their seed "
            "alone; sd of log loss pooled within each (run, point)):", "",
            markdown_table(["pretraining", "N", "(run, point) cells", "fine-tunes", "own seed"], rows), "",
            f"Of the per-point part above ({100 * split['per_point']:.2g}%, over each run's mean at a point), the "
            f"fine-tune's own seed accounts for {100 * split['own_in_per_point']:.2g}%; the rest is a pretraining's "
            f"effect that differs between points the shifts above do not tie together (the D_F of one checkpoint): "
            f"{100 * split['interaction']:.2g}% (p = {split['p_value']:.2g}, the chance of so large a rest with none). "
            "The bootstrap draws both in its per-point part.", ""]


def _by_data_lines(by_data: list[NoiseByData], units: str) -> list[str]:
    """The same spread by data size, every N pooled, where seeds measure it at two or more sizes: the bootstrap lends
    one sigma (or one per N) to single-seed points at every size, so this says where that may be wrong."""
    parts = [f"{'from scratch' if b.mode == 'scratch' else 'fine-tuned'} "
             + ", ".join(f"{100 * s:.2g}% at {compact(d)}" for d, s in b.sigma.items())
             + f" (Bartlett's test of one sd for every size: p = {b.p_value:.2g}"
             + (f"; no seeds at {', '.join(compact(d) for d in b.unseeded)}" if b.unseeded else "") + ")"
             for b in by_data if len(b.sigma) >= 2]
    if not parts:
        return []
    return [f"By data size ({units}; every N pooled; the bootstrap does not model it): " + "; ".join(parts) + ".", ""]


def _unseeded_lines(spread: pd.DataFrame, analysis: Analysis) -> list[str]:
    """One line for the runs with a single seed at every grid point (a table row each would say nothing)."""
    grouped = spread.groupby(["mode", "pretrain"], sort=True)["seeded_points"].sum()
    names = [("from scratch" if mode == "scratch" else f"fine-tuned from {pretrain}")
             for (mode, pretrain), seeded in grouped.items() if seeded == 0]
    if not names:
        return []
    source = analysis.noise.describe() if analysis.noise else "no bootstrap"
    return [f"One seed at every grid point (not measured; the intervals assume {source}): {', '.join(names)}.", ""]


def _pretraining_section(analysis: Analysis) -> list[str]:
    summary = analysis.pretraining
    lines = ["## Pretraining runs", ""]
    if summary.table.empty:
        return lines + ["The table has no pretraining rows (`mode == pretrain`).", ""]
    rows = [[r.pretrain, r.size if isinstance(r.size, str) else "", sig(r.n_params), sig(r.tokens_seen),
             sig(r.tokens_per_param), sig(r.own_loss, 4), sig(r.target_loss, 4), sig(r.flops)]
            for r in summary.table.itertuples()]
    lines += ["Every pretraining run, the input the fine-tunes start from: tokens seen, tokens per parameter, its "
              "loss on its own held-out distribution (`pretrain_valid_loss`) and the target loss it starts "
              "fine-tuning from (its `loss`).", "",
              markdown_table(["pretrain", "size", "N", "tokens seen", "tokens / parameter", "own held-out loss",
                               "target loss at start", "FLOPs"], rows), ""]
    lines += [f"- `{name}`: {reading}" for name, reading in summary.readings.items()] + [""]
    return lines


def _advice_section(analysis: Analysis) -> list[str]:
    advice = analysis.advice
    lines = ["## Study design advice", ""]
    if not advice.suggestions and not advice.notes:
        return lines + ["Nothing to add: every law is fitted on measured D_E with intervals narrower than the "
                        "thresholds below.", ""]
    if advice.suggestions:
        total = (analysis.compute or {}).get("by_mode", {}).get("all", {}).get("flops")
        rows = [[s.runs, s.why, sig(s.flops) + (f" ({100 * s.flops / total:.2g}% of this study)" if total else "")
                 if s.flops is not None else "—"] for s in advice.suggestions]
        lines += ["Runs that would tighten the fits, cheapest first (cost: training FLOPs, from this table's runs "
                  "of the same grid point; a larger from-scratch run scaled in proportion to D):", "",
                  markdown_table(["runs", "why", "cost (FLOPs)"], rows), ""]
    lines += [f"- {note}" for note in advice.notes]
    return lines + [""]


def _comparison_section(analysis: Analysis) -> list[str]:
    """`--compare a b`: the named distributions side by side, each beside its paper row."""
    names = analysis.compare or []
    header = ["", *names]
    def cell(name, getter):
        fit = analysis.fits.get(name)
        if fit is None:
            return "no runs"
        return getter(fit) if fit.fitted else "not fitted"
    rows = []
    for label, parameter in (("k", "k"), ("α", "alpha"), ("β", "beta")):
        rows.append([f"{label} (fitted, 90% CI)", *[cell(n, lambda f, p=parameter: fmt_interval(f, p)) for n in names]])
        rows.append([f"{label} (paper)", *[sig(PAPER_TRANSFER[n][parameter]) if n in PAPER_TRANSFER else "—"
                                         for n in names]])
    rows.append(["points in fit", *[cell(n, lambda f: str(f.n_points)) for n in names]])
    rows.append(["ossified runs", *[str(analysis.fits[n].n_ossified) if n in analysis.fits else "—" for n in names]])
    table = analysis.law_view.table
    for d_f in sorted(set(table.loc[table["pretrain"].isin(names), "d_f"]))[:6]:
        def median_multiplier(name, d_f=d_f):
            values = table.loc[(table["pretrain"] == name) & (table["d_f"] == d_f), "multiplier"]
            return sig(float(values.median())) if len(values) else "—"
        rows.append([f"median D_E/D_F at D_F={sig(d_f)}", *[median_multiplier(n) for n in names]])
    lines = ["## Pretraining distributions compared", "",
             "Smaller α means the distributions are closer; k is larger for the closer mix (paper rows: "
             "`text` → text → Python, `text+code` → 50% text + 50% non-Python code → Python).", "",
             markdown_table(header, rows), ""]
    return lines


def _with_interval(run, name: str) -> str:
    lo, hi = run[f"{name}_lo"], run[f"{name}_hi"]
    return sig(run[name]) + (f" [{sig(lo, 2)}, {sig(hi, 2)}]" if np.isfinite(lo) or np.isfinite(hi) else "")


def _per_run_table(effective: EffectiveResult) -> str:
    table = effective.table.sort_values(["pretrain", "n_params", "d_f"])
    rows = []
    for _, run in table.iterrows():
        rows.append([run["pretrain"], run["size"] if isinstance(run["size"], str) else "", sig(run["n_params"]),
                     sig(run["d_f"]), sig(run["loss"], 4) + (f" ± {sig(run['loss_std'], 2)}" if run["n_seeds"] > 1 else ""),
                     _with_interval(run, "d_e"), _with_interval(run, "d_t"), sig(run["fraction"]),
                     sig(run["multiplier"]), sig(run["d_low"]), run["flags"] or "—"])
    units = effective.units
    header = ["pretrain", "size", "N", f"D_F ({units})", "loss (nats/token)", f"D_E [90%] ({units})",
              f"D_T [90%] ({units})", "D_T/D_E", "D_E/D_F", f"D(N) ({units})", "flags"]
    return markdown_table(header, rows)


def render_report(analysis: Analysis) -> str:
    units = analysis.effective.units
    results, table = analysis.results, analysis.effective.table
    lines = [f"# Effective data transferred: `{analysis.source}`", ""]
    if analysis.notes:
        lines += [analysis.notes.strip(), ""]
    lines += ["## Warnings", ""]
    lines += [f"- {w}" for w in analysis.warnings] if analysis.warnings else ["No warnings."]
    lines += ["", "## Input", ""]
    finetune_counts = ", ".join(f"{name}: {count}" for name, count in table["pretrain"].value_counts().sort_index().items())
    lines += [f"- {len(results.runs)} analysed grid points ({len(results.scratch)} from scratch; fine-tuned "
              f"{finetune_counts or 'none'}), {len(results.set_aside)} row(s) set aside, "
              f"{results.n_pretrain_rows} pretraining row(s) (section *Pretraining runs*).",
              f"- Data sizes in **{units}** (`{results.data_column}`); N = non-embedding parameters: "
              f"{', '.join(sig(n) for n in sorted(results.runs['n_params'].unique()))}.",
              "- Loss: best held-out target loss in nats/token. Seeds sharing (pretrain, N, shape, data) are averaged; "
              "the bootstrap re-draws them.",
              *[f"- {note}." for note in results.notes], ""]
    if table.empty:   # from-scratch runs only: no transfer section, said once
        return "\n".join(lines + _scratch_only_sections(analysis))

    lines += _transfer_section(analysis)
    if analysis.audit:
        lines += audit_section(analysis.audit)
    if analysis.shapes:
        lines += shape_section(analysis.shapes)
    if analysis.compare:
        lines += _comparison_section(analysis)
    if analysis.budget:
        lines += budget_section(analysis.budget)
    lines += _seed_section(analysis) + _pretraining_section(analysis) + _advice_section(analysis)

    if analysis.compute:
        lines += _compute_section(analysis.compute)

    lines += _scratch_laws_section(analysis)
    lines += dynamics_section(analysis.dynamics) if analysis.dynamics else []
    lines += _figure_lines(analysis.figures)
    lines += ["", "## Per-run effective data", ""]
    lines += [_per_run_table(analysis.effective) if len(table) else "No fine-tuned runs.", ""]
    lines += ["Flags:", ""] + [f"- `{flag}`: {text}" for flag, text in FLAG_GLOSSARY.items()] + [""]
    lines += _set_aside_lines(results)
    return "\n".join(lines)


def _figure_lines(figures: list) -> list[str]:
    lines = ["## Figures", ""]
    for figure in figures:
        if isinstance(figure, SavedFigure):
            lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.png.name})", "",
                      f"{figure.caption} ([SVG]({figure.svg.name}))", ""]
        else:
            lines += [f"- *{figure.name}* not drawn: {figure.reason}"]
    return lines


def _set_aside_lines(results: ResultsTable) -> list[str]:
    if not len(results.set_aside):
        return []
    shown = [c for c in ("pretrain", "mode", "size", "n_params", results.data_column, "loss", "status", "error", "reason")
             if c in results.set_aside]
    return ["## Rows set aside", "",
            markdown_table(shown, [[sig(v) if isinstance(v, float) else str(v) for v in row]
                                    for row in results.set_aside[shown].itertuples(index=False)]), ""]


def _scratch_only_sections(analysis: Analysis) -> list[str]:
    """The report of a table without fine-tuned runs: said once, then what applies to from-scratch runs."""
    lines = ["**Only from-scratch runs in this table: no transfer section** (effective data needs fine-tuned "
             "runs); the from-scratch laws follow.", ""]
    if analysis.compute:
        lines += _compute_section(analysis.compute)
    lines += _scratch_laws_section(analysis)
    if analysis.audit:
        lines += audit_section(analysis.audit)
    lines += dynamics_section(analysis.dynamics) if analysis.dynamics else []
    # The transfer figures were all skipped for want of fine-tuned runs, which is said above already.
    lines += _figure_lines([f for f in analysis.figures if isinstance(f, SavedFigure)]) + [""]
    return lines + _set_aside_lines(analysis.results)


def _scratch_laws_section(analysis: Analysis) -> list[str]:
    """Both from-scratch forms with intervals beside the papers, then their goodness of fit side by side."""
    kaplan, chinchilla = analysis.kaplan, analysis.chinchilla
    lines = ["## From-scratch laws L(N, D)", "",
             "Two forms fitted to the from-scratch runs in log loss. Small CPU models need not match the papers' "
             "values, and the papers' D is in tokens of their own tokenizers and data: only exponents compare.", ""]
    if chinchilla is not None:
        lines += _chinchilla_lines(chinchilla)
    lines += _kaplan_lines(kaplan)
    if chinchilla is not None and (chinchilla.fitted or kaplan.fitted):
        lines += _goodness_lines(kaplan, chinchilla)
    return lines


def _paper_chinchilla(key: str, name: str) -> str:
    paper = PAPER_CHINCHILLA[key]
    total = paper["alpha"] + paper["beta"]
    derived = {"n_opt_exponent": paper["beta"] / total, "d_opt_exponent": paper["alpha"] / total}
    return sig(derived.get(name, paper.get(name)))


def _chinchilla_lines(fit: ChinchillaFit) -> list[str]:
    lines = ["### Chinchilla form (Hoffmann et al. 2022, approach 3)", "",
             f"L(N, D) = E + A/N^α + B/D^β, D in {fit.units}, fitted as Besiroglu et al. (2024) refitted it: the "
             f"summed Huber loss (δ = {fit.huber_delta:g}) of log-loss residuals, minimised from {fit.n_starts} "
             "starting points (a batched Levenberg–Marquardt from every start, then L-BFGS-B from the best).", ""]
    if not fit.fitted:
        return lines + [fit.reason or "not fitted", ""]
    labels = (("E", "E"), ("A", "A"), ("B", "B"), ("α (exponent of N)", "alpha"), ("β (exponent of D)", "beta"),
              ("a = β/(α+β): N_opt ∝ C^a", "n_opt_exponent"), ("b = α/(α+β): D_opt ∝ C^b", "d_opt_exponent"))
    shown = lambda name: fmt_interval(fit, name) + (" **unidentified**" if name in fit.unidentified else "")  # noqa: E731
    rows = [[label, shown(name), _paper_chinchilla("hoffmann", name), _paper_chinchilla("besiroglu", name)]
            for label, name in labels]
    return lines + [markdown_table(["parameter", "fitted [90% CI]", "Hoffmann et al. 2022", "Besiroglu et al. 2024"],
                                    rows), "",
                    f"{fit.n_points} points; {_starts_and_resamples(fit)} Compute-optimal allocation at compute "
                    "C = 6·N·D: N_opt ∝ C^a, D_opt ∝ C^b.", ""] + ([f"**Degenerate fit**: {'; '.join(fit.degenerate)}. The allocation exponents "
                                            "depend on where the search stopped, not on the data: not findings.", ""]
                                           if fit.degenerate else [])


def _starts_and_resamples(fit: ChinchillaFit) -> str:
    if fit.n_starts_at_best is None:   # E ran to 0 (laws/scaling.py, settle_e_at_zero)
        return (f"E ran to its bound 0, and where each of the {fit.n_starts} starts and {fit.n_bootstrap_used} "
                "bootstrap resamples stopped on the way depends on the CPU's floating point: no interval is given.")
    return (f"{fit.n_starts_at_best} of {fit.n_starts} starts reached the best objective; {fit.n_bootstrap_used} "
            "bootstrap resamples (each refitted from the optimum and the grid's best distinct minima).")


def _kaplan_lines(kaplan: KaplanFit) -> list[str]:
    lines = ["### Kaplan form (Kaplan et al. 2020)", "",
             f"L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D, D in {kaplan.units}, least squares in log loss.", ""]
    if not kaplan.fitted:
        return lines + [kaplan.reason or "not fitted", ""]
    rows = [[label, fmt_interval(kaplan, name), sig(PAPER_KAPLAN[name])]
            for label, name in (("α_N", "alpha_n"), ("α_D", "alpha_d"), ("α_N/α_D", "ratio"))]
    rows += [["N_c", sig(kaplan.n_c), sig(PAPER_KAPLAN["n_c"])],
             ["D_c", sig(kaplan.d_c), sig(PAPER_KAPLAN["d_c"]) + " tokens"]]
    return lines + [markdown_table(["parameter", "fitted [90% CI]", "paper"], rows), "",
                    f"{kaplan.n_points} points, {kaplan.n_bootstrap_used} bootstrap resamples.", ""]


def _goodness_lines(kaplan: KaplanFit, chinchilla: ChinchillaFit) -> list[str]:
    fits = [fit for fit in (chinchilla, kaplan) if fit.fitted]
    def row(label, getter):
        return [label, *[getter(fit) for fit in fits]]
    def span(fit):
        return (f"N {compact(fit.n_range[0])}–{compact(fit.n_range[1])}; D {compact(fit.d_range[0])}–"
                f"{compact(fit.d_range[1])} {fit.units}")
    def heldout(value, fit):
        return f"{sig(value)} ({fit.goodness.heldout_folds} folds)" if value is not None else "—"
    rows = [row("parameters", lambda f: "5" if f is chinchilla else "4"),
            row("points", lambda f: str(f.n_points)), row("fitted on", span),
            row("RMSE of log loss", lambda f: sig(f.goodness.rmse_log)),
            row("mean abs error (nats/token)", lambda f: sig(f.goodness.mean_abs_error)),
            row("max abs error of log loss", lambda f: sig(f.goodness.max_abs_log)),
            row("leave one N out: RMSE of log loss", lambda f: heldout(f.goodness.heldout_rmse_log, f)),
            row("leave one N out: mean abs error (nats/token)", lambda f: heldout(f.goodness.heldout_mean_abs_error, f))]
    header = ["", *["Chinchilla form" if fit is chinchilla else "Kaplan form" for fit in fits]]
    return ["### Goodness of fit, side by side", "",
            "Leave one N out: the law refitted without each model size in turn predicts that size's runs. "
            "Kaplan's form is fitted by least squares, Chinchilla's by a Huber loss that is nearly L1 at δ = 1e-3, "
            "so the RMSE favours Kaplan's a little.", "", markdown_table(header, rows), ""]


def write_outputs(analysis: Analysis, out_dir: Path) -> dict[str, Path]:
    """REPORT.md, fits.json and effective.csv (the per-run table) in `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"report": out_dir / "REPORT.md", "fits": out_dir / "fits.json", "effective": out_dir / "effective.csv"}
    atomic_write_text(paths["report"], render_report(analysis))
    atomic_write_json(paths["fits"], fits_json(analysis))
    atomic_write_text(paths["effective"], analysis.effective.table.to_csv(index=False))
    if analysis.dynamics:
        paths["forecasts"] = out_dir / "forecasts.csv"
        atomic_write_text(paths["forecasts"], analysis.dynamics.forecasts.table.to_csv(index=False))
    return paths
