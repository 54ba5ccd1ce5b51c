"""Execute a study's runs: the data of one run, resumable scheduling, worker processes.

`execute_run(out_dir, run_id)` runs one planned run in whatever process calls it: it reads the
`StudyRun` the store holds, builds its `RunData` from effdata.data, trains it, and writes its record.
Schedulers (`LocalExecutor` here, `effdata.study.slurm.SlurmExecutor`) only decide when to call it. An
interrupted run resumes from its `resume.pt`.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import importlib
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

from effdata.paths import atomic_write_text
from effdata.spec import RunSpec, StudyRun
from effdata.study.clock import Cost, InFlight
from effdata.study.progress import SUMMARY_EVERY, open_progress
from effdata.study.store import RECORD, Store


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
    """The contract every executor relies on, around `body(spec, run_dir) -> metrics`: take the run's
    lock, skip a done run, resolve the spec (a fine-tune's checkpoint), and write the record atomically:
    ok with the metrics, or failed with the error (any exception) so the study goes on.
    Returns "ok", "failed" or "skipped"."""
    store = Store(Path(out_dir))
    run = store.read_run(run_id)
    run_dir = store.run_dir(run_id)
    with run_lock(run_dir):
        if store.is_done(run_id):
            return "skipped"
        (run_dir / RECORD).unlink(missing_ok=True)
        spec = resolved_spec(store, run)
        try:
            missing = [dep for dep in run.depends_on if not store.is_done(dep)]
            if missing:
                raise RuntimeError(f"dependency not done: {', '.join(missing)}")
            metrics = body(spec, run_dir)
        except Exception as exc:  # noqa: BLE001  (any failure becomes the run's record)
            atomic_write_text(run_dir / "error.txt", traceback.format_exc())
            why = getattr(exc, "stop_reason", None)  # RunFailed: "diverged" for a divergence
            store.write_record(run, "failed", error=f"{type(exc).__name__}: {exc}", spec=spec.to_dict(),
                               metrics={"stop_reason": why} if why else None)
            return "failed"
        store.write_record(run, "ok", metrics=metrics, spec=spec.to_dict())
        return "ok"


def resolved_spec(store: Store, run: StudyRun) -> RunSpec:
    """The run's spec with a fine-tune's `init_from` set to the checkpoint of its pretraining run it names:
    the run's own, or a mid-run one (`init_from_checkpoint`, e.g. checkpoint@10tpp)."""
    if run.init_from_run is None:
        return run.spec
    path = store.checkpoint_dir(run.init_from_run, run.init_from_checkpoint)
    return dataclasses.replace(run.spec, init_from=str(path))


def execute_run(out_dir: Path | str, run_id: str, threads: int | None = None, progress=None,
                home: Path | str | None = None, device: str | None = None) -> str:
    """Run one planned run to its record; return its status ("ok", "failed", or "skipped" if done).
    `device`: "cpu", "cuda" or "auto"/None (CUDA when present); see effdata.training.device.pick_device."""
    from effdata.study.rundata import prepared_once, run_data  # noqa: PLC0415  (torch: only in the process that trains)
    from effdata.training.train import train_run  # noqa: PLC0415

    quiet_libraries()

    store = Store(Path(out_dir))
    planned = store.read_run(run_id)
    rivals = store.rival_loss(planned) if planned.spec.settings.stop_by_forecast else None  # siblings: only if used

    def train(spec: RunSpec, run_dir: Path) -> dict:
        started = time.perf_counter()  # reading the data is part of the run's setup time
        return train_run(spec, run_data(spec, home=home, prepared=prepared_once), run_dir, progress=progress,
                         threads=threads, device=device, started=started, rivals=rivals)

    return execute_with(out_dir, run_id, train)


def quiet_libraries() -> None:
    """Per-run bars and advice from transformers/datasets would drown the study's own progress. Each library
    on its own: a GPU machine without `datasets` (docs/notes/issue-21.md) still quietens transformers."""
    with contextlib.suppress(ImportError):
        import transformers  # noqa: PLC0415

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    with contextlib.suppress(ImportError):
        import datasets  # noqa: PLC0415

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()


# ----------------------------------------------------------------------------------------------
# Executors: where runs execute

class Executor(Protocol):
    def submit(self, run_id: str) -> None: ...
    def poll(self) -> list[tuple[str, str | None]]: ...
    def messages(self) -> list[str]: ...
    def _forget(self, run_id: str) -> None:
        """A run that ended, or whose worker died, is no longer in flight."""
        self._through.pop(run_id, None)
        self._started.pop(run_id, None)

    def through(self) -> dict[str, InFlight]: ...   # run in flight -> how far it is, where it has said
    def shutdown(self) -> None: ...


def _die_with_parent() -> None:
    """Workers must not outlive a runner killed with -9: they would race the next runner."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


DEFAULT_TARGET = "effdata.study.runner:execute_run"


def import_target(target: str):
    """The function a "module:function" string names (executors take one so that tests can stand in)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker process of a LocalExecutor is started with (its GPU aside)."""

    out_dir: str
    threads: int
    home: str | None = None
    device: str | None = None          # passed to execute_run: "cpu", "cuda" or None (auto)
    target: str = DEFAULT_TARGET


def _worker_main(config: WorkerConfig, gpu: str | None, tasks, events) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C means
    if gpu is not None:  # before anything touches CUDA: the worker sees its one GPU as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    events.put(("ready", None, (os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"))))
    serve(config, tasks, events, cuda_broken if gpu is not None else lambda: False)


def serve(config: WorkerConfig, tasks, events, broken) -> None:
    """Run the tasks' run ids one after another until None, or until `broken()` says this process's CUDA
    context is lost after a run: the worker then exits and the executor starts a new one on its GPU."""
    function = import_target(config.target)
    while True:
        run_id = tasks.get()
        if run_id is None:
            return
        events.put(("start", run_id, os.getpid()))

        def progress(info: dict, run_id=run_id) -> None:
            events.put(("progress", run_id, info))

        try:
            status = function(config.out_dir, run_id, threads=config.threads, progress=progress, home=config.home,
                              device=config.device)
        except RunBusy as exc:
            status = f"busy: {exc}"
        except Exception as exc:  # noqa: BLE001
            status = f"{type(exc).__name__}: {exc}"
        events.put(("end", run_id, None if status in ("ok", "failed", "skipped") else status))
        if broken():
            return


def cuda_broken() -> bool:
    """Whether this process's CUDA context is lost. After a device-side assert or an illegal memory access
    every later CUDA call in the process fails, so the runs given to it next would fail too."""
    torch = sys.modules.get("torch")  # a worker that never imported torch never touched CUDA
    if torch is None or not torch.cuda.is_initialized():
        return False
    try:
        torch.cuda.synchronize()
        torch.ones(1, device="cuda").add_(1).item()
    except Exception:  # noqa: BLE001 - whatever CUDA raises, the context cannot be trusted
        return True
    return False


class LocalExecutor:
    """Long-lived worker processes (imports paid once), each given a share of the cores and, with
    `gpus`, its own GPU: worker i sees only gpus[i % len(gpus)] (CUDA_VISIBLE_DEVICES), and a worker
    that dies, or whose CUDA context is lost, is replaced by a new one on the same GPU."""

    def __init__(self, out_dir: Path, workers: int, threads_per_worker: int, home: Path | None = None,
                 device: str | None = None, gpus: list[str] | None = None, target: str = DEFAULT_TARGET):
        self.config = WorkerConfig(str(out_dir), threads_per_worker, str(home) if home else None, device, target)
        self.out_dir = Path(out_dir)
        self.workers = workers
        self._ctx = mp.get_context("spawn")
        self._tasks = self._ctx.Queue()
        self._events = self._ctx.Queue()
        self._procs: dict = {}                # worker process -> its GPU (None: no GPU of its own)
        self._running: dict[int, str] = {}   # worker pid -> run id
        self._ended: list[tuple[str, str | None]] = []
        self._lines: list[str] = []
        self._through: dict[str, tuple[float, float]] = {}  # run id -> (last step / planned steps, when it said)
        self._started: dict[str, float] = {}  # run id -> when a worker took it (time.monotonic())
        self.worker_gpus: dict[int, str | None] = {}  # worker pid -> its CUDA_VISIBLE_DEVICES, as it reported
        for i in range(workers):
            self._spawn(gpus[i % len(gpus)] if gpus else None)

    def _spawn(self, gpu: str | None) -> None:
        proc = self._ctx.Process(target=_worker_main, daemon=True, args=(self.config, gpu, self._tasks, self._events))
        proc.start()
        self._procs[proc] = gpu

    def submit(self, run_id: str) -> None:
        self._tasks.put(run_id)

    def _drain(self) -> None:
        while True:
            try:
                kind, run_id, payload = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "ready":
                pid, gpu = payload
                self.worker_gpus[pid] = gpu
            elif kind == "start":
                self._running[payload] = run_id
                self._started[run_id] = time.monotonic()
            elif kind == "end":
                self._running = {pid: r for pid, r in self._running.items() if r != run_id}
                self._forget(run_id)
                self._ended.append((run_id, payload))
            elif kind == "progress":
                self._lines.append(_progress_line(run_id, payload))
                self._through[run_id] = (_fraction(payload), time.monotonic())

    def poll(self) -> list[tuple[str, str | None]]:
        self._drain()
        for proc, gpu in list(self._procs.items()):
            if proc.is_alive():
                continue
            del self._procs[proc]
            self._drain()
            self.worker_gpus.pop(proc.pid, None)
            run_id = self._running.pop(proc.pid, None)
            if run_id is not None:
                self._forget(run_id)
                self._ended.append((run_id, f"worker process died (exit code {proc.exitcode})"))
            self._spawn(gpu)
        ended, self._ended = self._ended, []
        return ended

    def messages(self) -> list[str]:
        lines, self._lines = self._lines, []
        return lines

    def _forget(self, run_id: str) -> None:
        """A run that ended, or whose worker died, is no longer in flight."""
        self._through.pop(run_id, None)
        self._started.pop(run_id, None)

    def through(self) -> dict[str, InFlight]:
        now = time.monotonic()
        return {run_id: InFlight(fraction, said - self._started.get(run_id, said), since=now - said)
                for run_id, (fraction, said) in self._through.items()}

    def shutdown(self) -> None:
        for proc in self._procs:
            if proc.is_alive():
                proc.kill()
        for proc in self._procs:
            proc.join(timeout=5)
        self._procs.clear()


# A record's `stop_reason` (and `stopped`, in records before v3), in words.
STOPPED = {"early_stop": "stopped early", "early": "stopped early", "budget": "full schedule",
           "step_cap": "stopped at its step cap", "epoch_budget": "full schedule (epoch budget)",
           "token_budget": "full schedule (token budget)", "step_floor": "full schedule (step floor)",
           "forecast": "stopped by forecast (a losing sweep point)"}


def _end_line(run_id: str, record: dict) -> str:
    m = record["metrics"]
    parts = [f"{run_id}: ok", f"loss {m.get('loss', float('nan')):.4f}",
             f"best step {m.get('best_step', '?')}/{m.get('steps', '?')}"]
    if isinstance(m.get("tokens_per_s"), (int, float)):
        parts.append(f"{m['tokens_per_s']:,.0f} tok/s")
    if isinstance(m.get("wall_time"), (int, float)):
        parts.append(f"{m['wall_time']:.0f} s")
    reason = m.get("stop_reason") or m.get("stopped")
    if reason:
        parts.append(STOPPED.get(reason, f"stopped: {reason}"))
    return "  ".join(parts)


def _fraction(info: dict) -> float:
    """A progress report's step over its planned steps, within [0, 1] (0 where it does not say)."""
    step, total = info.get("step"), info.get("total_steps")
    if not isinstance(step, (int, float)) or not isinstance(total, (int, float)) or total <= 0:
        return 0.0
    return min(1.0, max(0.0, step / total))


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
    deferred: list[str] = field(default_factory=list)   # not started: the deadline passed first

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked and not self.deferred


ORDERS = ("longest", "size")


def run_order(pending: dict[str, StudyRun], order: str = "longest", cost=None) -> list[str]:
    """The order runs are offered to the executor in; pretraining first of all (fine-tunes wait on it),
    the longest pretraining first (it sets the time to the first fine-tunes of its size).

    longest: then the longest runs first, which sets the shortest wall time when everything finishes.
    size: then size by size from the smallest, from-scratch runs and fine-tunes interleaved by data size,
    so that a study stopped by a deadline (`schedule(deadline=)`) leaves whole sizes (a from-scratch curve
    and the fine-tunes read off it) rather than the longest runs of every size."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
    cost = cost or (lambda run: 0.0)

    def key(run_id: str) -> tuple:
        run = pending[run_id]
        if run.mode == "pretrain":
            return (0, -cost(run))
        if order == "longest":
            return (1, -cost(run))
        spec = run.spec
        return (1, spec.shape.n_params, spec.data_chars or spec.data_tokens or 0, run.mode != "scratch", run_id)

    return sorted(pending, key=key)


def schedule(store: Store, runs: list[StudyRun], executor: Executor, max_parallel: int,
             estimate=None, poll_interval: float = 0.2, progress: str = "auto",
             summary_every: float = SUMMARY_EVERY, order: str = "longest", deadline: float | None = None) -> Outcome:
    """Submit every run whose dependencies are done, at most `max_parallel` at a time, until all end, in
    `run_order(order)`. `progress`: "bar", "plain" or "auto" (effdata.study.progress: the bar on a terminal,
    lines in a log). `deadline` (a `time.monotonic()` value): no run starts after it; the runs in flight
    finish, the others are `Outcome.deferred` (planned, not started: the same command later does them)."""
    outcome = Outcome()
    pending: dict[str, StudyRun] = {}
    for run in runs:
        store.write_run(run)
        if store.is_done(run.run_id):
            outcome.skipped.append(run.run_id)
        else:
            pending[run.run_id] = run
    order = run_order(pending, order, estimate)
    bound = estimate or (lambda run: 0.0)

    def cost(run: StudyRun) -> Cost:
        return Cost(bound(run), run.mode, run.spec.shape.n_params)

    in_flight: set[str] = set()
    shown = open_progress(progress, len(pending), planned=_planned(pending.values(), bound), every=summary_every)
    try:
        while order or in_flight:
            if order and deadline is not None and time.monotonic() >= deadline:
                outcome.deferred += order
                note = f"deadline passed: {len(order)} runs not started, {len(in_flight)} in flight finish"
                for index, run_id in enumerate(order):
                    shown.ended(note if index == 0 else None, "deferred", cost(pending[run_id]))
                order = []
            for run_id in list(order):
                if len(in_flight) >= max_parallel:
                    break
                deps = pending[run_id].depends_on
                why = _cannot_start(store, pending[run_id], outcome)
                if why:
                    outcome.blocked[run_id] = why
                    order.remove(run_id)
                    shown.ended(f"{run_id}: blocked: {why}", "blocked", cost(pending[run_id]))
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
                shown.message(line)
            for run_id, reason in executor.poll():
                if run_id not in in_flight:
                    continue
                in_flight.discard(run_id)
                status, line, record = _settle(store, pending[run_id], reason, outcome)
                shown.ended(line, status, _spent(cost(pending[run_id]), record))
            through = executor.through()
            shown.tick(len(in_flight), [dataclasses.replace(through[r], cost=cost(pending[r]))
                                        for r in in_flight if r in through])
            time.sleep(poll_interval)
    finally:
        shown.close()
        executor.shutdown()
    return outcome


def _cannot_start(store: Store, run: StudyRun, outcome: Outcome) -> str | None:
    """Why `run` can never start in this invocation: a dependency failed or was blocked, or its pretraining is done
    but the checkpoint it fine-tunes is not there (a record copied by --reuse from a folder that holds records alone,
    as `analysis/cpu/records.tar.gz` unpacks: 6 fine-tunes of cpu-fixed-tokens-min-steps-15m failed on it, one by one,
    each saying "run its pretraining first" of a pretraining the study called done)."""
    bad = [d for d in run.depends_on if d in outcome.failed or d in outcome.blocked]
    if bad:
        return f"dependency did not finish: {', '.join(bad)}"
    if run.init_from_run is None or not store.is_done(run.init_from_run):
        return None
    checkpoint = store.checkpoint_dir(run.init_from_run, run.init_from_checkpoint)
    if not (checkpoint / "config.json").is_file():
        return (f"its pretraining {run.init_from_run} is done but has no {checkpoint.name} (a record copied without "
                f"its model?): remove its folder to pretrain it again, or --reuse a folder with the model")
    return None


def _planned(runs, bound) -> dict[tuple[str, float], float]:
    """(run mode, N) -> the summed upper bounds of those runs: the progress summary's estimate."""
    planned: dict[tuple[str, float], float] = {}
    for run in runs:
        key = (run.mode, run.spec.shape.n_params)
        planned[key] = planned.get(key, 0.0) + bound(run)
    return planned


def _spent(cost: Cost, record: dict | None) -> Cost:
    """`cost` with what an ended run's record says it spent: 6N FLOPs (the estimate's convention) and wall seconds."""
    metrics = record["metrics"] if record else {}
    number = lambda key: float(metrics[key]) if isinstance(metrics.get(key), (int, float)) else None  # noqa: E731
    return dataclasses.replace(cost, spent=number("flops_6N"), seconds=number("wall_time"))


def _settle(store: Store, run: StudyRun, reason: str | None, outcome: Outcome) -> tuple[str, str, dict | None]:
    """An ended run into `outcome` by its record; (its status, its line for the user, the record it ended with: None
    where the process died before writing one)."""
    run_id = run.run_id
    record = store.read_record(run_id)
    if record is None and reason and reason.startswith("busy:"):
        outcome.failed[run_id] = reason  # another process owns it: leave its files alone
    elif record is None:
        # The process died before writing a record: write it so the reason is kept.
        why = reason or "ended without a record"
        store.write_record(run, "failed", error=why)
        outcome.failed[run_id] = why
    elif record["status"] == "ok":
        outcome.done.append(run_id)
        return "ok", _end_line(run_id, record), record
    else:
        outcome.failed[run_id] = record["error"] or reason or "failed"
    return "failed", f"{run_id}: FAILED: {outcome.failed[run_id]}", record
