"""Measurement (not a test): seconds per 6N FLOP of each mode's runs, by size, against the pretraining's of the same
size, from finished studies' records.

    .venv/bin/python benchmarks/rates_by_mode.py runs/cpu-fixed-tokens-10m-text [runs/cpu-w1m ...]

Why: the progress summary counts a mode no run of which has ended at a pretraining's seconds per FLOP times
`effdata.study.clock.RATE_VS_PRETRAIN`; from-scratch runs and fine-tunes spend most of their seconds evaluating,
which 6N FLOPs do not count. Prints, for each folder and size, each mode's median rate (seconds per TFLOP, with its
number of runs) and its ratio to the pretraining's, then each mode's range of ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.study.store import Store  # noqa: E402

MODES = ("pretrain", "scratch", "finetune")


def rates(out: Path) -> dict[tuple[str, float], list[float]]:
    """(mode, N) -> seconds per FLOP of each ended run whose record has its wall time and 6N FLOPs."""
    found: dict[tuple[str, float], list[float]] = {}
    for record in Store(out).records():
        metrics = record.get("metrics") or {}
        wall, flops = metrics.get("wall_time"), metrics.get("flops_6N")
        if record.get("status") == "ok" and wall and flops and metrics.get("mode") in MODES:
            found.setdefault((metrics["mode"], float(metrics["n_params"])), []).append(wall / flops)
    return found


def ratios(found: dict[tuple[str, float], list[float]]) -> dict[str, list[float]]:
    """mode -> its median rate over the pretraining's, at each size that has both."""
    out: dict[str, list[float]] = {}
    for (mode, n), seen in sorted(found.items()):
        base = found.get(("pretrain", n))
        if base and mode != "pretrain":
            out.setdefault(mode, []).append(statistics.median(seen) / statistics.median(base))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="study run folders (their runs/ with records)")
    args = parser.parse_args(argv)
    for folder in args.folders:
        found = rates(folder)
        print(f"{folder}: seconds per TFLOP (runs), and over the pretraining's")
        for n in sorted({n for _, n in found}):
            cells = []
            for mode in MODES:
                if (mode, n) in found:
                    rate = statistics.median(found[mode, n]) * 1e12
                    base = found.get(("pretrain", n))
                    ratio = f" ×{rate / (statistics.median(base) * 1e12):.1f}" if base and mode != "pretrain" else ""
                    cells.append(f"{mode} {rate:.0f} ({len(found[mode, n])}){ratio}")
            print(f"  N {n:>9,.0f}: " + "; ".join(cells))
        for mode, seen in ratios(found).items():
            print(f"  {mode}: ×{min(seen):.1f}–{max(seen):.1f} a pretraining's rate over {len(seen)} sizes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
