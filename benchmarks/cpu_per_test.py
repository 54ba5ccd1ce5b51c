"""A pytest plugin: CPU seconds per test (setup, call and teardown; the worker and its waited-for children), one
line per test appended to $CPU_PER_TEST (default cpu_per_test.tsv), for finding what makes the suite long (not a test).

    PYTHONPATH=benchmarks CPU_PER_TEST=/tmp/cpu.tsv OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q -n 3 \
        --dist loadgroup -m "not reports" -p cpu_per_test
    sort -rn /tmp/cpu.tsv | head -30

Wall time (`--durations`) measures a test and whatever ran beside it on the two cores; CPU time measures the test.
Jobs that SLURM runs are outside the worker and not counted. The twenty-second session's 920 CPU-s, and the
committed runs' re-run's 139 of them, came from this (docs/development.md).
"""
from __future__ import annotations

import os
import resource

import pytest


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _cpu_seconds()
    yield
    with open(os.environ.get("CPU_PER_TEST", "cpu_per_test.tsv"), "a") as out:
        out.write(f"{_cpu_seconds() - start:.2f}\t{item.nodeid}\n")
