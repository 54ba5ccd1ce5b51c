"""Device, threads and precision: CUDA when present, else CPU; measured choices, not guesses."""
from __future__ import annotations

import ctypes
import functools
import os
import time

import torch


def pick_device(device: str | None = None) -> torch.device:
    """`device` if given ("cpu", "cuda", "cuda:1"), else CUDA when available, else CPU."""
    if device:
        dev = torch.device(device)
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} asked for but CUDA is not available")
        return dev
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: `threads`, else $EFFDATA_THREADS, else every available core.

    The runner passes `threads` = cores / workers so that parallel runs do not oversubscribe.
    Inter-op threads are set to 1 (our graphs are sequential). Returns the count set.
    """
    if threads is None:
        env = os.environ.get("EFFDATA_THREADS")
        threads = int(env) if env else available_cores()
    threads = max(1, int(threads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # can only be set once, before any parallel work; harmless
        pass
    return threads


@functools.lru_cache(maxsize=None)
def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for the next allocation instead of handing it back to the
    kernel (mallopt: no mmap below 1 GiB, no trimming). A training step frees and reallocates the same
    activations every step; by default the large ones come from fresh mmaps, each page faulted in again:
    measured 3,800 page faults per step at n25k and 14,000-16,000 at n500k (batch 16), 23-50 % of the
    step on this VM; none after this call (docs/notes/issue-13.md). Where memory comes from does not
    change any number. The process keeps its peak memory. False (and nothing done) off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))


@functools.lru_cache(maxsize=None)
def peak_matmul_flops(device: str = "cpu", dtype: str = "float32", n: int = 2048, repeats: int = 5) -> float:
    """Measured peak matmul rate (FLOP/s) of an n×n by n×n matmul on this machine, best of `repeats`.

    Uses the current torch thread count. It is the denominator of model-FLOPs utilisation (MFU).
    """
    dev = torch.device(device)
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=dev).to(dt)
    b = torch.randn(n, n, device=dev).to(dt)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(dev)
        t = time.perf_counter()
        a @ b
        _sync(dev)
        if i:  # the first is a warm-up
            best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# bf16 on CPU, measured in docs/notes/issue-3.md on this AMD EPYC (AVX-512 BF16: bf16 matmul ~4-5x fp32):
# bf16 autocast of the whole step is the fastest at every CPU ladder size, *provided* attention runs
# as plain matmuls ("eager"): PyTorch's CPU flash-attention backward in bf16 is several times slower
# than the whole rest of the step. So on CPU, bf16 goes with eager attention; fp32 keeps SDPA.


@functools.lru_cache(maxsize=None)
def cpu_bf16_fast() -> bool:
    """Whether bf16 matmul on this CPU is clearly (>1.5x) faster than fp32 (AVX512-BF16 or AMX present)."""
    try:
        fp32 = peak_matmul_flops("cpu", "float32", 512, 3)
        bf16 = peak_matmul_flops("cpu", "bfloat16", 512, 3)
    except Exception:  # noqa: BLE001 - any failure means: do not use bf16
        return False
    return bf16 > 1.5 * fp32


def precision_plan(precision: str, device: torch.device, d_model: int) -> tuple[torch.dtype | None, torch.dtype | None]:
    """(body autocast dtype, unembedding matmul dtype) for `precision` ("auto", "fp32", "bf16"); None = fp32.

    fp32: everything fp32. bf16: autocast the body and bf16 unembedding matmuls.
    auto: bf16 on CUDA when the GPU supports it, and on CPU when bf16 matmul is clearly faster than
    fp32 on this CPU (AVX512-BF16/AMX); fp32 otherwise. (`d_model` is kept for size-dependent rules.)
    Parameters, optimizer state, the softmax/cross-entropy and evaluation stay fp32 in every case.
    """
    bf16 = torch.bfloat16
    if precision == "fp32":
        return None, None
    if precision == "bf16":
        return bf16, bf16
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
    if device.type == "cuda":
        return (bf16, bf16) if torch.cuda.is_bf16_supported() else (None, None)
    if cpu_bf16_fast():
        return bf16, bf16
    return None, None


def attention_impl(device: torch.device, body_dtype: torch.dtype | None) -> str:
    """"eager" (matmul attention) for bf16 on CPU, where the SDPA flash backward is slow; else "sdpa"."""
    return "eager" if device.type == "cpu" and body_dtype is not None else "sdpa"


def precision_name(body: torch.dtype | None, head: torch.dtype | None) -> str:
    if body is None and head is None:
        return "fp32"
    if body is None:
        return "fp32+bf16-head"
    return "bf16"
