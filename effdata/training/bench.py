"""The methods `python -m effdata.bench` compares: our training step, a plain eager loop, the Trainer.

See effdata/bench.py (the command) for what is measured and how. Ours runs as `train_run` runs it,
in a process whose allocator keeps freed memory (`device.reuse_freed_memory`); the plain loop and the
Trainer each run in a process of their own with the allocator a Python process has by default, as
their users run them, driven step by step from here so the rounds stay interleaved (`InOwnProcess`).
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import tempfile
import time

import numpy as np
import torch

from effdata.spec import TrainSettings
from effdata.training import device as devmod
from effdata.training.model import build_model
from effdata.training.step import Stepper, make_optimizer
from effdata.training.steptimes import StepTimes, measured_now


def _windows(vocab: int, batch: int, n_ctx: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.integers(0, vocab, (batch, n_ctx + 1)).astype(np.int64)) for _ in range(steps)]


class Ours:
    """effdata.training.step.Stepper, as train_run uses it (fused AdamW, fused unembedding + CE, precision auto)."""

    def __init__(self, shape, vocab, batch, dev, compile: bool, precision: str = "auto"):
        devmod.reuse_freed_memory()
        torch.manual_seed(0)
        self.model = build_model(shape, vocab).to(dev).train()
        s = TrainSettings(batch_size=batch, precision=precision)
        self.precision = devmod.precision_plan(precision, dev, shape.d_model)
        self.model.config._attn_implementation = devmod.attention_impl(dev, self.precision[0])
        self.step = Stepper(self.model, make_optimizer(self.model, s, 1e-3, dev), s, dev, *self.precision[:1],
                            compile, head_dtype=self.precision[1])
        self.ws = _windows(vocab, batch, shape.n_ctx, 4)
        self.first = None  # seconds of the first step (compile time when compiled)

    def run(self, steps: int) -> list[float]:
        times = []
        for i in range(steps):
            t = time.perf_counter()
            loss = self.step(self.ws[i % 4], 1e-3)
            float(loss)  # sync: count the whole step
            times.append(time.perf_counter() - t)
        if self.first is None:
            self.first = times.pop(0)
        return times

    def attention_kernels(self) -> list[str]:
        """The SDPA kernels one more (untimed) step runs: `device.sdpa_kernels`."""
        return devmod.sdpa_kernels(lambda: float(self.step(self.ws[0], 1e-3)))


class EagerLoop:
    """The plain loop most people write: labels=, default AdamW (foreach), clip, zero_grad, .item()."""

    def __init__(self, shape, vocab, batch, dev):
        torch.manual_seed(0)
        self.dev = dev
        self.model = build_model(shape, vocab).to(dev).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
        self.ws = _windows(vocab, batch, shape.n_ctx, 4)
        self.warm = False

    def run(self, steps: int) -> list[float]:
        times = []
        for i in range(steps):
            t = time.perf_counter()
            x = self.ws[i % 4][:, :-1].to(self.dev)
            loss = self.model(input_ids=x, labels=x).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.opt.zero_grad()
            loss.item()
            times.append(time.perf_counter() - t)
        if not self.warm:
            self.warm = bool(times.pop(0))
        return times


class TrainerRun:
    """transformers.Trainer on the same model, batch and AdamW; each call trains `steps` more steps
    (a fresh Trainer on the same model) and returns the times between consecutive step ends.
    `bf16`: the Trainer's bf16 mixed precision (autocast), for a comparison in the precision ours runs in."""

    def __init__(self, shape, vocab, batch, dev, bf16: bool = False):
        torch.manual_seed(0)
        self.model = build_model(shape, vocab)
        self.batch, self.dev, self.bf16 = batch, dev, bf16
        ws = _windows(vocab, batch, shape.n_ctx, 4)
        self.rows = [{"input_ids": r[:-1], "labels": r[:-1]} for w in ws for r in w]

    def run(self, steps: int) -> list[float]:
        from transformers import PrinterCallback, Trainer, TrainerCallback, TrainingArguments
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # its config warning and end-of-training summary would break the table

        rows = self.rows

        class Data(torch.utils.data.Dataset):
            def __len__(self):
                return len(rows)

            def __getitem__(self, i):
                return rows[i]

        marks: list[float] = []

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                marks.append(time.perf_counter())

        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=self.batch, max_steps=steps + 1, learning_rate=1e-3,
                weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0,
                lr_scheduler_type="constant", logging_steps=10**9, save_strategy="no", report_to=[],
                use_cpu=self.dev.type == "cpu", dataloader_num_workers=0, disable_tqdm=True, seed=0, bf16=self.bf16,
            )
            trainer = Trainer(model=self.model, args=args, train_dataset=Data(), callbacks=[Clock()])
            trainer.remove_callback(PrinterCallback)
            trainer.train()
        return list(np.diff(marks))  # steps intervals; the first step (set-up) is not timed


