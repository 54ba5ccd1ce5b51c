"""The fused unembedding + cross-entropy (effdata.training.step.LinearCrossEntropy) by chunk size and precision.

    python benchmarks/bench_head.py [--device cpu] [--threads 1] [--rows 4096] [--vocab 2048,16384] [--width 64,256]

For each vocabulary V and width d: forward + backward of `rows` rows through the head, for chunks of
16 .. 8192 rows (`--chunks`), with fp32 and bf16 matmuls; the median of `--repeats` interleaved rounds after
one warm-up round, in ms,
and the chunk `ce_chunk_rows` picks for the device. Run it on a GPU with --device cuda --rows 32768
(a batch of 32 × 1024) to choose the GPU chunk from a measurement (docs/notes/issue-16.md).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from effdata.training.device import _sync, pick_device, set_threads
from effdata.training.step import LinearCrossEntropy, ce_chunk_rows

CHUNKS = (16, 64, 256, 1024, 4096, 8192)


def time_heads(rows: int, width: int, vocab: int, chunks: list[int], low, dev, rounds: int) -> list[float]:
    """Median milliseconds of one forward + backward through the fused head, per chunk size. The chunk
    sizes take turns, round after round, so that load from other processes hits them alike."""
    torch.manual_seed(0)
    h = torch.randn(rows, width, device=dev, requires_grad=True)
    W = (0.02 * torch.randn(vocab, width, device=dev)).requires_grad_()
    y = torch.randint(0, vocab, (rows,), device=dev)
    times: dict[int, list[float]] = {c: [] for c in chunks}
    for i in range(rounds + 1):
        for chunk in chunks:
            _sync(dev)
            t = time.perf_counter()
            LinearCrossEntropy.apply(h, W, y, chunk, low).backward()
            _sync(dev)
            if i:  # the first round warms up
                times[chunk].append(1e3 * (time.perf_counter() - t))
            h.grad = W.grad = None
    return [statistics.median(times[c]) for c in chunks]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", type=int, default=4096, help="rows (tokens) per step")
    p.add_argument("--vocab", default="2048,16384")
    p.add_argument("--width", default="64,256")
    p.add_argument("--repeats", type=int, default=7, help="rounds (each chunk size timed once a round)")
    p.add_argument("--chunks", default=",".join(map(str, CHUNKS)), help="rows per chunk to time")
    a = p.parse_args()
    chunks = [c for c in map(int, a.chunks.split(",")) if c <= a.rows]
    dev = pick_device(a.device)
    set_threads(a.threads)
    print(f"device {dev}, threads {torch.get_num_threads()}, {a.rows} rows, median of {a.repeats}; ms per "
          f"forward + backward")
    print("| V | d | matmuls | " + " | ".join(f"{c} rows" for c in chunks) + " | ce_chunk_rows |")
    print("|---|---|---|" + "---|" * (len(chunks) + 1))
    for vocab in map(int, a.vocab.split(",")):
        for width in map(int, a.width.split(",")):
            for name, low in (("fp32", None), ("bf16", torch.bfloat16)):
                ms = time_heads(a.rows, width, vocab, chunks, low, dev, a.repeats)
                cells = " | ".join(f"{m:.1f}" for m in ms)
                print(f"| {vocab} | {width} | {name} | {cells} | {ce_chunk_rows(vocab, dev)} |", flush=True)


if __name__ == "__main__":
    main()
