"""Evaluation speed: the evaluation before issue 13 against `effdata.training.evaluate`, per precision.

    python benchmarks/bench_eval.py [--sizes n25k,n1m] [--tokens 32768] [--batch 16] [--rounds 5] [--threads 1]

`before`: the plain HF forward (full fp32 logits, then F.cross_entropy), 16 windows at a time, matmul
attention as a bf16 run had it. `fp32` and `bf16`: `evaluate` (SDPA, the chunked forward-only
unembedding + cross-entropy, `eval_batch_size` windows at a time) in fp32 and in bf16 (body autocast and
unembedding matmuls: a bf16 run's precision). Each evaluates the leading `--tokens` tokens of the Python
valid split (random ids when no corpus is prepared) with a freshly built model of each size (speed does
not depend on the weights); methods are interleaved for `--rounds` rounds and reported at their median,
as evaluated tokens per second, beside our training step at `--batch` (`train tok/s`) and the ratio.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from effdata.spec import CPU_LADDER, TrainSettings, get_shape
from effdata.training import device as devmod
from effdata.training.bench import Ours
from effdata.training.evaluate import evaluate
from effdata.training.model import build_model

BF16 = torch.bfloat16
VARIANTS = {"fp32": (None, None), "bf16": (BF16, BF16)}  # name: (body dtype, unembedding dtype)


@torch.inference_mode()
def hf_forward_loss(model, tokens, n_ctx, max_tokens, batch_size, dev) -> float:
    """The evaluation before issue 13: full fp32 logits through the HF forward, then F.cross_entropy."""
    n = min(len(tokens), max_tokens)
    k = (n - 1) // n_ctx
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    ar = np.arange(n_ctx + 1)
    for b in range(0, k, batch_size):
        starts = np.arange(b, min(k, b + batch_size)) * n_ctx
        w = torch.from_numpy(np.asarray(tokens[starts[:, None] + ar]).astype(np.int64)).to(dev)
        logits = model(input_ids=w[:, :-1]).logits.float()
        total += F.cross_entropy(logits.reshape(-1, logits.size(-1)), w[:, 1:].reshape(-1), reduction="sum").double()
    model.train()
    return float(total) / (k * n_ctx)


def valid_tokens(vocab: int, n: int) -> np.ndarray:
    try:
        from effdata.data.tokens import prepare

        return prepare("python", vocab).splits["valid"].array()[:n + 1]
    except Exception:  # noqa: BLE001 - no prepared corpus: random ids time the same
        return np.random.default_rng(0).integers(0, vocab, n + 1).astype(np.uint16)


def bench_size(name: str, vocab: int, tokens: np.ndarray, batch: int, rounds: int, dev) -> dict[str, float]:
    shape = get_shape(name)
    torch.manual_seed(0)
    model = build_model(shape, vocab).to(dev)
    n_ctx, n = shape.n_ctx, len(tokens) - 1

    model.config._attn_implementation = "eager"  # what a bf16 run trains with
    windows = TrainSettings().eval_batch_size
    methods = {"before": lambda: hf_forward_loss(model, tokens, n_ctx, n, 16, dev)}
    methods.update({k: (lambda b=b, h=h: evaluate(model, tokens, n_ctx, n, windows, dev, b, h))
                    for k, (b, h) in VARIANTS.items()})
    times: dict[str, list[float]] = {k: [] for k in methods}
    for _ in range(rounds + 1):  # the first round warms up
        for k, fn in methods.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    out = {k: n / float(np.median(v[1:])) for k, v in times.items()}
    step = Ours(shape, vocab, batch, dev, compile=False)
    out["train tok/s"] = batch * n_ctx / float(np.median(step.run(4 * rounds)))
    out["bf16 / train"] = out["bf16"] / out["train tok/s"]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default=",".join(CPU_LADDER))
    p.add_argument("--tokens", type=int, default=32768)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--vocab", type=int, default=2048)
    a = p.parse_args(argv)
    dev = torch.device("cpu")
    devmod.set_threads(a.threads)
    devmod.reuse_freed_memory()  # as in a run; "before" gains from it too, so its gap is understated
    tokens = valid_tokens(a.vocab, a.tokens)
    print(f"load average {os.getloadavg()[0]:.2f} at start; {a.tokens} tokens, batch {a.batch}, threads {a.threads}, "
          f"evaluated tokens/s, median of {a.rounds} interleaved rounds\n")
    head = None
    for name in a.sizes.split(","):
        r = bench_size(name.strip(), a.vocab, tokens, a.batch, a.rounds, dev)
        if head is None:
            head = list(r)
            print("| size | " + " | ".join(head) + " |\n|" + "---|" * (len(head) + 1))
        print(f"| {name} | " + " | ".join(f"{r[k]:,.0f}" if r[k] > 10 else f"{r[k]:.2f}x" for k in head) + " |",
              flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
