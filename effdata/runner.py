"""Execute a study's runs: the results store, resumable scheduling, worker processes, the results table.

The store is one directory per study (see docs/DESIGN.md). A run is identified by an id derived
from its spec; it is done when `runs/<id>/record.json` exists, parses, and matches its spec.
Anything else (no record, a half-written or foreign record, a failed record) is run again, and
an interrupted run resumes from its `resume.pt`.

`execute_run(out_dir, run_id)` runs one planned run in whatever process calls it; schedulers
(`LocalExecutor` here, `effdata.slurm.SlurmExecutor`) only decide when to call it.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from effdata.paths import atomic_write_json, atomic_write_text
from effdata.study import PlannedRun, Study, StudyError, spec_hash

RECORD = "record.json"
SPEC = "spec.json"


# ----------------------------------------------------------------------------------------------
# The store

@dataclass(frozen=True)
class Store:
    out_dir: Path

    @property
    def runs_dir(self) -> Path:
        return self.out_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint"

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.csv"

    def claim(self, study: Study) -> None:
        """Refuse an output directory that holds a different study; record ours otherwise."""
        path = self.out_dir / "study.json"
        identity = json.loads(json.dumps(study.identity(), sort_keys=True, default=list))
        if path.exists():
            try:
                held = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                held = None
            if held != identity:
                raise StudyError(
                    f"{self.out_dir} holds a different study (its study.json differs in name, target, "
                    f"vocab_size or [train] settings); nothing was changed. Use another --out, or move "
                    f"that directory away.\n  held: {held}\n  this: {identity}")
            return
        if self.runs_dir.exists() and any(self.runs_dir.iterdir()):
            raise StudyError(f"{self.out_dir} holds runs but no study.json: not an effdata study directory "
                             f"this command can take over; use another --out")
        atomic_write_json(path, identity)

    def write_plan(self, run: PlannedRun) -> None:
        path = self.run_dir(run.run_id) / SPEC
        planned = {"run_id": run.run_id, "spec": run.spec, "pretrain": run.pretrain,
                   "depends_on": list(run.depends_on)}
        if not path.exists() or json.loads(path.read_text()) != planned:
            atomic_write_json(path, planned)

    def read_plan(self, run_id: str) -> PlannedRun:
        planned = json.loads((self.run_dir(run_id) / SPEC).read_text())
        return PlannedRun(run_id=planned["run_id"], spec=planned["spec"], pretrain=planned["pretrain"],
                          depends_on=tuple(planned["depends_on"]))

    def read_record(self, run_id: str) -> dict[str, Any] | None:
        """The run's record if it is whole and belongs to this run's spec, else None."""
        path = self.run_dir(run_id) / RECORD
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            return None
        if record.get("status") not in ("ok", "failed") or not isinstance(record.get("spec"), dict):
            return None
        if spec_hash(record["spec"]) != run_id.rsplit("-", 1)[-1]:
            return None
        if record["status"] == "ok" and not isinstance(record.get("metrics"), dict):
            return None
        return record

    def is_done(self, run_id: str) -> bool:
        record = self.read_record(run_id)
        return record is not None and record["status"] == "ok"

    def write_record(self, run: PlannedRun, status: str, metrics: dict | None = None,
                     error: str | None = None) -> None:
        atomic_write_json(self.run_dir(run.run_id) / RECORD, {
            "run_id": run.run_id, "status": status, "error": error, "spec": run.spec,
            "pretrain": run.pretrain, "depends_on": list(run.depends_on), "metrics": metrics or {},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.runs_dir.exists():
            return
        for run_dir in sorted(self.runs_dir.iterdir()):
            record = self.read_record(run_dir.name)
            if record is not None:
                yield record

    def write_table(self) -> Path:
        """Regenerate results.csv from every record (the analyzer's input)."""
        import pandas as pd  # noqa: PLC0415

        records = list(self.records())
        flops_of = {r["run_id"]: r["metrics"].get("flops", 0.0) for r in records if r["status"] == "ok"}
        rows = []
        for r in records:
            spec, metrics = r["spec"], r["metrics"]
            row = {"run_id": r["run_id"], "status": r["status"], "error": r["error"] or "",
                   "mode": spec["mode"], "pretrain": r["pretrain"], "size": spec["size"], "seed": spec["seed"]}
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})
            row["pretrain"] = r["pretrain"]  # the table's meaning, whatever the metrics call it
            row["pretrain_flops"] = sum(flops_of.get(dep, 0.0) for dep in r["depends_on"])
            rows.append(row)
        table = pd.DataFrame(rows)
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.results_path, table.to_csv(index=False))
        return self.results_path


# ----------------------------------------------------------------------------------------------
# Running one run, in any process

class RunBusy(RuntimeError):
    """Another live process holds this run (its lock is taken)."""


