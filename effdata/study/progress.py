"""What a study shows while it works: the data it prepares, then its runs (tqdm's bar in a terminal, plain
lines in a log).

The data layer logs what it starts building (`effdata.data.*`, INFO); `preparation_shown` prints those lines
while a command prepares its corpora, so a first run on an empty cache says what takes its minute or two.

A redrawing bar suits a terminal. Written to a file (CI, SLURM logs, nohup) every redraw is kept, and the
bar's postfix (the latest worker's step line) made single log lines kilobytes long. There `PlainProgress`
prints one line per ended run and, every `every` seconds, one summary line. `open_progress("auto", ...)`
decides by the stream's `isatty()`; `run.py --progress bar|plain` overrides it.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from typing import Callable, Protocol, Sequence, TextIO

from effdata.study.clock import Cost, CostClock, InFlight

MODES = ("auto", "bar", "plain")
LINE_MAX = 200           # a plain line is cut here: a log line should fit a screen or two, whatever an error says
SUMMARY_EVERY = 60.0     # seconds between plain summary lines


class Progress(Protocol):
    def message(self, line: str) -> None: ...                       # a running run's latest step line
    def ended(self, line: str | None, status: str, cost: Cost = Cost()) -> None: ...  # ok, failed or blocked
    def tick(self, running: int, partial: Sequence[InFlight] = ()) -> None: ...
    # every scheduler pass; `partial`: each run in flight that has said how far it is
    def close(self) -> None: ...


def one_line(text: str, limit: int = LINE_MAX) -> str:
    """`text` on one line (an error's line breaks, with the indentation around them, become one space), cut
    to `limit` characters."""
    text = re.sub(r"\s*[\r\n]+\s*", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def duration(seconds: float) -> str:
    """45 -> '45s', 192 -> '3m12s', 3900 -> '1h05m': elapsed and remaining times in a summary."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class BarProgress:
    """Today's terminal view: one bar of ended runs, the latest step line as its postfix, a line per run
    written above it."""

    def __init__(self, total: int, stream: TextIO):
        from tqdm.auto import tqdm  # noqa: PLC0415

        self.bar = tqdm(total=total, desc="runs", unit="run", dynamic_ncols=True, file=stream)

    def message(self, line: str) -> None:
        self.bar.set_postfix_str(line[-100:], refresh=True)

    def ended(self, line: str | None, status: str, cost: Cost = Cost()) -> None:
        if line is not None:
            self.bar.write(line)
        self.bar.update(1)

    def tick(self, running: int, partial: Sequence[InFlight] = ()) -> None:
        pass

    def close(self) -> None:
        self.bar.close()


class PlainProgress:
    """A line per ended run and a periodic summary, nothing redrawn: for logs. Step lines of running runs
    are dropped (each run writes its own log.txt); the summary says how many are running."""

    def __init__(self, total: int, stream: TextIO, *, planned: dict[tuple[str, float], float] | None = None,
                 every: float = SUMMARY_EVERY, clock: Callable[[], float] = time.monotonic):
        """`planned`: (run mode, N) -> the summed upper bounds of those runs here (`clock.CostClock`; none: time
        left by the runs' count)."""
        self.total, self.stream, self.every, self.clock = total, stream, every, clock
        self.started = self.last_summary = clock()
        self.counts = {"ok": 0, "failed": 0, "blocked": 0}
        self.costs = CostClock(planned={k: v for k, v in (planned or {}).items() if v > 0})
        self.workers = 1   # the most runs seen in flight at once
        self.running = 0
        self.partial: tuple[InFlight, ...] = ()   # the runs in flight that have said how far they are

    def _print(self, line: str) -> None:
        print(one_line(line), file=self.stream, flush=True)

    def message(self, line: str) -> None:
        pass

    def ended(self, line: str | None, status: str, cost: Cost = Cost()) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1
        self.costs.end(cost, ran=status not in ("blocked", "deferred"))
        if line is not None:
            self._print(line)

    def tick(self, running: int, partial: Sequence[InFlight] = ()) -> None:
        self.running, self.partial = running, tuple(partial)
        self.workers = max(self.workers, running)
        if self.clock() - self.last_summary >= self.every:
            self._print(self.summary())

    def close(self) -> None:
        self._print(self.summary())

    def summary(self) -> str:
        self.last_summary = now = self.clock()
        ended = sum(self.counts.values())
        elapsed = now - self.started
        return (f"runs: {ended}/{self.total} ended ({self.counts['ok']} ok, {self.counts['failed']} failed, "
                f"{self.counts['blocked']} blocked); {self.running} running{self._through()}; "
                f"{duration(elapsed)} elapsed; {self._left(ended, elapsed)}")

    def _through(self) -> str:
        """' (12 % of its steps, 22m00s to go; 57 %, 3m00s to go)': how far the runs in flight are and when each
        ends at its pace so far, where they have said (with an estimate, not for a length search: `CostClock.to_go`)."""
        parts = []
        for index, run in enumerate(sorted(self.partial, key=lambda r: r.fraction)):
            to_go = self.costs.to_go(run) if self.costs.planned else run.to_go()
            parts.append(f"{100 * run.fraction:.0f} %" + (" of its steps" if index == 0 else "")
                         + (f", {duration(to_go)} to go" if to_go is not None else ""))
        return f" ({'; '.join(parts)})" if parts else ""

    def _left(self, ended: int, elapsed: float) -> str:
        if ended >= self.total:
            return "none left"
        left = self.seconds_left(ended, elapsed)
        if left is None:
            return "time left unknown until a run ends or says how far it is"
        return f"about {duration(left)} left"

    def seconds_left(self, ended: int, elapsed: float) -> float | None:
        """Time left: by the estimated cost where there is one (`clock.CostClock`: each run's expected FLOPs at the
        seconds per FLOP its size has shown), else by the count, each run in flight counted by its steps so far over
        its planned steps. None while there is no figure. A rough one. Before the sixteenth session runs in flight
        counted as not started (cpu-fixed-tokens-30m's log said "unknown" for its first 21 minutes); before the
        seventeenth (both 6 December) every run counted at its upper bound, at one rate whatever its size, and `benchmarks/progress_clock.py` replaying that
        study finds the old clock off by ×3.2 at the median (1h50m left said a minute in, for 48 minutes)."""
        if self.costs.planned:
            return self.costs.seconds_left(self.partial, self.workers)
        share = (ended + sum(run.fraction for run in self.partial)) / self.total
        return elapsed * (1 - share) / share if share > 0 else None


def open_progress(mode: str, total: int, *, planned: dict[tuple[str, float], float] | None = None, stream: TextIO | None = None,
                  every: float = SUMMARY_EVERY) -> Progress:
    """`mode` "bar", "plain", or "auto": the bar when `stream` (default stderr) is a terminal. `planned`: run
    (mode, N) -> the summed upper bounds of those runs (`PlainProgress`)."""
    stream = stream or sys.stderr
    if mode not in MODES:
        raise ValueError(f"progress must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "auto":
        mode = "bar" if _isatty(stream) else "plain"
    if mode == "bar":
        return BarProgress(total, stream)
    return PlainProgress(total, stream, planned=planned, every=every)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal behind it
        return False


# ----------------------------------------------------------------------------------------------
# The data preparation


class PreparationLines(logging.Handler):
    """The data layer's lines (effdata.data logs what it starts building) to stderr, each under a header
    saying which of the study's corpora is being prepared: nothing is shown when everything is cached."""

    def __init__(self, total: int):
        super().__init__(logging.INFO)
        self.total, self.corpus = total, (0, "")
        self.headed: set[int] = set()
        self.lines = 0
        self.started = time.monotonic()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            index, name = self.corpus
            if index not in self.headed:
                self.headed.add(index)
                print(one_line(f"preparing data {index}/{self.total}: {name}"), file=sys.stderr)
            # One line each, cut like the runs' lines: a corpus of local files names its paths, however long.
            # sys.stderr looked up now, not at import: tests capture it.
            print("  " + one_line(record.getMessage(), LINE_MAX - 2), file=sys.stderr, flush=True)
            self.lines += 1
        except Exception:  # noqa: BLE001  (logging's rule: a failing handler must not stop the work)
            self.handleError(record)


@contextlib.contextmanager
def preparation_shown(total: int):
    """effdata.data's INFO lines shown through a PreparationLines while the block runs, then as before;
    `data ready` with the time taken when something was built. Set the handler's `corpus` (index, name)
    before preparing each one."""
    logger = logging.getLogger("effdata.data")
    handler = PreparationLines(total)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # a root handler someone configured would print each line twice
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
    if handler.lines:  # not reached when the block raised: its error is what is said then
        print(f"data ready ({time.monotonic() - handler.started:.0f} s)", file=sys.stderr)
