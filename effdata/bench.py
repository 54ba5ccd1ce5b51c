"""Throughput of our training step against transformers' Trainer and a plain eager PyTorch loop.

    python -m effdata.bench [--sizes n25k,n1m] [--steps 8] [--rounds 3] [--batch 32] [--vocab V] [--threads T]

Same model (effdata.model.build_model), same batch (batch × n_ctx tokens of random windows), AdamW
with the same hyperparameters, gradient clipping 1.0. Our step runs in the precision "auto" picks; the
Trainer in bf16 mixed precision where ours is bf16 on a GPU, else fp32 (on CPU its bf16 was slower);
the eager loop in fp32. The methods are interleaved (`--rounds` rounds of `--steps` steps
each, first step of each untimed) and each is reported at its median step time, so that other
processes taking the CPU for a while hit every method alike. Prints a Markdown table with tokens/s,
characters/s (tokens/s × chars/token: measured from the tokenizer when one is cached, else the
`--chars-per-token` figure), the speed-up of our step over the Trainer, and model-FLOPs utilisation
(training FLOPs per token as in `effdata.spec.ModelShape.flops_per_token`, against the peak matmul rate measured
here for the dtype our step runs in: bf16 peak when it autocasts to bf16, else fp32).

Our step runs as `train_run` runs it, in this process with the allocator keeping freed memory
(`device.reuse_freed_memory`); the eager loop and the Trainer each run in a process of their own with
the allocator a plain Python process has, as their users run them, one round at a time from here.

Columns: `ours` is `effdata.training.step.Stepper` eager (what a short run uses); `ours+compile` is the same
step under torch.compile, with its one-off compile time; `long-run ours / Trainer` uses whichever of the
two train_run picks for a long run (compile="auto": compiled where the measured times say it pays).
The eager and compiled step times and the compile time of each size are recorded for this machine,
batch, vocabulary and thread count (`effdata.training.steptimes`): compile="auto" decides by them.
"""
from __future__ import annotations

import argparse
import os
import platform

import torch

from effdata.paths import home
from effdata.spec import CPU_LADDER, TrainSettings, get_shape
from effdata.training import device as devmod
from effdata.training import steptimes
from effdata.training.bench import bench_size, noise_scale_cost, step_times
from effdata.training.step import should_compile


def _chars_per_token(vocab: int, fallback: float) -> tuple[float, str]:
    try:  # the tokens module records chars and tokens per split; use it when a corpus is prepared
        from effdata.data import tokens

        tc = tokens.prepare("python", vocab)
        sp = tc.splits["valid"]
        return sp.n_chars / sp.n_tokens, "measured on the python valid split"
    except Exception:  # noqa: BLE001
        return fallback, "assumed (no prepared python corpus found)"


def _record_step_times(dev, shape, a, threads: int, r: dict) -> steptimes.StepTimes:
    """Save what compile="auto" decides by (effdata.training.steptimes) for this size, batch and threads."""
    times = step_times(r, a.batch * shape.n_ctx)
    steptimes.record(steptimes.step_key(dev, shape, a.batch, a.vocab, threads, devmod.precision_name(*r["precision"])),
                     times)
    return times


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
    p.add_argument("--noise-scale", action="store_true",
                   help="also time the gradient noise scale's measurement of one batch against a step (its cost)")
    a = p.parse_args(argv)

    if a.vocab is None:
        from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE

        a.vocab = DEFAULT_VOCAB_SIZE
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
        f_tok, _ = shape.flops_per_token(a.vocab)
        mfu = ours * f_tok / (peak16 if r["precision"][0] is not None else peak32)
        measured = _record_step_times(dev, shape, a, threads, r) if "compiled" in r else None
        # what train_run uses for a long run (compile="auto": compiled where it pays by the times just measured)
        long_run = r["compiled"] if measured and should_compile(TrainSettings(), 10**9, measured) else ours
        print(f"| {name} | {n:,} | {ours:,.0f} ({devmod.precision_name(*r['precision'])}) | {ours * cpt:,.0f} | "
              f"{comp} | {trainer:,.0f} | {r['eager']:,.0f} | {ours / trainer:.2f}x | {long_run / trainer:.2f}x | "
              f"{100 * mfu:.1f}% |", flush=True)
    if a.noise_scale:
        _noise_scale_table(a, dev)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load:.2f} at end")
    if not a.no_compile:
        print(f"step and compile times recorded in {home() / steptimes.FILE}: compile=\"auto\" decides by them")


def _noise_scale_table(a, dev) -> None:
    """The noise scale's cost per batch measured, in steps: `noise_scale = k` adds k × this × evaluations / steps."""
    print("\n| size | step ms (ours, eager) | noise scale of one batch ms | in steps |\n|---|---|---|---|")
    for name in a.sizes.split(","):
        step_s, noise_s = noise_scale_cost(get_shape(name.strip()), a.vocab, a.batch, dev)
        print(f"| {name} | {1e3 * step_s:.1f} | {1e3 * noise_s:.1f} | {noise_s / step_s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
