"""effdata/numerics.py: importing effdata holds numpy and OpenBLAS at their AVX2 code paths, so that the committed
reports regenerate with the same numbers on an AVX-512 machine as on an AVX2 one; a variable the caller set is kept."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from effdata import numerics

VARIABLES = [*numerics.OPENBLAS, *numerics.NUMPY]
PINNED = numerics._has_avx2() and numerics._numpy_at_least(2, 4)
needs_pin = pytest.mark.skipif(not PINNED, reason="not x86-64 with AVX2 and numpy 2.4+: left alone by design")


def _environment_after_import(**preset: str) -> dict[str, str | None]:
    env = {k: v for k, v in os.environ.items() if k not in VARIABLES} | preset
    code = "import os, effdata; print(repr({k: os.environ.get(k) for k in %r}))" % VARIABLES
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return eval(done.stdout)   # noqa: S307 - our own repr of a dict of strings


@needs_pin
def test_importing_effdata_sets_the_variables_and_keeps_the_callers():
    assert _environment_after_import() == {**numerics.OPENBLAS, **numerics.NUMPY}
    kept = _environment_after_import(OPENBLAS_CORETYPE="Prescott")
    assert kept["OPENBLAS_CORETYPE"] == "Prescott" and kept["NPY_DISABLE_CPU_FEATURES"] == numerics.NUMPY[
        "NPY_DISABLE_CPU_FEATURES"]


@needs_pin
def test_this_process_runs_the_pinned_paths():
    # What the regeneration tests compute with: fails on an AVX-512 machine if numpy was imported before effdata.
    import numpy._core._multiarray_umath as umath
    import scipy.linalg  # noqa: F401  its OpenBLAS loaded, beside numpy's
    from threadpoolctl import threadpool_info

    assert not any(umath.__cpu_features__.get(name) for name in numerics.NUMPY["NPY_DISABLE_CPU_FEATURES"].split())
    kernels = {info.get("architecture") for info in threadpool_info() if info["internal_api"] == "openblas"}
    assert kernels == {"Haswell"}, kernels
