"""Measured step times of this machine: what `compile="auto"` decides by, and the recompile check.

Our step's eager and compiled step times and the compile time are recorded under
`<EFFDATA_HOME>/bench/step_times.json`, keyed by everything that changes them (`step_key`: processor or
GPU, torch version, shape, batch, vocabulary, threads, precision), by `python -m effdata.bench` or by the
first run that needs them (`train._compile_decision`). A run reads its own key: compiling pays when its
expected steps × (eager − compiled step time) exceed the compile time by half again (`compile_pays`).
Measured on this 2-core CPU at batch 16 (docs/notes/issue-13.md): a first compile in a process took
2-66 s depending on the inductor disk cache and the load, later ones of the same shape in the same
process ~0.1 s; a 1,000-step run at n100k gained less than a cold compile costs.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from effdata.paths import atomic_write_json, home as _home
from effdata.spec import ModelShape

FILE = "bench/step_times.json"


@dataclass(frozen=True)
class StepTimes:
    eager_s: float      # median seconds of an eager step
    compiled_s: float   # median seconds of a compiled step
    compile_s: float    # a process's first compiled step less an eager step: tracing and code generation
    measured: str = ""  # when, and the load average then


def step_key(dev: torch.device, shape: ModelShape, batch: int, vocab: int, threads: int, precision: str) -> str:
    """What a step's time depends on; a home shared by several machines keeps one entry per machine."""
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
    return (f"{dev.type}:{where}|torch {torch.__version__}|L{shape.n_layer}d{shape.d_model}h{shape.n_head}"
            f"c{shape.n_ctx}|batch {batch}|vocab {vocab}|threads {threads}|{precision}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load(key: str, home: Path | str | None = None) -> StepTimes | None:
    """The measured entry for `key`, or None (never measured, or the file unreadable)."""
    try:
        entry = json.loads((_home(home) / FILE).read_text()).get(key)
        return StepTimes(**entry) if entry else None
    except (OSError, ValueError, TypeError):
        return None


def record(key: str, times: StepTimes, home: Path | str | None = None) -> Path:
    """Add or replace the entry for `key` (atomically: runs may be reading the file)."""
    path = _home(home) / FILE
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        entries = {}
    entries[key] = asdict(times)
    atomic_write_json(path, entries)
    return path


def measured_now() -> str:
    load_avg = f", load average {_load():.2f}" if _load() is not None else ""
    return time.strftime("%Y-%m-%d %H:%M") + load_avg


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def compile_pays(times: StepTimes, total_steps: int) -> bool:
    """Whether compiling shortens a run of `total_steps` steps: the time it saves must exceed the compile
    time by half again, so that step times off by a third still leave no compiled run slower than eager."""
    return total_steps * (times.eager_s - times.compiled_s) > 1.5 * times.compile_s


def compiled_graphs() -> int:
    """Graphs torch.compile has built in this process so far (a count that grows on every recompile)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"]["unique_graphs"])
