"""Measurement (not a test): β at one pretraining token count, against the count, from committed analyses.

    .venv/bin/python benchmarks/beta_by_token_count.py analysis/cpu-fixed-tokens/1m6 analysis/cpu-fixed-tokens/5m \
        analysis/cpu-fixed-tokens analysis/cpu-fixed-tokens/seed1-ladder [--pretrain text+code text] \
        [--figure analysis/cpu-fixed-tokens/beta_by_tokens.png]

Each folder is an analysis whose pretraining names were each pretrained on one token count for every size (its
fits.json `budget` says "fixed ... tokens"; a folder whose name was budgeted otherwise is refused, one line, exit 2).
A checkpoint series named by token count (`analysis/cpu-fixed-tokens/series`: `--pretrain text+code@3.01M ...`)
adds its counts; a point another folder already gave (the same corpus, count and β: the same runs) is kept once.
Prints, per pretraining name and folder, the token count, β by Huber with its 90 % interval, β by least squares
and the range of β with each N left out (Huber), all read from fits.json to the report's three figures; `--figure`
draws β against the token count. Why: on the CPU ladder a larger model's transfer advantage grows with the tokens
every size has seen (docs/findings.md), and the reports that say so are one folder per count.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.analysis.core.markdown import markdown_table  # noqa: E402
from effdata.analysis.plan.pretraining import read_budgets  # noqa: E402
from effdata.fmt import compact, sig  # noqa: E402


@dataclass(frozen=True)
class Point:
    folder: str
    pretrain: str
    tokens: float                  # the one token count every size was pretrained on
    beta: float                    # Huber (the headline)
    interval: tuple[float, float]
    least_squares: float
    left_out: tuple[float, float]  # lowest and highest β with one N left out (Huber)


class Refused(Exception):
    """A folder this measurement cannot read; the message is the one line printed."""


def read_point(folder: Path, pretrain: str) -> Point | None:
    """The folder's β for `pretrain` at its one token count; None where that name has no fitted law."""
    fits = json.loads((folder / "fits.json").read_text())
    law = (fits.get("transfer") or {}).get(pretrain) or {}
    if not law.get("fitted"):
        return None
    budget = read_budgets(fits).get(pretrain)
    if budget is None or budget.kind != "fixed":
        raise Refused(f"{folder}: '{pretrain}' was not pretrained on one token count for every size "
                      f"({budget.label if budget else 'budget not recorded'})")
    audit = next(a for a in fits["audit"]["laws"] if a["law"] == f"transfer law '{pretrain}'")
    refits = [x["estimates"]["beta"] for x in audit["left_out"] if x["group"] == "N"]
    return Point(str(folder), pretrain, budget.tokens_at(1.0), law["beta"],
                 tuple(law["intervals"]["beta"]), audit["other_estimate"]["beta"], (min(refits), max(refits)))


def table(points: list[Point]) -> str:
    rows = [[p.pretrain, compact(p.tokens), f"{sig(p.beta)} [{sig(p.interval[0])}, {sig(p.interval[1])}]",
             sig(p.least_squares), f"{sig(p.left_out[0])} to {sig(p.left_out[1])}", p.folder]
            for p in sorted(points, key=lambda p: (p.pretrain, p.tokens, p.folder))]
    return markdown_table(["pretraining", "tokens, every size", "β [90% CI] (Huber)", "β, least squares",
                           "β, each N left out (Huber)", "analysis"], rows)


def corpus(point: Point) -> str:
    """The pretraining corpus of a point's name: `text+code@3.01M` (a checkpoint named by its token count,
    benchmarks/checkpoints_by_tokens.py) is text+code's."""
    return point.pretrain.split("@")[0]


def distinct(points: list[Point]) -> list[Point]:
    """Each point once: a folder whose runs another listed folder also holds (a checkpoint series reproduces the
    fixed-count studies' runs bit for bit) gives the same β at the same count for the same corpus; the first
    folder's is kept."""
    seen, out = set(), []
    for p in points:
        key = (corpus(p), p.tokens, p.beta)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def draw(points: list[Point], path: Path) -> None:
    """β against the token count, one colour per pretraining corpus, offset a little to the right of the count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    names = sorted({corpus(p) for p in points}, reverse=True)
    for index, (color, name) in enumerate(zip(("tab:orange", "tab:blue", "tab:green"), names)):
        mine = sorted((p for p in points if corpus(p) == name), key=lambda p: (p.tokens, p.folder))
        seen: dict[str, int] = {}
        for p in mine:
            # Names side by side at a count, and a count's folders (seeds) beside each other within a name.
            shift = 1.1 ** index * 1.035 ** seen.setdefault(compact(p.tokens), 0)
            seen[compact(p.tokens)] += 1
            ax.errorbar(p.tokens * shift, p.beta, yerr=[[p.beta - p.interval[0]], [p.interval[1] - p.beta]], fmt="o",
                        color=color, capsize=3, label=name if p is mine[0] else None)
            ax.plot(p.tokens * shift, p.least_squares, "x", color=color)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set(xscale="log", xlabel="pretraining tokens, the same for every size", ylabel="β (D_T ∝ N^β)",
           title="β at one pretraining token count (dots: Huber, 90% CI; ×: least squares)")
    low, high = min(p.tokens for p in points) / 1.5, max(p.tokens for p in points) * 1.5
    ticks = [t for t in (1e6, 2e6, 5e6, 1e7, 2e7, 5e7, 1e8) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t / 1e6:g} M" for t in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.title.set_fontsize("small")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--pretrain", nargs="+", default=["text+code", "text"])
    parser.add_argument("--figure", type=Path)
    args = parser.parse_args(argv)
    try:
        points = distinct([p for folder in args.folders for name in args.pretrain if (p := read_point(folder, name))])
    except (Refused, FileNotFoundError) as exc:
        print(f"beta_by_token_count: {exc}", file=sys.stderr)
        return 2
    print(table(points))
    if args.figure:
        draw(points, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
