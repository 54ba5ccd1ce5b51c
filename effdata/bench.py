"""Throughput of our training step against transformers' Trainer and a plain eager PyTorch loop.

    python -m effdata.bench [--sizes n25k,n1m] [--steps 20] [--batch 32] [--vocab 4096] [--threads 2]

Same model (effdata.model.build_model), same batch (batch × n_ctx tokens of random windows), AdamW
with the same hyperparameters, gradient clipping 1.0, fp32 unless our step picks bf16 ("auto"). Each
is timed over `--steps` steps after `--warmup` untimed steps. Prints a Markdown table with tokens/s,
characters/s (tokens/s × chars/token: measured from the tokenizer when one is cached, else the
`--chars-per-token` figure), the speed-up of our step over the Trainer, and model-FLOPs utilisation
(training FLOPs per token as in `effdata.train.flops_per_token`, against the fp32 peak matmul rate
measured here; a bf16 unembedding can exceed what that denominator allows for fp32).

Columns: `ours` is `effdata.train.Stepper` eager (what a short run uses); `ours+compile` is the same
step under torch.compile (what runs of >= compile_min_steps use), with its one-off compile time.
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
from .train import Stepper, TrainSettings, flops_per_token, make_optimizer


def _windows(vocab: int, batch: int, n_ctx: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    rng = np.random.default_rng(seed)
    return [torch.from_numpy(rng.integers(0, vocab, (batch, n_ctx + 1)).astype(np.int64)) for _ in range(steps)]


def bench_ours(shape, vocab, batch, steps, warmup, dev, compile: bool, precision: str = "auto"):
    torch.manual_seed(0)
    model = build_model(shape, vocab).to(dev).train()
    s = TrainSettings(batch_size=batch, precision=precision)
    amp, head = devmod.precision_plan(precision, dev, shape.d_model)
    opt = make_optimizer(model, s, 1e-3, dev)
    step = Stepper(model, opt, s, dev, amp, compile, head_dtype=head)
    ws = _windows(vocab, batch, shape.n_ctx, warmup + steps)
    t0 = time.perf_counter()
    for i, w in enumerate(ws):
        if i == warmup:
            float(loss)  # noqa: F821 - sync before timing
            t1 = time.perf_counter()
        loss = step(w, 1e-3)
    float(loss)
    dt = time.perf_counter() - t1
    return batch * shape.n_ctx * steps / dt, t1 - t0, (amp, head)


def bench_eager(shape, vocab, batch, steps, warmup, dev):
    """The plain loop most people write: labels=, default AdamW, clip, zero_grad."""
    torch.manual_seed(0)
    model = build_model(shape, vocab).to(dev).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    ws = _windows(vocab, batch, shape.n_ctx, warmup + steps)
    for i, w in enumerate(ws):
        if i == warmup:
            t1 = time.perf_counter()
        x = w[:, :-1].to(dev)
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        loss.item()
    return batch * shape.n_ctx * steps / (time.perf_counter() - t1)


def bench_trainer(shape, vocab, batch, steps, warmup, dev):
    from transformers import Trainer, TrainerCallback, TrainingArguments

    torch.manual_seed(0)
    model = build_model(shape, vocab)
    ws = _windows(vocab, batch, shape.n_ctx, warmup + steps)
    rows = [{"input_ids": r[:-1], "labels": r[:-1]} for w in ws for r in w]

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return rows[i]

    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == warmup:
                marks["t1"] = time.perf_counter()
            marks["t2"] = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=batch, max_steps=warmup + steps, learning_rate=1e-3,
            weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, lr_scheduler_type="constant",
            logging_steps=10**9, save_strategy="no", report_to=[], use_cpu=dev.type == "cpu",
            dataloader_num_workers=0, disable_tqdm=True, seed=0,
        )
        Trainer(model=model, args=args, train_dataset=Data(), callbacks=[Clock()]).train()
    return batch * shape.n_ctx * steps / (marks["t2"] - marks["t1"])


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
    p.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
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
    print(f"batch {a.batch} sequences, vocab {a.vocab}, {a.steps} timed steps after {a.warmup} warm-up; "
          f"chars/token {cpt:.2f} ({cpt_how})\n")
    head = ["size", "N", "ours tok/s", "ours chars/s", "ours+compile tok/s (compile s)", "Trainer tok/s",
            "eager loop tok/s", "ours / Trainer", "MFU (ours)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in a.sizes.split(","):
        shape = get_shape(name.strip())
        n = non_embedding_params(build_model(shape, a.vocab))
        ours, _, amp = bench_ours(shape, a.vocab, a.batch, a.steps, a.warmup, dev, compile=False)
        comp = ""
        best = ours
        if not a.no_compile:
            c, first, _ = bench_ours(shape, a.vocab, a.batch, a.steps, a.warmup, dev, compile=True)
            comp = f"{c:,.0f} ({first:.0f})"
            best = max(best, c)
        eager = bench_eager(shape, a.vocab, a.batch, a.steps, a.warmup, dev)
        trainer = float("nan") if a.no_trainer else bench_trainer(shape, a.vocab, a.batch, a.steps, a.warmup, dev)
        f_tok, _ = flops_per_token(shape, n, a.vocab)
        mfu = ours * f_tok / peak32
        dtype = devmod.precision_name(*amp)
        print(f"| {name} | {n:,} | {ours:,.0f} ({dtype}) | {ours * cpt:,.0f} | {comp or '-'} | {trainer:,.0f} | "
              f"{eager:,.0f} | {ours / trainer:.2f}x | {100 * mfu:.1f}% |", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at end")


if __name__ == "__main__":
    main()
