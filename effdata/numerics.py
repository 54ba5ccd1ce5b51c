"""The same analysis numbers on every x86-64 CPU: numpy and OpenBLAS held at their AVX2 code paths.

numpy and OpenBLAS pick their code for the CPU they run on, and their AVX-512 paths round differently from their AVX2
ones. Measured 8 December: the committed reports, written on an Intel machine with AVX-512, regenerated on an AMD EPYC
with AVX2 (same packages) differ in 20 of the first 21 tried, mostly in the last digits (least-squares slopes by 3e-15,
a curve fit by 1.5e-8), but where a fit runs along a valley or to a bound by far more (a Chinchilla α by 8e-5, its
E's interval end from 9.2e-25 to 1.2e-39, a left-out Kaplan α_N from 0.539 to 3). On the AMD machine OpenBLAS's
Haswell kernels gave its own (Zen) kernels' bits, numpy with its AVX2 loops switched off
(NPY_DISABLE_CPU_FEATURES=X86_V3) its AVX2 bits, and OpenBLAS's older Prescott kernels other bits: so the kernels
matter, and an AVX-512 machine held at Haswell kernels and without numpy's AVX-512 loops takes the AVX2 machine's
paths (not yet seen on one: no AVX-512 machine has run it). That is what `pin` asks for; the
reports under analysis/ were regenerated so. It must run before numpy is first imported (effdata/__init__.py calls it;
the Makefile's test targets set the same variables, since pytest imports numpy first). A variable already set is
left as it is; a CPU without AVX2, a machine that is not x86-64, or numpy before 2.4 (other feature names) is left
alone. Training is untouched: torch uses neither.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata

OPENBLAS = {"OPENBLAS_CORETYPE": "Haswell"}
# numpy 2.4's names for its AVX-512 dispatch targets (numpy._core._multiarray_umath.__cpu_dispatch__).
NUMPY = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


def _numpy_at_least(major: int, minor: int) -> bool:
    try:
        found = tuple(int(p) for p in metadata.version("numpy").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return found >= (major, minor)


def pin() -> dict[str, str]:
    """Set the variables above where unset and this machine can take them; what was set."""
    if platform.machine() not in ("x86_64", "AMD64") or not _has_avx2():
        return {}
    wanted = {**OPENBLAS, **(NUMPY if _numpy_at_least(2, 4) else {})}
    done = {k: v for k, v in wanted.items() if k not in os.environ}
    os.environ.update(done)
    return done
