"""Throughput of our training step against transformers' Trainer and a plain eager PyTorch loop.

    python -m effdata.bench [--sizes n25k,n1m] [--steps 8] [--rounds 3] [--batch 32] [--vocab V] [--threads T]

Same model (effdata.model.build_model), same batch (batch × n_ctx tokens of random windows), AdamW
with the same hyperparameters, gradient clipping 1.0. Our step runs in the precision "auto" picks; the
Trainer in bf16 mixed precision where ours is bf16 on a GPU, else fp32 (on CPU its bf16 was slower);
the eager loop in fp32. The methods are interleaved (`--rounds` rounds of `--steps` steps
each, first step of each untimed) and each is reported at its median step time, so that other
processes taking the CPU for a while hit every method alike. Prints a Markdown table with tokens/s,
characters/s (tokens/s × chars/token: `--chars-per-token`, else measured on the python corpus at this
vocabulary, prepared if missing, else 3.0), the speed-up of our step over the Trainer, and model-FLOPs utilisation
(training FLOPs per token as in `effdata.spec.ModelShape.flops_per_token`, against the peak matmul rate measured
here for the dtype our step runs in: bf16 peak when it autocasts to bf16, else fp32), and the attention
kernel our step runs (`device.sdpa_kernels`: flash, efficient, cudnn or math, read from the profiler).
`--json PATH` keeps the same numbers, the machine and the measured peaks (rewritten after every size).

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
from pathlib import Path

import torch

from effdata.paths import atomic_write_json, home
from effdata.spec import CPU_LADDER, TrainSettings, get_shape
from effdata.training import device as devmod
from effdata.training import steptimes
from effdata.training.bench import bench_size, concurrent_rates, noise_scale_cost, step_times
from effdata.training.step import should_compile


def _chars_per_token(vocab: int, given: float | None) -> tuple[float, str]:
    if given is not None:
        return given, "given"
    try:  # the tokens module records chars and tokens per split; use it when a corpus is prepared
        from effdata.data import tokens

        tc = tokens.prepare("python", vocab)
        sp = tc.splits["valid"]
        return sp.n_chars / sp.n_tokens, "measured on the python valid split"
    except Exception:  # noqa: BLE001
        return 3.0, "assumed (no prepared python corpus found)"


def _record_step_times(dev, shape, a, threads: int, r: dict) -> steptimes.StepTimes:
    """Save what compile="auto" decides by (effdata.training.steptimes) for this size, batch and threads."""
    times = step_times(r, a.batch * shape.n_ctx)
    steptimes.record(steptimes.step_key(dev, shape, a.batch, a.vocab, threads, devmod.precision_name(*r["precision"])),
                     times)
    return times


HEAD = ["size", "N", "ours tok/s", "ours chars/s", "ours+compile tok/s (compile s)", "Trainer tok/s",
        "eager loop tok/s", "ours / Trainer", "long-run ours / Trainer", "MFU (ours, vs its dtype's peak)",
        "attention kernel (ours)"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m effdata.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(CPU_LADDER), help="comma-separated ladder names or custom shapes")
    p.add_argument("--steps", type=int, default=8, help="timed steps per method per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per method")
    p.add_argument("--batch", type=int, default=TrainSettings.batch_size)
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the tokenizer's default)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all available cores)")
    p.add_argument("--device", default=None)
    p.add_argument("--chars-per-token", type=float, default=None,
                   help="for the chars/s column (default: measured on the python corpus, which is prepared if "
                        "missing; else 3.0)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile column (it compiles per size)")
    p.add_argument("--no-trainer", action="store_true")
    p.add_argument("--no-eager", action="store_true", help="skip the plain eager loop")
    p.add_argument("--concurrent", metavar="K,K,...",
                   help="also: tokens/s of K processes running our step at once, for each size and K (a study's "
                        "workers sharing one GPU), each process with --threads / max K threads")
    p.add_argument("--concurrent-seconds", type=float, default=3.0, help="the window each K is timed over")
    p.add_argument("--json", type=Path, help="also write the table (and the machine, peaks, load) here, "
                                             "rewritten after every size so a stopped bench keeps its rows")
    p.add_argument("--noise-scale", action="store_true",
                   help="also time the gradient noise scale's measurement of one batch against a step (its cost)")
    return p


def _size_row(name: str, a, dev, threads: int, cpt: float, peaks: dict[str, float]) -> dict:
    """Benchmark one size; its row as numbers (the table prints them, --json keeps them)."""
    shape = get_shape(name.strip())
    r = bench_size(shape, a.vocab, a.batch, a.steps, a.rounds, dev, compile=not a.no_compile,
                   trainer=not a.no_trainer, eager=not a.no_eager)
    ours, trainer = r["ours"], r.get("trainer", float("nan"))
    f_tok, _ = shape.flops_per_token(a.vocab)
    peak = peaks["bf16"] if r["precision"][0] is not None else peaks["fp32"]
    measured = _record_step_times(dev, shape, a, threads, r) if "compiled" in r else None
    # what train_run uses for a long run (compile="auto": compiled where it pays by the times just measured)
    long_run = r["compiled"] if measured and should_compile(TrainSettings(), 10**9, measured) else ours
    return {"size": name, "n_params": shape.n_params, "precision": devmod.precision_name(*r["precision"]),
            "ours_tokens_per_s": ours, "ours_chars_per_s": ours * cpt, "compiled_tokens_per_s": r.get("compiled"),
            "compile_s": r.get("compile_s"), "trainer_tokens_per_s": trainer,
            "eager_tokens_per_s": r.get("eager", float("nan")),
            "ours_over_trainer": ours / trainer, "long_run_over_trainer": long_run / trainer,
            "mfu": ours * f_tok / peak, "compiled_mfu": (r["compiled"] * f_tok / peak) if "compiled" in r else None,
            "flops_per_token": f_tok, "attention": r["attention"]}


def _table_line(row: dict) -> str:
    comp = f"{row['compiled_tokens_per_s']:,.0f} ({row['compile_s']:.0f})" if row["compiled_tokens_per_s"] else "-"
    return (f"| {row['size']} | {row['n_params']:,} | {row['ours_tokens_per_s']:,.0f} ({row['precision']}) | "
            f"{row['ours_chars_per_s']:,.0f} | {comp} | {row['trainer_tokens_per_s']:,.0f} | "
            f"{row['eager_tokens_per_s']:,.0f} | {row['ours_over_trainer']:.2f}x | "
            f"{row['long_run_over_trainer']:.2f}x | "
            f"{100 * row['mfu']:.1f}% | {', '.join(row['attention']) or 'none (eager attention)'} |")


def main(argv: list[str] | None = None) -> None:
    a = _parser().parse_args(argv)
    if a.vocab is None:
        from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE

        a.vocab = DEFAULT_VOCAB_SIZE
    dev = devmod.pick_device(a.device)
    threads = devmod.set_threads(a.threads)
    cpt, cpt_how = _chars_per_token(a.vocab, a.chars_per_token)
    peaks = {"fp32": devmod.peak_matmul_flops(dev.type, "float32"),
             "bf16": devmod.peak_matmul_flops(dev.type, "bfloat16")}
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or platform.machine())
    info = {"device": str(dev), "machine": where, "torch": torch.__version__, "threads": threads, "batch": a.batch,
            "vocab": a.vocab, "steps": a.steps, "rounds": a.rounds,
            "chars_per_token": cpt, "peak_fp32_flops": peaks["fp32"], "peak_bf16_flops": peaks["bf16"],
            "load_start": _load(), "rows": []}
    print(f"device {dev} ({where}), torch {torch.__version__}, threads {threads}, "
          f"load average {info['load_start']:.2f} at start")
    print(f"measured peak matmul: fp32 {peaks['fp32'] / 1e9:,.0f} GFLOP/s, bf16 {peaks['bf16'] / 1e9:,.0f} GFLOP/s")
    print(f"batch {a.batch} sequences, vocab {a.vocab}, median of {a.rounds} interleaved rounds x {a.steps} steps "
          f"per method (first step untimed); chars/token {cpt:.2f} ({cpt_how})\n")
    print("| " + " | ".join(HEAD) + " |")
    print("|" + "---|" * len(HEAD))
    for name in a.sizes.split(","):
        row = _size_row(name, a, dev, threads, cpt, peaks)
        info["rows"].append(row)
        if a.json:
            atomic_write_json(a.json, info)
        print(_table_line(row), flush=True)
    if a.concurrent:
        info["concurrent"] = _concurrent(a, dev, threads)
        if a.json:
            atomic_write_json(a.json, info)
    if a.noise_scale:
        _noise_scale_table(a, dev)
    print(f"\nload average {_load():.2f} at end")
    if not a.no_compile:
        print(f"step and compile times recorded in {home() / steptimes.FILE}: compile=\"auto\" decides by them")


def _noise_scale_table(a, dev) -> None:
    """The noise scale's cost per batch measured, in steps: `noise_scale = k` adds k × this × evaluations / steps."""
    print("\n| size | step ms (ours, eager) | noise scale of one batch ms | in steps |\n|---|---|---|---|")
    for name in a.sizes.split(","):
        step_s, noise_s = noise_scale_cost(get_shape(name.strip()), a.vocab, a.batch, dev)
        print(f"| {name} | {1e3 * step_s:.1f} | {1e3 * noise_s:.1f} | {noise_s / step_s:.2f} |", flush=True)


def _concurrent(a, dev, threads: int) -> list[dict]:
    """The --concurrent table: per size and K, the K processes' tokens/s together and against one process."""
    counts = sorted({int(k) for k in a.concurrent.split(",")})
    if counts[0] < 1:
        raise SystemExit(f"effdata.bench: --concurrent takes counts of 1 or more, got {a.concurrent}")
    print(f"\n{a.concurrent_seconds:g} s of our eager step in K processes at once, "
          f"{max(1, threads // counts[-1])} threads each\n")
    print("| size | K | tok/s, all K | × one process | tok/s per process (min-max) |\n|---|---|---|---|---|")
    out = []
    for name in a.sizes.split(","):
        rows = concurrent_rates(get_shape(name.strip()), a.vocab, a.batch, dev, counts, a.concurrent_seconds,
                                max(1, threads // counts[-1]))
        one = rows[0]["tokens_per_s"] / rows[0]["processes"]
        for row in rows:
            per = row["per_process_tokens_per_s"]
            print(f"| {name} | {row['processes']} | {row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / one:.2f} | "
                  f"{min(per):,.0f}-{max(per):,.0f} |", flush=True)
            out.append({"size": name, **row})
    return out


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


if __name__ == "__main__":
    main()