class InOwnProcess:
    """A method built and run in a spawned process of its own, one call of `run(steps)` at a time. The
    baselines (EagerLoop, TrainerRun) get a plain process's allocator, not the one ours tunes; our
    compiled step ("compiled") gets a fresh process, so its first step is a study worker's first compile
    (2-4 s more than a compile in a process that compiled another size before, measured)."""

    def __init__(self, method: str, *args):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, method, args, torch.get_num_threads()), daemon=True)
        self.proc.start()
        self.first: float | None = None

    def run(self, steps: int) -> list[float]:
        self.conn.send(steps)
        reply = self.conn.recv()
        if isinstance(reply, BaseException):
            raise reply
        times, self.first = reply
        return times

    def close(self) -> None:
        self.conn.send(None)
        self.proc.join(timeout=30)


def _serve(conn, method: str, args: tuple, threads: int) -> None:
    devmod.set_threads(threads)
    try:
        runner = {"eager": EagerLoop, "trainer": TrainerRun,
                  "compiled": _compiled_ours}[method](*args)
    except Exception as exc:  # noqa: BLE001 - reported to the parent at its first call
        runner = exc
    while (steps := conn.recv()) is not None:
        try:
            conn.send(runner if isinstance(runner, BaseException) else (runner.run(steps), getattr(runner, "first", None)))
        except Exception as exc:  # noqa: BLE001
            conn.send(exc)


def _compiled_ours(shape, vocab, batch, dev, precision):
    return Ours(shape, vocab, batch, dev, compile=True, precision=precision)


def bench_size(shape, vocab, batch, steps, rounds, dev, compile=True, trainer=True, eager=True,
               precision: str = "auto") -> dict:
    """Interleave the methods for `rounds` rounds of `steps` steps each; per method the median step
    time over all timed steps (robust to other processes stealing the CPU now and then)."""
    methods = {"ours": Ours(shape, vocab, batch, dev, compile=False, precision=precision)}
    if eager:
        methods["eager"] = InOwnProcess("eager", shape, vocab, batch, dev)
    if compile:
        methods["compiled"] = InOwnProcess("compiled", shape, vocab, batch, dev, precision)
    if trainer:
        # The Trainer in its faster precision: bf16 where ours is bf16 on a GPU; fp32 on CPU, where its bf16
        # autocast (SDPA attention) was slower (n25k 26.4K vs 32.3K tok/s, n1m 5.1K vs 5.9K; issue-16 notes).
        bf16 = dev.type == "cuda" and methods["ours"].precision[0] is not None
        methods["trainer"] = InOwnProcess("trainer", shape, vocab, batch, dev, bf16)
    times: dict[str, list[float]] = {k: [] for k in methods}
    try:
        for _ in range(rounds):
            for k, m in methods.items():
                times[k] += m.run(steps + (1 if k in ("ours", "compiled", "eager") and not times[k] else 0))
    finally:
        for m in methods.values():
            if isinstance(m, InOwnProcess):
                m.close()
    tokens = batch * shape.n_ctx
    out = {k: tokens / float(np.median(v)) for k, v in times.items()}
    out["times"] = times
    out["precision"] = methods["ours"].precision
    out["attention"] = methods["ours"].attention_kernels()
    if compile:
        out["compile_s"] = methods["compiled"].first
    return out


