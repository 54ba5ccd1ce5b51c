"""Throughput of our training step against transformers' Trainer and a plain eager PyTorch loop.

    python -m effdata.bench [--sizes n25k,n1m] [--steps 8] [--rounds 3] [--batch 32] [--vocab V] [--threads T]

Same model (effdata.model.build_model), same batch (batch × n_ctx tokens of random windows), AdamW
with the same hyperparameters, gradient clipping 1.0; fp32 except where our step's precision "auto"
picks bf16 unembedding matmuls. The methods are interleaved (`--rounds` rounds of `--steps` steps
each, first step of each untimed) and each is reported at its median step time, so that other
processes taking the CPU for a while hit every method alike. Prints a Markdown table with tokens/s,
characters/s (tokens/s × chars/token: measured from the tokenizer when one is cached, else the
`--chars-per-token` figure), the speed-up of our step over the Trainer, and model-FLOPs utilisation
(training FLOPs per token as in `effdata.train.flops_per_token`, against the peak matmul rate measured
here for the dtype our step runs in: bf16 peak when it autocasts to bf16, else fp32).

Columns: `ours` is `effdata.train.Stepper` eager (what a short run uses); `ours+compile` is the same
step under torch.compile, with its one-off compile time; `long-run ours / Trainer` uses whichever of the
two train_run picks for a run of >= compile_min_steps steps (compile="auto").
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np
import torch

from . import device as devmod
from .model import CPU_LADDER, build_model, get_shape, non_embedding_params
from .train import Stepper, TrainSettings, _should_compile, flops_per_token, make_optimizer


def _windows(vocab: int, batch: int, n_ctx: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.integers(0, vocab, (batch, n_ctx + 1)).astype(np.int64)) for _ in range(steps)]


class Ours:
    """effdata.train.Stepper, as train_run uses it (fused AdamW, fused unembedding + CE, precision auto)."""

    def __init__(self, shape, vocab, batch, dev, compile: bool, precision: str = "auto"):
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
    (a fresh Trainer on the same model) and returns the times between consecutive step ends."""

    def __init__(self, shape, vocab, batch, dev):
        torch.manual_seed(0)
        self.model = build_model(shape, vocab)
        self.batch, self.dev = batch, dev
        ws = _windows(vocab, batch, shape.n_ctx, 4)
        self.rows = [{"input_ids": r[:-1], "labels": r[:-1]} for w in ws for r in w]

    def run(self, steps: int) -> list[float]:
        from transformers import Trainer, TrainerCallback, TrainingArguments

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
                use_cpu=self.dev.type == "cpu", dataloader_num_workers=0, disable_tqdm=True, seed=0,
            )
            Trainer(model=self.model, args=args, train_dataset=Data(), callbacks=[Clock()]).train()
        return list(np.diff(marks))  # steps intervals; the first step (set-up) is not timed


def bench_size(shape, vocab, batch, steps, rounds, dev, compile=True, trainer=True) -> dict:
    """Interleave the methods for `rounds` rounds of `steps` steps each; per method the median step
    time over all timed steps (robust to other processes stealing the CPU now and then)."""
    methods = {"ours": Ours(shape, vocab, batch, dev, compile=False), "eager": EagerLoop(shape, vocab, batch, dev)}
    if compile:
        methods["compiled"] = Ours(shape, vocab, batch, dev, compile=True)
    if trainer:
        methods["trainer"] = TrainerRun(shape, vocab, batch, dev)
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(rounds):
        for k, m in methods.items():
            times[k] += m.run(steps + (1 if k in ("ours", "compiled", "eager") and not times[k] else 0))
    tokens = batch * shape.n_ctx
    out = {k: tokens / float(np.median(v)) for k, v in times.items()}
    out["precision"] = methods["ours"].precision
    if compile:
        out["compile_s"] = methods["compiled"].first
    return out


def _chars_per_token(vocab: int, fallback: float) -> tuple[float, str]:
    try:  # the tokens module records chars and tokens per split; use it when a corpus is prepared
        from . import tokens  # noqa: F401

        tc = tokens.prepare("python", vocab)  # type: ignore[attr-defined]
        sp = tc.splits["valid"]
        return sp.n_chars / sp.n_tokens, "measured on the python valid split"
    except Exception:  # noqa: BLE001
        return fallback, "assumed (no prepared python corpus found)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m effdata.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(CPU_LADDER), help="comma-separated ladder names")
    p.add_argument("--steps", type=int, default=8, help="timed steps per method per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per method")
    p.add_argument("--batch", type=int, default=TrainSettings.batch_size)
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the tokenizer's default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    p.add_argument("--device", default=None)
    p.add_argument("--chars-per-token", type=float, default=3.0)
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column (it compiles per size)")
    p.add_argument("--no-trainer", action="store_true")
    a = p.parse_args(argv)

    if a.vocab is None:
        try:
            from .tokenizer import DEFAULT_VOCAB_SIZE

            a.vocab = int(DEFAULT_VOCAB_SIZE)
        except Exception:  # noqa: BLE001
            a.vocab = 4096
    dev = devmod.pick_device(a.device)
    threads = devmod.set_threads(a.threads)
    cpt, cpt_how = _chars_per_token(a.vocab, a.chars_per_token)
    peak32 = devmod.peak_matmul_flops(dev.type, "float32")
    peak16 = devmod.peak_matmul_flops(dev.type, "bfloat16")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {dev} ({platform.processor() or platform.machine()}), torch {torch.__version__}, threads {threads}, "
          f"load average {load:.2f} at start")
    print(f"measured peak matmul: fp32 {peak32 / 1e9:,.0f} GFLOP/s, bf16 {peak16 / 1e9:,.0f} GFLOP/s")
    print(f"batch {a.batch} sequences, vocab {a.vocab}, median of {a.rounds} interleaved rounds x {a.steps} steps "
          f"per method (first step untimed); "
          f"chars/token {cpt:.2f} ({cpt_how})\n")
    head = ["size", "N", "ours tok/s", "ours chars/s", "ours+compile tok/s (compile s)", "Trainer tok/s",
            "eager loop tok/s", "ours / Trainer", "long-run ours / Trainer", "MFU (ours, vs its dtype's peak)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in a.sizes.split(","):
        shape = get_shape(name.strip())
        n = shape.n_params
        r = bench_size(shape, a.vocab, a.batch, a.steps, a.rounds, dev, compile=not a.no_compile,
                       trainer=not a.no_trainer)
        ours, trainer = r["ours"], r.get("trainer", float("nan"))
        comp = f"{r['compiled']:,.0f} ({r['compile_s']:.0f})" if "compiled" in r else "-"
        f_tok, _ = flops_per_token(shape, n, a.vocab)
        mfu = ours * f_tok / (peak16 if r["precision"][0] is not None else peak32)
        # what train_run uses for a run of >= compile_min_steps steps (compile="auto")
        long_run = r["compiled"] if "compiled" in r and _should_compile(
            TrainSettings(), dev, r["precision"][0], shape, 10**9) else ours
        print(f"| {name} | {n:,} | {ours:,.0f} ({devmod.precision_name(*r['precision'])}) | {ours * cpt:,.0f} | "
              f"{comp} | {trainer:,.0f} | {r['eager']:,.0f} | {ours / trainer:.2f}x | {long_run / trainer:.2f}x | "
              f"{100 * mfu:.1f}% |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at end")


if __name__ == "__main__":
    main()