@contextlib.contextmanager
def exclusive_lock(lock_file: Path, busy_message: str) -> Iterator[None]:
    """An exclusive lock on `lock_file`, released by the kernel if the process dies; RunBusy if held."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_lock(run_dir: Path):
    return exclusive_lock(run_dir / ".lock", f"run {run_dir.name} is being executed by another process")


def execute_with(out_dir: Path | str, run_id: str, body) -> str:
    """The contract every executor relies on, around `body(store, run, run_dir) -> metrics`: take the
    run's lock, skip a done run, and write the record atomically: ok with the metrics, or failed with
    the error (any exception) so the study goes on. Returns "ok", "failed" or "skipped"."""
    store = Store(Path(out_dir))
    run = store.read_plan(run_id)
    run_dir = store.run_dir(run_id)
    with run_lock(run_dir):
        if store.is_done(run_id):
            return "skipped"
        (run_dir / RECORD).unlink(missing_ok=True)
        try:
            metrics = body(store, run, run_dir)
        except Exception as exc:  # noqa: BLE001  (any failure becomes the run's record)
            atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            store.write_record(run, "failed", error=f"{type(exc).__name__}: {exc}")
            return "failed"
        store.write_record(run, "ok", metrics=metrics)
        return "ok"


def execute_run(out_dir: Path | str, run_id: str, threads: int | None = None, progress=None,
                home: Path | str | None = None) -> str:
    """Run one planned run to its record; return its status ("ok", "failed", or "skipped" if done)."""
    from effdata.tokens import run_data  # noqa: PLC0415
    from effdata.train import RunSpec, TrainSettings, train_run  # noqa: PLC0415

    quiet_libraries()

    def train(store: Store, run: PlannedRun, run_dir: Path) -> dict:
        spec_fields = dict(run.spec)
        settings = TrainSettings(**spec_fields.pop("settings"))
        data_settings = {key: spec_fields.pop(key) for key in ("vocab_size", "tokenizer_corpora")
                         if key in spec_fields}
        init_from_run = spec_fields.pop("init_from_run", None)
        if init_from_run is not None:
            spec_fields["init_from"] = str(store.checkpoint_dir(init_from_run))
        spec = RunSpec(settings=settings, **spec_fields)
        data = run_data(spec, home=home, **data_settings)
        return train_run(spec, data, run_dir, progress=progress, threads=threads)

    return execute_with(out_dir, run_id, train)


def quiet_libraries() -> None:
    """Per-run bars and advice from transformers/datasets would drown the study's own progress."""
    with contextlib.suppress(ImportError):
        import datasets  # noqa: PLC0415
        import transformers  # noqa: PLC0415

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


# ----------------------------------------------------------------------------------------------
# Executors: where runs execute

class Executor(Protocol):
    def submit(self, run_id: str) -> None: ...
    def poll(self) -> list[tuple[str, str | None]]: ...
    def messages(self) -> list[str]: ...
    def shutdown(self) -> None: ...


