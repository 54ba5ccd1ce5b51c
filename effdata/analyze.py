"""`python -m effdata.analyze RESULTS`: from a results table to D_T, fitted laws, figures and a report.

    python -m effdata.analyze runs/quick/results.csv
    python -m effdata.analyze my_runs.parquet --compare text text+code --units tokens --out analysis/
    python -m effdata.analyze runs/cpu/results.csv --budget-compare analysis/cpu-fixed-budget/results.csv

Writes `REPORT.md` (with the figures beside it, PNG and SVG), `fits.json` and `effective.csv` to
--out (default: `analysis/` next to the results table). The study runner calls `analyze()` in-process.

A table from a study with a [sweep] (its rows name the swept setting in a `sweep` column) gets the sweep
analysis instead (`effdata.analysis.sweep.sweep`): `REPORT.md`, `sweep.json`, `sweep.csv`, `best.csv` and the
figure `sweep.png`; the transfer analysis would average runs of different swept values together.

`--scratch-from OTHER` reads the fine-tunes on another table's from-scratch runs at the sizes this table has none
of (a fine-tune-only study, `[scratch] data_chars = []`); the report's title names what each table lent.

`--checkpoints-by-tokens COUNT ...` reads a `[pretrain] checkpoint_tokens` study's checkpoints at each count, one per
size, as one pretraining (`effdata.analysis.core.checkpoints`); `effdata.run` passes the study's counts itself.

`--budget-compare OTHER` measures and fits another study of the same target whose pretraining budgets differ
with the same pipeline (`_fit_table`), and sets its β beside this table's in the section *Pretraining budget*
(`effdata.analysis.budget.budget`); an unusable OTHER is a TableError before anything is written.

The analysis layer never imports torch (tests/test_no_torch.py checks it).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from effdata.analysis.core.fit import DEFAULT_BOOTSTRAP, DEFAULT_HUBER_DELTA
from effdata.analysis.core.table import TableError
from effdata.analysis.pipeline import analyze, analyze_sweep, default_out_dir  # noqa: F401  (the public API)


def _relative_noise(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction of the loss in [0, 1), e.g. 0.01 (got {text})")
    return value


def loss_noise_arg(text: str) -> float | dict[float, float]:
    """--loss-noise: one sigma (0.01), or sigma per data size, 1e4:0.003,3e5:0.011 (sizes in the table's units);
    argparse.ArgumentTypeError for anything else (benchmarks/replicate_intervals.py reads its --given with it too)."""
    if ":" not in text:
        return _relative_noise(text)
    try:
        pairs = [item.split(":") for item in text.split(",")]
        given = {float(size): _relative_noise(sigma) for size, sigma in pairs}
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"must be SIGMA or SIZE:SIGMA,SIZE:SIGMA,... with positive sizes and fractions of the loss in [0, 1), "
            f"e.g. 1e4:0.003,3e5:0.011 (got {text})") from None
    if min(given) <= 0:
        raise argparse.ArgumentTypeError(f"data sizes must be positive (got {text})")
    return given


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
    parser.add_argument("--loss-noise", type=loss_noise_arg, metavar="SIGMA",
                        help="relative run-to-run noise of the loss to assume for grid points with one seed "
                             "(e.g. 0.01; or per data size in the table's units, e.g. 1e4:0.003,3e5:0.011, "
                             "interpolated in log D; default: measured from the seeds, else estimated from the "
                             "from-scratch grid)")
    parser.add_argument("--pretraining-noise", type=_relative_noise, metavar="SIGMA",
                        help="relative sd by which a pretraining run's seed shifts all its fine-tunes together, for "
                             "sizes pretrained once (e.g. 0.015, measured where a table pretrains a size two or more "
                             "times: its report's Seeds section); default: none, those sizes' intervals leave it out")
    parser.add_argument("--checkpoint-noise", type=_relative_noise, metavar="SIGMA",
                        help="with sizes pretrained once: the relative sd by which each checkpoint of a run (its final "
                             "model, @10tpp, ...) shifts its own fine-tunes beyond the run's shift (the Seeds section's "
                             "'checkpoint' part of a table that pretrains twice); default: none")
    parser.add_argument("--noise-from", metavar="ANALYSIS",
                        help="another study's analysis folder (or its fits.json), a replicated study of the same setup: "
                             "the run noise it measured (from scratch per data size, a pretraining run's and its "
                             "checkpoints' shifts) fills whichever of the three options above are not given; for a "
                             "study that runs every point once (docs/analysis.md)")
    parser.add_argument("--budget-compare", type=Path, metavar="OTHER_RESULTS",
                        help="another study of the same target with other pretraining budgets (e.g. a fixed token "
                             "budget): fitted the same way, its β set beside this table's, and the fixed-budget β this "
                             "table predicts checked against it (section *Pretraining budget*)")
    parser.add_argument("--scratch-from", nargs="+", default=[], metavar="TABLE",
                        help="other results tables whose from-scratch runs stand in at the model sizes (N and shape) "
                             "this table has none of: a fine-tune-only study read on another study's curves")
    parser.add_argument("--checkpoints-by-tokens", nargs="+", type=float, default=[], metavar="COUNT",
                        help="token counts of a study's `[pretrain] checkpoint_tokens` checkpoints: each count's "
                             "checkpoints, one per size, are read as one pretraining named <corpus>@<count> "
                             "(without it each is a pretraining of one size, named by its tokens per parameter)")
    parser.add_argument("--curves", type=Path, metavar="CURVES",
                        help="a learning-curve table (run_id, step, valid_loss; one row per evaluation; default: "
                             "curves.csv beside the results table): section *Training dynamics*")
    args = parser.parse_args(argv)
    try:
        result = analyze(args.results, args.out, compare=args.compare, units=args.units, budget_compare=args.budget_compare,
                         n_bootstrap=args.bootstrap, huber_delta=args.huber_delta, seed=args.seed,
                         peak_flops=args.peak_flops, notes=args.notes.read_text() if args.notes else None,
                         figures=not args.no_figures, loss_noise=args.loss_noise,
                         pretraining_noise=args.pretraining_noise, checkpoint_noise=args.checkpoint_noise,
                         noise_from=args.noise_from,
                         reference_shapes=args.reference_shape, progress=sys.stderr.isatty(), curves=args.curves,
                         scratch_from=args.scratch_from, by_tokens=args.checkpoints_by_tokens)
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
