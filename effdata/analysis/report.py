"""The Markdown report and the JSON of the fits.

The report opens with every warning collected on the way (nothing silent), then the fitted law
with intervals beside the paper, the held-out check, the from-scratch (Kaplan) fit, the figures
and the per-run table with its flags.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from effdata.analysis.effective import FLAG_NAMES, EffectiveResult
from effdata.analysis.fit import PAPER_TRANSFER, TransferFit, jsonable
from effdata.analysis.scaling import PAPER_KAPLAN, KaplanFit
from effdata.analysis.plots import UNIT_WORDS, SavedFigure, SkippedFigure
from effdata.analysis.table import ResultsTable
from effdata.fmt import sig
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
        entry = {"runs": int(len(rows)), "flops": flops, "run_seconds": wall,
                 "flops_per_second": flops / wall if wall > 0 else None}
        if per_run_peak is not None:
            entry["mfu"] = flops / float((rows["wall_time"] * per_run_peak.loc[rows.index]).sum())
        elif peak_flops:
            entry["mfu"] = flops / (wall * peak_flops) if wall > 0 else None
        summary["by_mode"][mode] = entry
    summary["time"] = _time_rows(ok, np.asarray(modes))
    return summary


TIME_PARTS = ("setup", "compile", "steps", "evals", "test", "checkpoint", "other")  # train.py's time_* columns


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
             _markdown_table(["runs", "count", "training FLOPs", "run-minutes", "FLOP/s per run", "MFU"], rows), ""]
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
            _markdown_table(header, table), ""]


def fmt_interval(fit, name: str, digits: int = 3) -> str:
    value = getattr(fit, name)
    interval = fit.intervals.get(name)
    if interval is None:
        return f"{sig(value, digits)} (no interval)"
    return f"{sig(value, digits)} [{sig(interval[0], digits)}, {sig(interval[1], digits)}]"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


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
                     "n_resamples": analysis.n_bootstrap},
        "huber_delta": analysis.huber_delta,
        "transfer": transfer,
        "paper_transfer": PAPER_TRANSFER,
        "kaplan": analysis.kaplan.to_dict(),
        "paper_kaplan": PAPER_KAPLAN,
        "counts": {"runs": int(len(analysis.results.runs)), "scratch": int(len(analysis.results.scratch)),
                   "finetuned": int(len(table)), "set_aside": int(len(analysis.results.set_aside)),
                   **{flag: int(table[flag].sum()) if len(table) else 0 for flag in FLAG_NAMES}},
        "compare": analysis.compare,
        "compute": analysis.compute,
        "figures": figures,
        "warnings": analysis.warnings,
    })


def _fit_rows(fits: list[TransferFit], units: str) -> list[list[str]]:
    rows = []
    for fit in fits:
        paper = fit.paper()
        paper_cell = (f"k={sig(paper['k'])}, α={paper['alpha']}, β={paper['beta']}" if paper else "—")
        if not fit.fitted:
            rows.append([fit.pretrain, fit.reason, "", "", "", "", "", paper_cell])
            continue
        heldout = " / ".join(f"×{sig(h.error_factor)}" if h.error_factor else "—"
                             for h in (fit.heldout["n_params"], fit.heldout["d_f"]))
        points = f"{fit.n_points} ({fit.regime.replace('_', ' ')}; {fit.n_extrapolated} extrap.)"
        rows.append([fit.pretrain, fmt_interval(fit, "k"), fmt_interval(fit, "alpha"), fmt_interval(fit, "beta"),
                     points, f"{sig(fit.r2_log)} / {sig(fit.rmse_log)}", heldout, paper_cell])
    return rows


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
    table = analysis.effective.table
    for d_f in sorted(set(table.loc[table["pretrain"].isin(names), "d_f"]))[:6]:
        def median_multiplier(name, d_f=d_f):
            values = table.loc[(table["pretrain"] == name) & (table["d_f"] == d_f), "multiplier"]
            return sig(float(values.median())) if len(values) else "—"
        rows.append([f"median D_E/D_F at D_F={sig(d_f)}", *[median_multiplier(n) for n in names]])
    lines = ["## Pretraining distributions compared", "",
             "Smaller α means the distributions are closer; k is larger for the closer mix (paper rows: "
             "`text` → text → Python, `text+code` → 50% text + 50% non-Python code → Python).", "",
             _markdown_table(header, rows), ""]
    return lines


def _per_run_table(effective: EffectiveResult) -> str:
    table = effective.table.sort_values(["pretrain", "n_params", "d_f"])
    rows = []
    for _, run in table.iterrows():
        rows.append([run["pretrain"], run["size"] if isinstance(run["size"], str) else "", sig(run["n_params"]),
                     sig(run["d_f"]), sig(run["loss"], 4) + (f" ± {sig(run['loss_std'], 2)}" if run["n_seeds"] > 1 else ""),
                     sig(run["d_e"]), sig(run["d_t"]), sig(run["fraction"]), sig(run["multiplier"]),
                     sig(run["d_low"]), run["flags"] or "—"])
    units = effective.units
    header = ["pretrain", "size", "N", f"D_F ({units})", "loss (nats/token)", f"D_E ({units})", f"D_T ({units})",
              "D_T/D_E", "D_E/D_F", f"D(N) ({units})", "flags"]
    return _markdown_table(header, rows)


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
              f"{results.n_pretrain_rows} pretraining row(s) ignored.",
              f"- Data sizes in **{units}** (`{results.data_column}`); N = non-embedding parameters: "
              f"{', '.join(sig(n) for n in sorted(results.runs['n_params'].unique()))}.",
              "- Loss: best held-out target loss in nats/token. Seeds sharing (pretrain, N, data) are averaged.", ""]

    lines += ["## Transfer law D_T = k · D_F^α · N^β", "",
              f"Fitted in log space with a summed Huber loss (δ = {analysis.huber_delta}) and multi-start L-BFGS-B; "
              f"intervals are 5th–95th percentile bootstrap intervals over {analysis.n_bootstrap} resamples of the "
              f"runs. D in {UNIT_WORDS[units]}. Held-out: the law is refitted without one N (or one D_F) at a time and predicts "
              "the held-out D_T; the figure is the geometric mean error factor.", ""]
    if units != "chars":
        lines += ["*The paper's k is for D in characters; with tokens only α and β are comparable.*", ""]
    header = ["pretrain", "k [90% CI]", "α [90% CI]", "β [90% CI]", "points (regime)", "R² / RMSE (log)",
              "held-out error (leave N / leave D_F)", "paper (Hernandez et al. 2021)"]
    lines += [_markdown_table(header, _fit_rows(list(analysis.fits.values()), units)) if analysis.fits
              else "No fine-tuned runs: nothing to fit.", ""]
    for fit in analysis.fits.values():
        if fit.fitted and fit.n_ossified:
            lines += [f"- `{fit.pretrain}`: {fit.n_ossified} ossified run(s) (D_T ≤ 0) are outside the log fit; "
                      "see the per-run table.", ""]
    if analysis.compare:
        lines += _comparison_section(analysis)

    if analysis.compute:
        lines += _compute_section(analysis.compute)

    kaplan = analysis.kaplan
    lines += ["## From-scratch law (Kaplan et al. 2020)", "",
              "L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D fitted to the from-scratch runs in log loss "
              f"(D in {kaplan.units}). Small CPU models need not match the paper's values.", ""]
    if kaplan.fitted:
        rows = [[label, fmt_interval(kaplan, name), sig(PAPER_KAPLAN[name])]
                for label, name in (("α_N", "alpha_n"), ("α_D", "alpha_d"), ("α_N/α_D", "ratio"))]
        rows += [["N_c", sig(kaplan.n_c), sig(PAPER_KAPLAN["n_c"])], ["D_c", sig(kaplan.d_c), sig(PAPER_KAPLAN["d_c"]) + " tokens"]]
        lines += [_markdown_table(["parameter", "fitted [90% CI]", "paper"], rows), "",
                  f"{kaplan.n_points} points, RMSE of log loss {sig(kaplan.rmse_log)}, "
                  f"{kaplan.n_bootstrap_used} bootstrap resamples.", ""]
    else:
        lines += [kaplan.reason or "not fitted", ""]

    lines += ["## Figures", ""]
    for figure in analysis.figures:
        if isinstance(figure, SavedFigure):
            lines += [f"### {figure.title}", "", f"![{figure.title}]({figure.png.name})", "",
                      f"{figure.caption} ([SVG]({figure.svg.name}))", ""]
        else:
            lines += [f"- *{figure.name}* not drawn: {figure.reason}"]
    lines += ["", "## Per-run effective data", ""]
    lines += [_per_run_table(analysis.effective) if len(table) else "No fine-tuned runs.", ""]
    lines += ["Flags:", ""] + [f"- `{flag}`: {text}" for flag, text in FLAG_GLOSSARY.items()] + [""]
    if len(results.set_aside):
        lines += ["## Rows set aside", ""]
        shown = [c for c in ("pretrain", "mode", "size", "n_params", results.data_column, "loss", "status", "error", "reason")
                 if c in results.set_aside]
        lines += [_markdown_table(shown, [[sig(v) if isinstance(v, float) else str(v) for v in row]
                                          for row in results.set_aside[shown].itertuples(index=False)]), ""]
    return "\n".join(lines)


def write_outputs(analysis: Analysis, out_dir: Path) -> dict[str, Path]:
    """REPORT.md, fits.json and effective.csv (the per-run table) in `out_dir`."""
    out_dir = Path(out_dir)
    paths = {"report": out_dir / "REPORT.md", "fits": out_dir / "fits.json", "effective": out_dir / "effective.csv"}
    atomic_write_text(paths["report"], render_report(analysis))
    atomic_write_json(paths["fits"], fits_json(analysis))
    atomic_write_text(paths["effective"], analysis.effective.table.to_csv(index=False))
    return paths
