"""How long a study has left, for the plain progress summary: each run's expected FLOPs at the seconds per FLOP its
size has shown. No torch.

The runner knows each run's upper bound in FLOPs (`study/cost.py`: a length search counted at every length up to
its step cap) and its size. Two things make the bound a poor clock, both measured on two CPU cores:
- a run with a length search trains a small share of its bound (`PRIOR_SHARE`), and
- seconds per FLOP fall with size: cpu-fixed-tokens-30m's pretrainings took 340 s per TFLOP at w7k, 109 at w25k,
  62, 43, 31 and 22 at w500k (about N^-0.64), so a small model's FLOPs take longest.
A third: a from-scratch run or fine-tune takes 2–3 times a pretraining's seconds per FLOP (its evaluations). The
clock learns all three as the study goes (the share from ended runs of each mode, the seconds per FLOP against size
and mode from ended runs and those in flight) and says time left as the remaining work over the workers, or the longest
run in flight's own time to go where that is longer. `benchmarks/progress_clock.py` replays a finished study.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

# The share of its upper bound a run of each mode trains, until a run of that mode ends in this invocation (then
# the ended runs' own share). Measured, realized 6N FLOPs over the bound, in cpu-w1m, cpu-fixed-tokens-5m, -30m and
# -30m-seed1: fine-tunes 0.6–0.9 %, from-scratch runs 8–11 %, pretrainings (which stop on their budget) 87–100 %.
# Counted at their bounds, cpu-fixed-tokens-30m's 48 fine-tunes (5 minutes of its 49) weighed twice its pretrainings.
PRIOR_SHARE = {"pretrain": 1.0, "scratch": 0.1, "finetune": 0.01}
# Seconds per FLOP against N, log-log, until three sizes have shown theirs: cpu-fixed-tokens-30m's six pretrainings
# (340 s per TFLOP at w7k to 22 at w500k) fit -0.64; a slope from two neighbouring sizes is mostly noise.
PRIOR_SLOPE, SIZES_FOR_SLOPE = -0.64, 3
# A mode's seconds per FLOP against a pretraining's of the same N, until a run of that mode has ended or reported:
# from-scratch runs and fine-tunes spend most of their seconds evaluating (a length search's branches and their
# test set: a w100k fine-tune 0.77 s of steps in 3.6 s), which 6N FLOPs do not count. Measured, the median at each
# size over the size's pretraining (`python benchmarks/rates_by_mode.py runs/cpu-fixed-tokens-10m-text runs/cpu-w1m`):
# from-scratch runs ×1.9–2.5 and ×1.1–2.0, fine-tunes ×2.7–3.2 and ×1.3–3.2. Counted at a pretraining's rate,
# cpu-fixed-tokens-10m-text's fine-tunes (its last 3 minutes, none ended before minute 15) were a third of their
# time, and the replayed summary said 3m56s at minute 12 with 5m54s to go (docs/studies.md has the replays).
RATE_VS_PRETRAIN = {"pretrain": 1.0, "scratch": 2.0, "finetune": 2.8}
TRAINS_ITS_PLAN = 0.5   # a mode whose share is above this: its steps so far over its planned steps are its FLOPs'


@dataclass(frozen=True)
class Cost:
    """A run's estimated cost as the summary counts it: its upper bound (the runner's, FLOPs), its mode and size,
    and, once it has ended, what its record says it spent (6N FLOPs and wall seconds; None where unknown)."""

    bound: float = 0.0
    kind: str = ""
    n_params: float = 0.0
    spent: float | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class InFlight:
    """How far a running run is, as its last progress report said: the fraction of its planned steps done after
    `seconds` running, `since` seconds ago; its cost (the runner's; empty where there is none).

    Why `since`: a worker reports at its evaluations only, so the time now over the fraction last reported read the
    pace low between reports (cpu-fixed-tokens-10m-text's w500k pretraining, at 5 % after a minute: "18m56s to go",
    and it ended 9m51s later)."""

    fraction: float
    seconds: float
    cost: Cost = Cost()
    since: float = 0.0

    def to_go(self, upto: float = 1.0) -> float | None:
        """Seconds until it is `upto` of its planned steps through (a length search that stops early ends sooner) at
        its pace at its last report, less the time since; None before its first step."""
        if self.fraction <= 0:
            return None
        return max(0.0, self.seconds * (upto - self.fraction) / self.fraction - self.since)


@dataclass
class CostClock:
    """A study's estimated cost by (mode, size): what this invocation's runs may cost at most (`planned`), the bounds
    of those that ended, what those spent, and the seconds per FLOP each ended run took."""

    planned: dict[tuple[str, float], float] = field(default_factory=dict)
    ended: dict[tuple[str, float], float] = field(default_factory=dict)
    spent: dict[str, list[float]] = field(default_factory=dict)          # mode -> [bounds ended, FLOPs spent]
    rates: list[tuple[str, float, float]] = field(default_factory=list)  # (mode, N, seconds per FLOP)

    def end(self, cost: Cost, ran: bool) -> None:
        """A run ended; `ran` False: blocked or deferred, no part of this invocation's cost."""
        key = (cost.kind, cost.n_params)
        if not ran:
            self.planned[key] = self.planned.get(key, 0.0) - cost.bound
            return
        self.ended[key] = self.ended.get(key, 0.0) + cost.bound
        spent = cost.bound if cost.spent is None else cost.spent
        totals = self.spent.setdefault(cost.kind, [0.0, 0.0])
        totals[0], totals[1] = totals[0] + cost.bound, totals[1] + spent
        if spent > 0 and cost.seconds:
            self.rates.append((cost.kind, cost.n_params, cost.seconds / spent))

    def share(self, kind: str) -> float:
        """The share of its bound a run of `kind` is expected to train: the ended ones' so far, else the prior."""
        bounds, spent = self.spent.get(kind, (0.0, 0.0))
        return spent / bounds if bounds > 0 else PRIOR_SHARE.get(kind, 1.0)

    def seconds_left(self, partial: Sequence[InFlight], workers: int) -> float | None:
        """The runs not ended, at their expected FLOPs and their size's seconds per FLOP, over `workers`; at least
        the longest in flight's own time to go. None while no run has shown a pace."""
        rate = _rate_by_size(self.rates + [(r.cost.kind, r.cost.n_params, r.seconds / (r.fraction * r.cost.bound))
                                           for r in partial if self._paced(r)])
        if rate is None:
            return None
        waiting = dict(self.planned)
        for key, bound in [*self.ended.items(), *(((r.cost.kind, r.cost.n_params), r.cost.bound) for r in partial)]:
            waiting[key] = waiting.get(key, 0.0) - bound
        flight = [self._in_flight_left(run, rate) for run in partial]
        total = sum(max(0.0, b) * self.share(k) * rate(k, n) for (k, n), b in waiting.items()) + sum(flight)
        return max(total / max(1, workers), max(flight, default=0.0))

    def _paced(self, run: InFlight) -> bool:
        """Its steps say its seconds per FLOP: it trains its plan (`to_go`) and has a bound."""
        return run.cost.bound > 0 and self.to_go(run) is not None

    def to_go(self, run: InFlight) -> float | None:
        """A run in flight's seconds to go at its own pace, to the share of its plan its mode trains; None where
        its steps do not say (before its first, or a length search, which ends far before its planned steps: the
        summary said "30m13s to go" of fine-tunes that ended in seconds)."""
        share = self.share(run.cost.kind)
        return run.to_go(min(1.0, share)) if share > TRAINS_ITS_PLAN else None

    def _in_flight_left(self, run: InFlight, rate) -> float:
        """A run in flight: `to_go` where its steps say, else its expected FLOPs at its size's rate."""
        to_go = self.to_go(run)
        if to_go is not None:
            return to_go
        return self.share(run.cost.kind) * run.cost.bound * rate(run.cost.kind, run.cost.n_params)


def _rate_by_size(seen: list[tuple[str, float, float]]):
    """rate(mode, N): seconds per FLOP, a line in log N fitted on that mode's runs (where it has none, on every
    mode's, each over its `RATE_VS_PRETRAIN`, times the mode's own); None where no run has been seen."""
    if not seen:
        return None
    fits = {kind: _log_line([(n, r) for k, n, r in seen if k == kind]) for kind in {k for k, _, _ in seen}}
    anyone = _log_line([(n, r / RATE_VS_PRETRAIN.get(k, 1.0)) for k, n, r in seen])
    return lambda kind, n: fits[kind](n) if kind in fits else RATE_VS_PRETRAIN.get(kind, 1.0) * anyone(n)


def _log_line(points: list[tuple[float, float]]):
    """log rate = a + b·log N by least squares over the sizes seen (each size's mean log rate)."""
    by_size: dict[float, list[float]] = {}
    for n, r in points:
        by_size.setdefault(max(n, 1.0), []).append(math.log(r))
    xs = [math.log(n) for n in by_size]
    ys = [sum(v) / len(v) for v in by_size.values()]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if len(xs) >= SIZES_FOR_SLOPE else PRIOR_SLOPE
    return lambda n: math.exp(my + slope * (math.log(max(n, 1.0)) - mx))
