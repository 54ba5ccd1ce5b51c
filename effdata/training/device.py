"""Device, threads and precision: CUDA when present, else CPU; measured choices, not guesses."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import time

import torch


class DeviceError(RuntimeError):
    """The device asked for cannot be used here; the message says why."""


def pick_device(device: str | None = None) -> torch.device:
    """`device` if given ("cpu", "cuda", "cuda:1"); "auto" or None: CUDA when available, else CPU.
    DeviceError when CUDA is asked for and missing: a GPU study must not fall back to a CPU silently."""
    if device and device != "auto":
        dev = torch.device(device)
        missing = cuda_missing() if dev.type == "cuda" else None
        if missing:
            raise DeviceError(f"device {device!r} asked for but CUDA is not available: {missing}")
        return dev
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def cuda_missing() -> str | None:
    """Why CUDA cannot be used in this process, in a few words; None when it can."""
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch, {torch.__version__}, is built without CUDA"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return "CUDA_VISIBLE_DEVICES is empty"
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU (driver, or none visible)"


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (ids or UUIDs): the inherited
    CUDA_VISIBLE_DEVICES when set (so `CUDA_VISIBLE_DEVICES=2,3 python -m effdata.run` gives workers
    GPUs 2 and 3), else 0 .. device_count-1; never more than CUDA counts."""
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        return [str(i) for i in range(count)]
    return [d.strip() for d in env.split(",") if d.strip()][:count]


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
def peak_matmul_flops(device: str = "cpu", dtype: str = "float32", n: int | None = None, repeats: int = 5) -> float:
    """Measured peak matmul rate (FLOP/s) of n×n by n×n matmuls on this machine, best of `repeats`.

    Uses the current torch thread count. It is the denominator of model-FLOPs utilisation (MFU).
    n = 2048 on CPU (0.2 s a matmul at 92 GFLOP/s fp32 here), or the first power of two from 256 whose matmul
    takes over CPU_MATMUL_S: on a CPU without AVX512-BF16 a bf16 matmul runs at 1.3 GFLOP/s (an AMD EPYC with
    AVX2, 8 December: 19 s for one 2048³, so the benchmark's six overran the tiny GPU script's 150 s). On a GPU one
    2048³ matmul takes ~25 µs on an H100, the order of the launch and synchronisation overhead, so the rate read
    low and MFU high: there n = 8192 and 10 matmuls are timed together (~10 ms of bf16 work on an H100).
    """
    dev = torch.device(device)
    n = n or (_cpu_matmul_size(getattr(torch, dtype)) if dev.type == "cpu" else 8192)
    inner = 1 if dev.type == "cpu" else 10
    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=dev).to(dt)
    b = torch.randn(n, n, device=dev).to(dt)
    best = float("inf")
    for i in range(repeats + 1):
        _sync(dev)
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        _sync(dev)
        if i:  # the first is a warm-up
            best = min(best, (time.perf_counter() - t) / inner)
    return 2 * n**3 / best


CPU_MATMUL_S = 0.05


def _cpu_matmul_size(dtype: torch.dtype, largest: int = 2048) -> int:
    """The first n (256, 512, ...) whose n×n matmul in `dtype` took over CPU_MATMUL_S, or `largest`: 2048 in fp32 on
    every CPU so far; 512 in bf16 without AVX512-BF16 (0.2 s a matmul, 0.03 s at 256)."""
    n = 256
    while n < largest:
        a = torch.randn(n, n).to(dtype)
        start = time.perf_counter()
        a @ a
        if time.perf_counter() - start > CPU_MATMUL_S:
            break
        n *= 2
    return n


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
        return (bf16, bf16) if cuda_bf16_native() else (None, None)
    if cpu_bf16_fast():
        return bf16, bf16
    return None, None


def cuda_bf16_native() -> bool:
    """Whether this GPU computes bf16 natively (compute capability 8.0, Ampere, and later).

    `torch.cuda.is_bf16_supported()` also says yes on a V100 or T4, where bf16 is emulated and slower
    than fp32: there "auto" must stay fp32."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.4 had no such argument, and counted no emulation
        return torch.cuda.is_bf16_supported()


def attention_impl(device: torch.device, body_dtype: torch.dtype | None) -> str:
    """"eager" (matmul attention) for bf16 on CPU, where the SDPA flash backward is slow; else "sdpa"."""
    return "eager" if device.type == "cpu" and body_dtype is not None else "sdpa"


# The aten operators scaled_dot_product_attention dispatches to, by the kernel family they run (forward
# and backward share the prefix; the CPU's flash kernel is `..._flash_attention_for_cpu`).
SDPA_KERNELS = (("flash", "_scaled_dot_product_flash_attention"),
                ("efficient", "_scaled_dot_product_efficient_attention"),
                ("cudnn", "_scaled_dot_product_cudnn_attention"),
                ("math", "_scaled_dot_product_attention_math"),
                ("overrideable", "_scaled_dot_product_fused_attention_overrideable"))


def sdpa_kernels(call) -> list[str]:
    """The attention kernels `call()` runs, read from the profiler's operator names: e.g. ["flash"] when
    SDPA picked the flash kernel, ["math"] when it fell back to plain matmuls and softmax (on a GPU: an
    unsupported head size, dtype or mask), [] when the model has no SDPA call (the "eager" attention).
    Which kernel runs is chosen per call by shapes, dtype, mask and GPU, so it is read, not assumed."""
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    names = {event.name for event in prof.events()}
    return [kernel for kernel, op in SDPA_KERNELS if any(op in name for name in names)]


def precision_name(body: torch.dtype | None, head: torch.dtype | None) -> str:
    if body is None and head is None:
        return "fp32"
    if body is None:
        return "fp32+bf16-head"
    return "bf16"


def make_deterministic(dev: torch.device) -> None:
    """Same seed, same numbers on CUDA too: deterministic algorithms wherever PyTorch has one (an op without
    one warns instead of failing the run), and cuBLAS's fixed-workspace mode that this needs. The CPU's
    kernels here are deterministic already (tests/test_train.py). Call before the process's first CUDA
    matmul: cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it creates its handle."""
    if dev.type != "cuda":
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def exact_fp32():
    """Inside, fp32 matmuls on CUDA are fp32 (TF32 off), whatever training set; restored on exit.

    Training allows TF32 for its fp32 matmuls; evaluation is documented as fp32, and TF32's 10-bit
    mantissa would make the reported losses depend on the GPU generation. No effect on CPU."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
