"""Measurement (not a test): a run's "to go" in the progress summary, timed from now or from its last report.

    .venv/bin/python benchmarks/clock_report_lag.py runs/cpu-fixed-tokens-10m-text/runs/pretrain-text-w500k-*/record.json

A worker reports its step at its evaluations only. Until the eighteenth session the summary divided the time now by
the fraction last reported, which reads the pace low between reports; since, it times a run from its report and
subtracts the time since (`study/clock.py`, `InFlight.since`). Records keep their evaluations' steps, not their
times, so each evaluation is placed at a steady pace after the run's setup (its `time_setup`, then its steps and
evaluations spread evenly to its wall time less its test); every 30 s the two clocks' time to go is set against the
time the record says the run really had left. Prints, per record, the median and the extremes of each clock's
factor (to go over the truth).
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def factors(metrics: dict, every: float = 30.0) -> tuple[list[float], list[float]]:
    """(old, new) clocks' to-go over the true time left, every `every` seconds after the first report."""
    wall, setup = float(metrics["wall_time"]), float(metrics["time_setup"])
    pace = wall - setup - float(metrics.get("time_test") or 0.0)
    fractions = [c["step"] / metrics["total_steps"] for c in metrics["curve"] if c["step"] > 0]
    old, new = [], []
    t = every
    while t < wall:
        said = [f for f in fractions if setup + f * pace <= t]
        if said:
            f = max(said)
            at = setup + f * pace
            old.append(t * (1 - f) / f / (wall - t))
            new.append(max(0.0, at * (1 - f) / f - (t - at)) / (wall - t))
        t += every
    return old, new


def main(paths: list[str]) -> int:
    for path in paths:
        metrics = json.loads(Path(path).read_text())["metrics"]
        old, new = factors(metrics)
        if not old:
            print(f"{path}: no report before it ended")
            continue
        print(f"{Path(path).parent.name}: {len(old)} times; from now ×{statistics.median(old):.2f} "
              f"(×{min(old):.2f}–{max(old):.2f}), from its report ×{statistics.median(new):.2f} "
              f"(×{min(new):.2f}–{max(new):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
