"""`python -m effdata.plan FITS --d-f CHARS`: how big a model, is pretraining worth it, what will the loss be.

    python -m effdata.plan analysis/cpu/fits.json --d-f 1e5 --budget 1e13
    python -m effdata.plan paper --d-f 1e8 --sizes 1e8 1e9 1e10 --budget 1e21
    python -m effdata.plan --heldout analysis/cpu/results.csv          # how well it predicts unseen runs
    python -m effdata.plan analysis/dynamics/fits.json --target-loss 5.5 --sizes 5e4 1e5   # steps, batch, frontier
    python -m effdata.plan analysis/cpu-v2/fits.json --compute 1e12 1e15   # N and D for C FLOPs: Kaplan beside Chinchilla

FITS is a fits.json written by `python -m effdata.analyze` (or the directory holding it), or `paper`
(`paper:hoffmann`) for the papers' laws, labelled as such. Prints the plan as Markdown and writes
PLAN.md and plan.png / plan.svg to --out. Bad input: one line on stderr and exit status 2, nothing written.
See effdata/analysis/planner.py for the definitions (compute, units, extrapolation).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits

from effdata.analysis.core.table import TableError
from effdata.analysis.plan.check import heldout_check
from effdata.analysis.plan.planner import (
    LAW_FORMS,
    PlanError,
    PlanRequest,
    load_laws,
    make_plan,
    read_fits,
    with_shapes,
)
from effdata.analysis.plan.report import render_plan
from effdata.paths import atomic_write_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m effdata.plan", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("fits", nargs="?", help="fits.json (or its directory), or 'paper' / 'paper:hoffmann'")
    parser.add_argument("--d-f", type=float, metavar="CHARS", help="target (fine-tuning) data, in characters")
    parser.add_argument("--target-loss", type=float, metavar="LOSS",
                        help="instead of --d-f: steps, batch and compute for a run of each size to reach this held-out "
                             "loss, and the compute-efficient N, from the learning-curve laws (fits.json's `dynamics`)")
    parser.add_argument("--compute", type=float, nargs="+", metavar="FLOPS",
                        help="instead of --d-f: how big a model on how much data for C FLOPs, Kaplan's allocation "
                             "beside Chinchilla's and the papers'; writes ALLOCATION.md and allocation.png to --out")
    parser.add_argument("--sizes", type=float, nargs="+", metavar="N",
                        help="candidate non-embedding sizes (default: 5 over the from-scratch law's fitted range)")
    parser.add_argument("--pretrain", nargs="+", metavar="NAME", help="pretraining names (default: every fitted one)")
    parser.add_argument("--budget", type=float, metavar="FLOPS", help="compute budget: find the best size within it")
    parser.add_argument("--count-pretraining", action="store_true",
                        help="the budget also pays for pretraining (needs --pretrain-tokens or --pretrain-tokens-per-param)")
    parser.add_argument("--pretrain-tokens", type=float, metavar="T", help="tokens of one pretraining run")
    parser.add_argument("--pretrain-tokens-per-param", type=float, metavar="R", help="pretraining tokens = R·N")
    parser.add_argument("--epochs", type=float, default=1.0, help="passes over the target data (default 1)")
    parser.add_argument("--law", choices=LAW_FORMS, default="auto",
                        help="from-scratch law form (default: Chinchilla when fitted, else Kaplan)")
    parser.add_argument("--chars-per-token", type=float, metavar="X", help="override the characters per token")
    parser.add_argument("--shape", metavar="FITS",
                        help="take the shape comparison from this fits.json (a shape study's) instead of FITS's")
    parser.add_argument("--out", type=Path, default=Path("plan"), help="where PLAN.md and the figure go (default ./plan)")
    parser.add_argument("--no-figure", action="store_true", help="print only")
    parser.add_argument("--heldout", metavar="RESULTS",
                        help="instead of planning: refit without each D_F and each N of this results table and "
                             "report how well the planner predicts the left-out fine-tuned losses")
    return parser


def _steps_plan(args) -> str:
    """--target-loss: steps and batch at each size from the learning-curve laws (fits.json's `dynamics`)."""
    from effdata.analysis.dynamics.answers import frontier, laws_from_fits, steps_for  # noqa: PLC0415
    from effdata.analysis.dynamics.report import answers_markdown  # noqa: PLC0415

    try:
        law, noise = laws_from_fits(read_fits(args.fits))
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    answers = [steps_for(law, noise, n, args.target_loss) for n in (args.sizes or law.sizes)]
    front = frontier(law, noise, [args.target_loss]) if law.steps == "S_min" and noise is not None else []
    return "\n".join([f"# Steps and batch for loss {args.target_loss:g}", "",
                      *answers_markdown(law, answers, front)]) + "\n"


def _allocation_plan(args, argv: list[str]) -> str:
    """--compute: N_opt and D for each C under every fitted law and the papers' rules (analysis/plan/allocation.py)."""
    from effdata.analysis.plan.allocation import allocate, allocator  # noqa: PLC0415
    from effdata.analysis.plan.report import render_allocation  # noqa: PLC0415

    found = allocator(read_fits(args.fits), chars_per_token=args.chars_per_token)
    text = render_allocation(found, allocate(found, args.compute))
    if not args.no_figure:
        from effdata.analysis.plan.plots import plot_allocation  # noqa: PLC0415  (matplotlib only when drawing)

        figure = plot_allocation(found, args.compute, args.out)
        text += f"\n![{figure.title}]({figure.png.name})\n\nWritten by `python -m effdata.plan {shlex.join(argv)}`.\n"
        atomic_write_text(args.out / "ALLOCATION.md", text)
    return text


def _plan(args, argv: list[str]) -> str:
    if args.fits is not None and args.target_loss is not None:
        return _steps_plan(args)
    if args.fits is not None and args.compute is not None:
        return _allocation_plan(args, argv)
    if args.fits is None or args.d_f is None:
        raise PlanError("give FITS (a fits.json, or 'paper') and --d-f CHARS, or --heldout RESULTS")
    laws = load_laws(read_fits(args.fits), law=args.law, chars_per_token=args.chars_per_token)
    if args.shape:
        laws = with_shapes(laws, read_fits(args.shape), args.shape)
    request = PlanRequest(d_f=args.d_f, sizes=tuple(args.sizes or ()), pretrain=tuple(args.pretrain or ()),
                          budget=args.budget, count_pretraining=args.count_pretraining, epochs=args.epochs,
                          pretrain_tokens=args.pretrain_tokens, pretrain_tokens_per_param=args.pretrain_tokens_per_param)
    plan = make_plan(laws, request)
    text = render_plan(plan)
    if not args.no_figure:
        from effdata.analysis.plan.plots import (
            plot_plan,  # matplotlib only when drawing
        )

        figure = plot_plan(plan, args.out)
        text += f"\n![{figure.title}]({figure.png.name})\n"
        # The command that wrote it, so that the file can be regenerated and checked
        # (benchmarks/regenerate_reports.py, tests/test_regenerate.py).
        text += f"\nWritten by `python -m effdata.plan {shlex.join(argv)}`.\n"
        atomic_write_text(args.out / "PLAN.md", text)
    return text


def render_heldout(check) -> str:
    summary = check.summary()
    lines = [f"# Held-out check of the planner on `{check.source}` ({check.law} form)", "",
             "Each D_F (each N) left out in turn; laws refitted on the rest; the planner predicts the left-out "
             "fine-tuned losses. Baseline: the from-scratch law at D_F (no transfer).", "",
             "| left out | folds | runs predicted | of them extrapolated | mean abs error (nats/token) | "
             "mean relative error | max abs error | baseline mean abs error |", "|---|---|---|---|---|---|---|---|"]
    for _, row in summary.iterrows():
        lines.append(f"| one {row['group']} at a time | {row['folds']} | {row['runs']} | {row['extrapolated']} | "
                     f"{row['mean_abs_error']:.3f} | {100 * row['mean_rel_error']:.1f}% | {row['max_abs_error']:.3f} | "
                     f"{row['baseline_mean_abs_error']:.3f} |")
    if check.skipped:
        lines += ["", "Not predicted:", *[f"- {reason}" for reason in check.skipped]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    try:
        # One BLAS thread: thousands of tiny solves (see effdata.analyze).
        with threadpool_limits(1, user_api="blas"):
            if args.heldout:
                law = "chinchilla" if args.law == "auto" else args.law
                print(render_heldout(heldout_check(args.heldout, law=law)), end="")
                return 0
            print(_plan(args, argv), end="")
    except (PlanError, TableError) as exc:
        print(f"effdata.plan: {exc}", file=sys.stderr)
        return 2
    if not args.no_figure and args.target_loss is None:   # --target-loss prints only
        report, figure = ("ALLOCATION.md", "allocation.png") if args.compute else ("PLAN.md", "plan.png")
        print(f"\nwritten: {args.out / report}, {args.out / figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
