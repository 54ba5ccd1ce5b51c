"""Measurement (not a test): what the plain progress summary's "about … left" would have said through a finished
study, against the time it really had left.

    .venv/bin/python benchmarks/progress_clock.py jobs/cpu-fixed-tokens-30m.toml runs/cpu-fixed-tokens-30m \
        [--pretrain text+code] [--every 60]

Replays the study's last invocation from its records: each trained run's start and end (its record's
`finished_at` less its `wall_time`), its mode, its upper bound (`study/cost.py`, the runner's estimate, with the
characters per token and vocabulary its records give) and the 6N FLOPs it spent. Every `--every` seconds it asks
`PlainProgress` for the time left twice: as the summary counts now (each mode at the share of its bound that its
ended runs trained, `PRIOR_SHARE` before one ends, at the seconds per FLOP its size has shown) and as it counted before
the seventeenth session, 6 December (every run at its bound, one rate for all: "the old clock"). A run
in flight is taken to be through the fraction of its wall time gone (a worker reports steps; a steady pace is
assumed). Prints the times, then the median and the worst factor by which each clock was off. Runs copied with
`--reuse` are not part of the replay (they ran in another invocation). Why: the summary said "about 6h00m left"
29 minutes into a study that ended 20 minutes later (docs/studies.md).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from effdata.study.cost import CostModel  # noqa: E402
from effdata.study.clock import Cost, InFlight  # noqa: E402
from effdata.study.progress import PlainProgress, duration  # noqa: E402
from effdata.study.store import Store  # noqa: E402
from effdata.study.study import load_study, study_runs  # noqa: E402

GAP = 600.0   # seconds with no run in flight that separate two invocations of a study


@dataclass(frozen=True)
class Span:
    """One trained run as the replay sees it."""

    start: float
    end: float
    cost: Cost    # as the runner gives it once the run has ended


def spans(study_file: Path, out: Path, pretrain: tuple[str, ...] | None) -> list[Span]:
    """The runs of the study's last invocation, from their records."""
    study = load_study(study_file)
    runs = study_runs(study, pretrain or study.pretrain.corpora)
    store = Store(out)
    records = {run.run_id: store.read_record(run.run_id) for run in runs}
    ok = [(run, r) for run, r in ((run, records[run.run_id]) for run in runs) if r and r["status"] == "ok"]
    if not ok:
        raise SystemExit(f"progress_clock: no finished run of {study_file} in {out}")
    cost = _cost_model([r["metrics"] for _, r in ok])
    found = []
    for run, record in ok:
        end = time.mktime(time.strptime(record["finished_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        spent = record["metrics"].get("flops_6N")
        wall = float(record["metrics"].get("wall_time") or 0.0)
        found.append(Span(end - wall, end, Cost(cost.flops(run), run.mode, run.spec.shape.n_params,
                                                float(spent) if isinstance(spent, (int, float)) else None, wall)))
    return last_invocation(found)


def _cost_model(metrics: list[dict]) -> CostModel:
    """The runner's estimate, with the characters per token and vocabulary the records say."""
    per = [m["data_chars"] / m["data_tokens"] for m in metrics if m.get("data_chars") and m.get("data_tokens")]
    vocab = next(int(m["vocab_size"]) for m in metrics if m.get("vocab_size"))
    return CostModel(chars_per_token=sorted(per)[len(per) // 2] if per else 1.0, vocab_size=vocab)


def last_invocation(found: list[Span]) -> list[Span]:
    """The runs whose spans chain back from the last one ended without a gap of `GAP` seconds (older records, copied
    or from an earlier invocation, are left out)."""
    found = sorted(found, key=lambda s: s.start, reverse=True)
    kept, earliest = [], math.inf
    for span in found:
        if kept and span.end < earliest - GAP:
            break
        kept.append(span)
        earliest = min(earliest, span.start)
    return sorted(kept, key=lambda s: s.start)


def replay(found: list[Span], every: float, workers: int) -> list[tuple[float, float, float | None, float | None]]:
    """(seconds elapsed, seconds truly left, the summary's seconds left, the old clock's) every `every` seconds."""
    began, ended_at = found[0].start, max(s.end for s in found)
    now = [began]
    planned: dict[tuple[str, float], float] = {}
    for s in found:
        key = (s.cost.kind, s.cost.n_params)
        planned[key] = planned.get(key, 0.0) + s.cost.bound
    shown = PlainProgress(len(found), _Null(), planned=planned, every=math.inf, clock=lambda: now[0])
    shown.workers = workers
    pending, rows, t = sorted(found, key=lambda s: s.end), [], began + every
    while t < ended_at:
        now[0] = t
        while pending and pending[0].end <= t:
            shown.ended(None, "ok", pending.pop(0).cost)
        flight = [InFlight((t - s.start) / max(s.end - s.start, 1e-9), t - s.start, replace(s.cost, spent=None, seconds=None))
                  for s in pending if s.start <= t]
        shown.tick(len(flight), flight)
        ended = [s for s in found if s.end <= t]
        rows.append((t - began, ended_at - t, shown.seconds_left(len(ended), t - began),
                     old_clock(found, ended, flight, t - began)))
        t += every
    return rows


def old_clock(found: list[Span], ended: list[Span], flight: list[InFlight], elapsed: float) -> float | None:
    """The old clock (before the seventeenth session): the share of the summed upper bounds done (ended runs at their bound,
    runs in flight at their fraction of it), one rate for every FLOP."""
    total = sum(s.cost.bound for s in found)
    done = sum(s.cost.bound for s in ended) + sum(r.fraction * r.cost.bound for r in flight)
    return elapsed * (total - done) / done if 0 < done < total else None


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def off_by(rows: list[tuple[float, float, float | None]]) -> tuple[float, float, int]:
    """The median and worst factor between a clock's time left and the truth, and how many times it had none."""
    factors = sorted(math.exp(abs(math.log(est / truth))) for _, truth, est in rows if est and truth > 0)
    none = sum(1 for _, _, est in rows if est is None)
    return (factors[len(factors) // 2], factors[-1], none) if factors else (math.nan, math.nan, none)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("out", type=Path, help="the study's run folder (its runs/ with records)")
    parser.add_argument("--pretrain", nargs="+", default=None)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between summaries (default 60)")
    parser.add_argument("--workers", type=int, default=2, help="the study's workers (default 2)")
    args = parser.parse_args(argv)
    found = spans(args.study, args.out, tuple(args.pretrain) if args.pretrain else None)
    rows = replay(found, args.every, args.workers)
    print(f"{len(found)} runs replayed, {duration(max(s.end for s in found) - found[0].start)} in all")
    print(f"{'elapsed':>8} {'left':>8} {'now says':>9} {'before':>9}")
    for elapsed, truth, est, old in rows:
        print(f"{duration(elapsed):>8} {duration(truth):>8} {_shown(est):>9} {_shown(old):>9}")
    for name, column in (("now", 2), ("the old clock", 3)):
        median, worst, none = off_by([(r[0], r[1], r[column]) for r in rows])
        print(f"{name}: off by ×{median:.2f} at the median, ×{worst:.1f} at worst; no figure {none} times")
    return 0


def _shown(seconds: float | None) -> str:
    return "unknown" if seconds is None else duration(seconds)


if __name__ == "__main__":
    sys.exit(main())