def _die_with_parent() -> None:
    """Workers must not outlive a runner killed with -9: they would race the next runner."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def _worker_main(out_dir: str, threads: int, tasks, events, home) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    while True:
        run_id = tasks.get()
        if run_id is None:
            return
        events.put(("start", run_id, os.getpid()))

        def progress(info: dict, run_id=run_id) -> None:
            events.put(("progress", run_id, info))

        try:
            status = execute_run(out_dir, run_id, threads=threads, progress=progress, home=home)
        except RunBusy as exc:
            events.put(("end", run_id, f"busy: {exc}"))
            continue
        except Exception as exc:  # noqa: BLE001
            events.put(("end", run_id, f"{type(exc).__name__}: {exc}"))
            continue
        events.put(("end", run_id, None if status in ("ok", "failed", "skipped") else status))


class LocalExecutor:
    """Long-lived worker processes (imports paid once), each given a share of the cores."""

    def __init__(self, out_dir: Path, workers: int, threads_per_worker: int, home: Path | None = None):
        self.out_dir = Path(out_dir)
        self.workers = workers
        self.threads = threads_per_worker
        self.home = str(home) if home else None
        self._ctx = mp.get_context("spawn")
        self._tasks = self._ctx.Queue()
        self._events = self._ctx.Queue()
        self._procs: list = []
        self._running: dict[int, str] = {}   # worker pid -> run id
        self._ended: list[tuple[str, str | None]] = []
        self._lines: list[str] = []
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        proc = self._ctx.Process(target=_worker_main, daemon=True,
                                 args=(str(self.out_dir), self.threads, self._tasks, self._events, self.home))
        proc.start()
        self._procs.append(proc)

    def submit(self, run_id: str) -> None:
        self._tasks.put(run_id)

    def _drain(self) -> None:
        while True:
            try:
                kind, run_id, payload = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "start":
                self._running[payload] = run_id
            elif kind == "end":
                self._running = {pid: r for pid, r in self._running.items() if r != run_id}
                self._ended.append((run_id, payload))
            elif kind == "progress":
                self._lines.append(_progress_line(run_id, payload))

    def poll(self) -> list[tuple[str, str | None]]:
        self._drain()
        for proc in list(self._procs):
            if proc.is_alive():
                continue
            self._procs.remove(proc)
            self._drain()
            run_id = self._running.pop(proc.pid, None)
            if run_id is not None:
                self._ended.append((run_id, f"worker process died (exit code {proc.exitcode})"))
            self._spawn()
        ended, self._ended = self._ended, []
        return ended

    def messages(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def shutdown(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs.clear()


def _end_line(run_id: str, record: dict) -> str:
    m = record["metrics"]
    parts = [f"{run_id}: ok", f"loss {m.get('loss', float('nan')):.4f}",
             f"best step {m.get('best_step', '?')}/{m.get('steps', '?')}"]
    if isinstance(m.get("tokens_per_s"), (int, float)):
        parts.append(f"{m['tokens_per_s']:,.0f} tok/s")
    if isinstance(m.get("wall_time"), (int, float)):
        parts.append(f"{m['wall_time']:.0f} s")
    return "  ".join(parts)


def _progress_line(run_id: str, info: dict) -> str:
    parts = [f"{run_id}: step {info.get('step', '?')}/{info.get('total_steps', '?')}"]
    for key, label, fmt in (("train_loss", "train", ".3f"), ("valid_loss", "valid", ".3f"),
                            ("best_valid_loss", "best", ".3f"), ("tokens_per_s", "tok/s", ",.0f")):
        value = info.get(key)
        if isinstance(value, (int, float)):
            parts.append(f"{label} {value:{fmt}}")
    return "  ".join(parts)


# ----------------------------------------------------------------------------------------------
# Scheduling

@dataclass
class Outcome:
    done: list[str] = field(default_factory=list)       # finished ok in this invocation
    skipped: list[str] = field(default_factory=list)    # already done before
    failed: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)  # a dependency failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def schedule(store: Store, runs: list[PlannedRun], executor: Executor, max_parallel: int,
             estimate=None, poll_interval: float = 0.2) -> Outcome:
    """Submit every run whose dependencies are done, at most `max_parallel` at a time, until all end."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    outcome = Outcome()
    pending: dict[str, PlannedRun] = {}
    for run in runs:
        store.write_plan(run)
        if store.is_done(run.run_id):
            outcome.skipped.append(run.run_id)
        else:
            pending[run.run_id] = run
    # Long runs first (they set the wall time); pretraining first of all (fine-tunes wait on it).
    cost = estimate or (lambda run: 0.0)
    order = sorted(pending, key=lambda rid: (pending[rid].mode != "pretrain", -cost(pending[rid])))
    in_flight: set[str] = set()
    bar = tqdm(total=len(pending), desc="runs", unit="run", dynamic_ncols=True, file=sys.stderr)
    try:
        while order or in_flight:
            for run_id in list(order):
                if len(in_flight) >= max_parallel:
                    break
                deps = pending[run_id].depends_on
                bad = [d for d in deps if d in outcome.failed or d in outcome.blocked]
                if bad:
                    outcome.blocked[run_id] = f"dependency did not finish: {', '.join(bad)}"
                    order.remove(run_id)
                    bar.update(1)
                    continue
                if all(store.is_done(d) for d in deps):
                    executor.submit(run_id)
                    in_flight.add(run_id)
                    order.remove(run_id)
            if order and not in_flight and not any(
                    all(store.is_done(d) for d in pending[r].depends_on) for r in order):
                for run_id in order:  # a dependency outside this plan that is not done
                    outcome.blocked[run_id] = "dependency not done and not in this plan"
                break
            for line in executor.messages():
                bar.set_postfix_str(line[-100:], refresh=True)
            for run_id, reason in executor.poll():
                if run_id not in in_flight:
                    continue
                in_flight.discard(run_id)
                record = store.read_record(run_id)
                if record is None and reason and reason.startswith("busy:"):
                    outcome.failed[run_id] = reason  # another process owns it: leave its files alone
                elif record is None:
                    # The process died before writing a record: write it so the reason is kept.
                    why = reason or "ended without a record"
                    store.write_record(pending[run_id], "failed", error=why)
                    outcome.failed[run_id] = why
                elif record["status"] == "ok":
                    outcome.done.append(run_id)
                else:
                    outcome.failed[run_id] = record["error"] or reason or "failed"
                bar.write(_end_line(run_id, record) if run_id in outcome.done
                          else f"{run_id}: FAILED: {outcome.failed[run_id]}")
                bar.update(1)
            time.sleep(poll_interval)
    finally:
        bar.close()
        executor.shutdown()
    return outcome