def concurrent_rates(shape, vocab: int, batch: int, dev, counts: list[int], seconds: float,
                     threads: int = 1) -> list[dict]:
    """Tokens/s of K processes training their own copy of `shape` with our step at the same time, for each K
    in `counts`: what a study's K workers sharing one GPU get together. Each process builds and warms up its
    model once (`_rate_worker`); for each K the first K run `seconds` of steps at once."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for _ in range(max(counts)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_rate_worker, args=(child, shape, vocab, batch, dev, threads), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for conn in pipes:
            _reply(conn)  # built and warmed up
        rows, tokens = [], batch * shape.n_ctx
        for k in counts:
            for conn in pipes[:k]:
                conn.send(seconds)
            rates = [_reply(conn) * tokens for conn in pipes[:k]]
            rows.append({"processes": k, "tokens_per_s": sum(rates), "per_process_tokens_per_s": rates})
        return rows
    finally:
        for conn, proc in zip(pipes, procs):
            with contextlib.suppress(OSError):
                conn.send(None)
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()


def _reply(conn):
    reply = conn.recv()
    if isinstance(reply, BaseException):
        raise reply
    return reply


def _rate_worker(conn, shape, vocab: int, batch: int, dev, threads: int) -> None:
    """One of `concurrent_rates`'s processes: steps per second over each window it is sent, until None."""
    devmod.set_threads(threads)
    try:
        ours = Ours(shape, vocab, batch, dev, compile=False)
        ours.run(3)
    except Exception as exc:  # noqa: BLE001 - reported to the parent at its first read
        conn.send(exc)
        return
    conn.send("ready")
    while (seconds := conn.recv()) is not None:
        start, steps = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            float(ours.step(ours.ws[steps % 4], 1e-3))
            steps += 1
        conn.send(steps / (time.perf_counter() - start))


def step_times(result: dict, tokens_per_step: int) -> StepTimes:
    """What compile="auto" decides by, from a `bench_size` result with the compiled method. The saving is
    taken cautiously, from the fast quarter of the eager steps and the slow quarter of the compiled ones:
    on this busy machine the medians of the same two methods gave a compiled n100k step 6 % or 25 %
    faster in two runs 20 minutes apart, and the runs that trusted the 25 % gained 8 %."""
    eager_s = float(np.percentile(result["times"]["ours"], 25))
    compiled_s = float(np.percentile(result["times"]["compiled"], 75))
    first = result["compile_s"] - tokens_per_step / result["ours"]
    return StepTimes(eager_s=eager_s, compiled_s=compiled_s, compile_s=max(0.0, first), measured=measured_now())


def measure_step_times(shape, vocab: int, batch: int, dev, precision: str = "auto") -> StepTimes:
    """Our step eager and compiled, and the compile, in this process (a run's own: it compiles there
    next, and a study's daemon worker cannot spawn), briefly: 2 interleaved rounds of 6 steps."""
    methods = {"ours": Ours(shape, vocab, batch, dev, compile=False, precision=precision),
               "compiled": Ours(shape, vocab, batch, dev, compile=True, precision=precision)}
    times: dict[str, list[float]] = {k: [] for k in methods}
    for r in range(2):
        for k, m in methods.items():
            times[k] += m.run(6 + (0 if r else 1))
    tokens = batch * shape.n_ctx
    result = {"ours": tokens / float(np.median(times["ours"])), "times": times,
              "compile_s": methods["compiled"].first}
    return step_times(result, tokens)


def noise_scale_cost(shape, vocab: int, batch: int, dev, repeats: int = 8) -> tuple[float, float]:
    """(median seconds of our eager step, median seconds of measuring the noise scale on one batch of the same
    size): what `noise_scale = k` adds per evaluation is k of the latter (training/noise.py). Interleaved, so
    that load on the machine hits both alike."""
    from effdata.training.noise import measure  # noqa: PLC0415 - only this measurement needs it

    ours = Ours(shape, vocab, batch, dev, compile=False)
    ours.run(1)
    steps, noise = [], []
    for i in range(repeats):
        steps += ours.run(1)
        noise.append(measure(ours.step.eager_loss, ours.step.params, [ours.ws[i % 4]], dev).seconds)
    return float(np.median(steps)), float(np.median(noise))
